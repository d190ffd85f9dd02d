"""Conversion between the four document formats, used by `convert`, `send`, the demo and the API.

Every input is read into one of two hubs, the canonical model or a FHIR Bundle, and written
from there. Readers and writers are the mappings' own; this module only routes:

    json / xml  -> canonical model --(flow.to_fhir)--> FHIR Bundle --(riv writer)--> RIV XML
    fhir        -> FHIR Bundle     --(flow.from_fhir)--> canonical model
    riv         -> FHIR Bundle (riv reader)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import import_module
from typing import Any, Literal

from pydantic import BaseModel, ValidationError
from pydantic_core import to_json as _to_json

Target = Literal["fhir", "json", "xml", "riv"]
TARGETS: tuple[Target, ...] = ("fhir", "json", "xml", "riv")
SUFFIX = {"fhir": ".fhir.json", "json": ".json", "xml": ".xml", "riv": ".riv.xml"}


class ConversionError(ValueError):
    """A document that cannot be read or converted; the message is one line naming the problem.

    `outcome` is the OperationOutcome when the compliance engine refused the payload.
    """

    def __init__(self, message: str, outcome: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.outcome = outcome


@dataclass
class Document:
    """An input read into its hub: a canonical model, or a FHIR Bundle (with the RIV contract it came from)."""

    source_format: str
    model: BaseModel | None = None
    bundle: dict[str, Any] | None = None
    riv_contract: str | None = None
    validated: bool = False  # the Bundle passed the compliance engine


@cache
def _readers() -> tuple[Any, Any, Any, Any]:
    """The modules `read` needs, imported on first use (once: not an import statement per document)."""
    from mappings import formats, municipal_xml, safexml
    from mappings.models import model_for

    return formats, municipal_xml, safexml, model_for


def read(data: bytes) -> Document:
    """Detect and read an input document into its hub."""
    formats, municipal_xml, safexml, model_for = _readers()
    try:
        detected = formats.detect(data)
        if detected.format == "json":
            return Document("json", model=model_for(detected.detail).model_validate(detected.payload))
        if detected.format == "xml":
            return Document("xml", model=municipal_xml.from_element(detected.payload))
        if detected.format == "fhir":
            return Document("fhir", bundle=checked(detected.payload), validated=True)
        return Document("riv", bundle=_riv(detected.detail).to_fhir(detected.payload), riv_contract=detected.detail)
    except ConversionError:
        raise
    except ValidationError as exc:
        raise ConversionError(describe_validation_error(exc)) from None
    except (ValueError, safexml.UnsafeXmlError) as exc:
        raise ConversionError(one_line(str(exc))) from None


def model_of(doc: Document) -> BaseModel:
    """The canonical model of a document (decoding its FHIR Bundle if need be)."""
    if doc.model is not None:
        return doc.model
    from mappings.flows import flow_of_bundle

    try:
        return flow_of_bundle(doc.bundle).mapping().from_fhir(doc.bundle)
    except ValidationError as exc:
        raise ConversionError(describe_validation_error(exc)) from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ConversionError(one_line(f"cannot read the FHIR Bundle as a municipal document: {exc}")) from None


def bundle_of(doc: Document) -> dict[str, Any]:
    """The FHIR Bundle of a document (encoding its canonical model if need be)."""
    if doc.bundle is not None:
        return doc.bundle
    from mappings.flows import FLOWS

    return FLOWS[doc.model.kind].mapping().to_fhir(doc.model)  # type: ignore[union-attr]


def riv_contract_of(doc: Document) -> str:
    """Which RIV-TA contract a document is exported to."""
    if doc.riv_contract:
        return doc.riv_contract
    from mappings.flows import FLOWS, flow_of_bundle

    try:
        flow = FLOWS[doc.model.kind] if doc.model is not None else flow_of_bundle(doc.bundle)
    except ValueError:
        return "care-services"
    if not flow.riv:
        raise ConversionError(f"the {flow.kind} flow has no RIV-TA contract; convert it to fhir, json or xml")
    return flow.riv


def write(doc: Document, to: Target) -> bytes:
    """Write a document in the target format."""
    try:
        if to == "json":
            return dump_json(model_of(doc).model_dump(mode="json", exclude_none=True))
        if to == "xml":
            from mappings import municipal_xml

            return municipal_xml.to_xml(model_of(doc))
        bundle = bundle_of(doc)
        if not doc.validated:
            checked(bundle)
            doc.validated = True
        if to == "fhir":
            return dump_json(bundle)
        return _riv(riv_contract_of(doc)).from_fhir(bundle)
    except ConversionError:
        raise
    except ValidationError as exc:
        raise ConversionError(describe_validation_error(exc)) from None
    except (ValueError, KeyError) as exc:
        raise ConversionError(one_line(str(exc))) from None


def checked(bundle: dict[str, Any]) -> dict[str, Any]:
    """Fail closed: the Bundle if the compliance engine finds no error, else ConversionError with the outcome."""
    ComplianceError, require_valid = _compliance()
    try:
        require_valid(bundle)
    except ComplianceError as exc:
        raise ConversionError(one_line(str(exc)), outcome=exc.outcome) from None
    return bundle


@cache
def _compliance() -> tuple[Any, Any]:
    from adapter.compliance import ComplianceError, require_valid

    return ComplianceError, require_valid


def convert(data: bytes, to: Target) -> bytes:
    """Read `data` in any supported format and write it as `to`."""
    return write(read(data), to)


def _riv(contract: str):
    return import_module({"care-services": "mappings.riv.care_services", "care-plans": "mappings.riv.care_plans"}[contract])


def dump_json(obj: Any) -> bytes:
    """`json.dumps(obj, ensure_ascii=False, indent=2)` plus a newline, as UTF-8 (byte for byte).

    Written by pydantic-core's serializer (native code, already a dependency through pydantic),
    which gives the same bytes for JSON values: the same escapes for every code point, the same
    layout, the same float digits, except that Python writes some floats with an exponent
    (`1e-05`, `1.5e-09`) where pydantic-core does not, or pads it differently: whenever the output
    holds a number in either form, or pydantic-core refuses the value, the text is written by
    `json.dumps` itself. (Values that are not JSON types never reach here from `convert`: the
    compliance engine rejects a Bundle holding one.)
    """
    try:
        out = _to_json(obj, indent=2, inf_nan_mode="constants")
    except Exception:  # noqa: BLE001 - e.g. a lone surrogate: the standard path raises what it raises
        out = None
    if out is None or _exponent_forms(out):
        return (json.dumps(obj, ensure_ascii=False, indent=2) + "\n").encode("utf-8")
    return out + b"\n"


#: Every digit as "0" and every comma as a newline: a number ending a line ("5\n" or "5,\n") is
#: then found with one search for "0\n" (a digit followed by a comma inside a string is found
#: too, and passed over).
_LINE_ENDS = bytes.maketrans(b"123456789,", b"000000000\n")


def _exponent_forms(out: bytes) -> bool:
    """Does the indented document hold a number with an exponent, or written as 0.0000...?

    In indented JSON every member and every array item has a line of its own, and only a number
    makes a line end in a digit (a string ends with its quote, true/false/null with a letter, a
    container with a bracket): so each number is found from the line ends, and looked at."""
    if out[-1:].isdigit() and b"\n" not in out:  # the document itself is a number
        return _odd_number(out)
    marked = out.translate(_LINE_ENDS)
    i = marked.find(b"0\n")
    while i >= 0:
        after = out[i + 1 : i + 3]
        if after[:1] == b"\n" or after == b",\n":
            start = out.rfind(b" ", 0, i) + 1
            if _odd_number(out[start : i + 1]):
                return True
        i = marked.find(b"0\n", i + 1)
    return False


def _odd_number(token: bytes) -> bool:
    return b"e" in token or b"E" in token or token.lstrip(b"-").startswith(b"0.0000")


def one_line(text: str) -> str:
    return " ".join(text.split())


def describe_validation_error(exc: ValidationError) -> str:
    """The first problem of a pydantic error as one line: where, and what (personnummer masked)."""
    from mappings.identifiers import mask_text

    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or exc.title
    msg = err["msg"].removeprefix("Value error, ")
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return one_line(mask_text(f"invalid {where}: {msg}{more}"))
