"""The one way carebridge parses XML: hostile input is refused, never resolved.

A document with a DOCTYPE (and with it every entity declaration, parameter entity,
external DTD or entity bomb) is refused before any of it is read; the parser itself also
has entity resolution, DTD loading and network access switched off, and a size limit.
"""

from __future__ import annotations

import re

MAX_XML_BYTES = 10 * 1024 * 1024

_DOCTYPE = re.compile(rb"<!DOCTYPE", re.IGNORECASE)
_ENTITY = re.compile(rb"<!ENTITY", re.IGNORECASE)


class UnsafeXmlError(ValueError):
    """XML that carries a DTD, entities or too many bytes: refused without resolving anything."""


class XmlSyntaxError(ValueError):
    """XML that is not well-formed."""


def _parser():
    from lxml import etree

    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )


def parse(data: bytes | str, *, max_bytes: int = MAX_XML_BYTES):
    """Parse XML into an lxml element, refusing DTDs, entities and oversize input."""
    from lxml import etree

    raw = data.encode("utf-8") if isinstance(data, str) else data
    if len(raw) > max_bytes:
        raise UnsafeXmlError(f"XML is {len(raw)} bytes, over the limit of {max_bytes}")
    if _DOCTYPE.search(raw) or _ENTITY.search(raw):
        raise UnsafeXmlError("XML with a DOCTYPE or entity declarations is refused (DTDs and entities are never resolved)")
    try:
        root = etree.fromstring(raw, parser=_parser())
    except etree.XMLSyntaxError as exc:
        raise XmlSyntaxError(f"XML is not well-formed: {exc}") from None
    # Defence in depth: an entity reference that survived means something slipped past.
    for node in root.iter():
        if isinstance(node, etree._Entity):  # pragma: no cover - refused above
            raise UnsafeXmlError("XML entity references are refused")
    return root


def looks_like_xml(data: bytes) -> bool:
    """True if the bytes start (after BOM and whitespace) with '<'."""
    return data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<")
