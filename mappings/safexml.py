"""The one way carebridge parses XML: hostile input is refused, never resolved.

A document with a DOCTYPE (and with it every entity declaration, parameter entity,
external DTD or entity bomb) is refused before any of it is read; the parser itself also
has entity resolution, DTD loading and network access switched off, and a size limit.
"""

from __future__ import annotations

import re

MAX_XML_BYTES = 10 * 1024 * 1024

#: A DOCTYPE or an entity declaration (either spelling case), found in one pass.
_DECLARATION = re.compile(rb"<!(?:DOCTYPE|ENTITY)", re.IGNORECASE)


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
    if b"!" in raw and _DECLARATION.search(raw):  # (a declaration starts with "<!": no "!", none)
        raise UnsafeXmlError("XML with a DOCTYPE or entity declarations is refused (DTDs and entities are never resolved)")
    try:
        root = etree.fromstring(raw, parser=_parser())
    except etree.XMLSyntaxError as exc:
        raise XmlSyntaxError(f"XML is not well-formed: {exc}") from None
    # The byte search above sees declarations in ASCII-compatible encodings; in UTF-16 or UTF-32
    # they are found here, after a parse that resolved and loaded nothing: a document type
    # declaration that survived, or an entity reference (iter() given the Entity factory yields
    # only entity nodes).
    if root.getroottree().docinfo.doctype:
        raise UnsafeXmlError("XML with a DOCTYPE or entity declarations is refused (DTDs and entities are never resolved)")
    for _node in root.iter(etree.Entity):
        raise UnsafeXmlError("XML entity references are refused")
    return root


def looks_like_xml(data: bytes) -> bool:
    """True if the bytes start (after BOM and whitespace) with '<'."""
    return data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<")
