"""Recognise what an input document is: canonical JSON, municipal XML, RIV-TA XML or FHIR JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from mappings import safexml

Format = Literal["json", "xml", "riv", "fhir"]


class UnknownFormatError(ValueError):
    """Input that is none of the formats carebridge reads."""


@dataclass
class Detected:
    """An input with its format, what it parsed into, and (for RIV) which contract."""

    format: Format
    payload: Any  # dict for JSON formats, lxml root for XML formats
    detail: str = ""  # the document kind (json/xml) or RIV contract (riv)


def detect(data: bytes) -> Detected:
    """Detect the format of `data` by parsing it (XML safely); raise UnknownFormatError otherwise."""
    if safexml.looks_like_xml(data):
        root = safexml.parse(data)
        tag = root.tag if isinstance(root.tag, str) else ""
        from mappings import municipal_xml

        if tag.startswith(f"{{{municipal_xml.NS}}}"):
            return Detected("xml", root, tag.split("}", 1)[1])
        from mappings import riv

        contract = riv.detect(root)
        if contract:
            return Detected("riv", root, contract)
        raise UnknownFormatError(f"XML root element {tag!r} is neither municipal XML nor a RIV-TA response this version reads")
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UnknownFormatError(f"not XML and not valid JSON ({exc})") from None
    if isinstance(doc, dict) and doc.get("resourceType") == "Bundle":
        return Detected("fhir", doc, doc.get("type", ""))
    if isinstance(doc, dict) and "resourceType" in doc:
        raise UnknownFormatError(f"a single FHIR {doc['resourceType']} is not a document; send a Bundle")
    if isinstance(doc, dict) and isinstance(doc.get("kind"), str):
        from mappings.models import DOCUMENT_KINDS

        if doc["kind"] not in DOCUMENT_KINDS:
            raise UnknownFormatError(f"unknown canonical document kind {doc['kind']!r}; known: {', '.join(DOCUMENT_KINDS)}")
        return Detected("json", doc, doc["kind"])
    raise UnknownFormatError("JSON that is neither a FHIR Bundle nor a canonical document (no 'kind')")
