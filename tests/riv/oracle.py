"""Test oracles for the RIV mappings: Inera's official XSDs, canonical XML trees, the R4B model.

The XSDs are read from `../shared/riv/` (never copied into the repo); tests that need them skip
with a clear reason when that directory is absent.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from mappings.riv import CORE_NS

REPO = Path(__file__).resolve().parents[2]
#: `../shared/riv` next to the repo (RIV_SHARED_DIR overrides it, e.g. to check the skips).
SHARED_RIV = Path(os.environ.get("RIV_SHARED_DIR") or REPO.parent / "shared" / "riv")
SCHEMAS = {
    "care-services": SHARED_RIV / "schemas" / "interactions" / "GetCareServicesInteraction" / "GetCareServicesResponder_2.0.xsd",
    "care-plans": SHARED_RIV / "schemas" / "interactions" / "GetCarePlansInteraction" / "GetCarePlansResponder_2.0.xsd",
}
EXAMPLES = SHARED_RIV / "examples"
XSI_SCHEMA_LOCATION = "{http://www.w3.org/2001/XMLSchema-instance}schemaLocation"
BOOLEANS = {f"{{{CORE_NS}}}approvedForPatient", f"{{{CORE_NS}}}nullified"}
BASE64 = f"{{{CORE_NS}}}value"  # MultimediaType/value, the only element of that name in these contracts

needs_shared = pytest.mark.skipif(
    not SHARED_RIV.is_dir(), reason=f"Inera's RIV-TA XSDs are not available ({SHARED_RIV} is absent)"
)


@cache
def schema(contract: str) -> etree.XMLSchema:
    """Inera's XSD for a contract; lxml resolves the relative schemaLocation imports from disk."""
    path = SCHEMAS[contract]
    if not path.is_file():
        pytest.skip(f"Inera's RIV-TA XSD is not available ({path} is absent)")
    return etree.XMLSchema(etree.parse(str(path)))


def xsd_errors(contract: str, xml: bytes) -> list[str]:
    """Schema violations of a document (empty list if it is valid)."""
    s = schema(contract)
    if s.validate(etree.fromstring(xml)):
        return []
    return [f"line {e.line}: {e.message}" for e in s.error_log]


def assert_valid(contract: str, xml: bytes) -> None:
    errors = xsd_errors(contract, xml)
    assert not errors, "not valid against Inera's XSD:\n" + "\n".join(errors[:10]) + "\n" + xml.decode()[:3000]


def canon(element: Any) -> tuple:
    """A comparable form of an element tree: tags, attributes (minus xsi:schemaLocation), text, children.

    Whitespace between elements is ignored; booleans compare by value (1 == true) and base64 without
    its line breaks (both are the XSD value space); every other text compares exactly.
    """
    children = tuple(canon(c) for c in element if isinstance(c.tag, str))
    text = element.text or ""
    if children:
        text = text.strip()
    elif element.tag in BOOLEANS:
        text = {"1": "true", "0": "false"}.get(text.strip(), text.strip())
    elif element.tag == BASE64:
        text = "".join(text.split())  # xs:base64Binary: white space is not part of the value
    attrs = tuple(sorted((k, v) for k, v in element.attrib.items() if k != XSI_SCHEMA_LOCATION))
    tail = (element.tail or "").strip()
    return (element.tag, attrs, text, tail, children)


def same_tree(a: bytes, b: bytes) -> bool:
    return canon(etree.fromstring(a)) == canon(etree.fromstring(b))


def first_difference(a: bytes, b: bytes) -> str:
    """Where two documents differ (for assertion messages)."""

    def walk(x: tuple, y: tuple, path: str) -> str | None:
        if x[:4] != y[:4]:
            return f"{path}: {x[:4]!r} != {y[:4]!r}"
        if len(x[4]) != len(y[4]):
            return f"{path}: {len(x[4])} children != {len(y[4])}: {[c[0] for c in x[4]]} vs {[c[0] for c in y[4]]}"
        for n, (cx, cy) in enumerate(zip(x[4], y[4])):
            found = walk(cx, cy, f"{path}/{cx[0].rsplit('}', 1)[-1]}[{n}]")
            if found:
                return found
        return None

    return walk(canon(etree.fromstring(a)), canon(etree.fromstring(b)), "") or "no difference"


def assert_r4b(bundle: dict) -> None:
    """The Bundle and every resource in it parse with fhir.resources R4B (the reference model)."""
    from fhir.resources.R4B import get_fhir_model_class
    from fhir.resources.R4B.bundle import Bundle

    Bundle.model_validate(bundle)
    for entry in bundle.get("entry", ()):
        res = entry["resource"]
        get_fhir_model_class(res["resourceType"]).model_validate(res)


def assert_idempotent_entries(bundle: dict) -> None:
    """Every entry is a conditional create, and no two creates of a type share a condition."""
    seen: set[tuple[str, str]] = set()
    for entry in bundle.get("entry", ()):
        request = entry["request"]
        assert request["method"] == "POST" and request.get("ifNoneExist"), f"not a conditional create: {entry['fullUrl']}"
        key = (request["url"], request["ifNoneExist"])
        assert key not in seen, f"two creates with the same condition {key}"
        seen.add(key)
