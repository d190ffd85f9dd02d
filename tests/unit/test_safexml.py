"""Hostile XML is refused before anything is resolved."""

from __future__ import annotations

import pytest

from mappings import safexml

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<decision xmlns="urn:carebridge:municipal:1"><decision_id>&x;</decision_id></decision>"""

BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]><lolz>&lol3;</lolz>"""

PARAMETER = b"""<?xml version="1.0"?>
<!DOCTYPE d [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]><d/>"""

EXTERNAL_DTD = b"""<?xml version="1.0"?><!DOCTYPE d SYSTEM "http://127.0.0.1:9/evil.dtd"><d/>"""


@pytest.mark.parametrize("data", [XXE, BOMB, PARAMETER, EXTERNAL_DTD, XXE.replace(b"DOCTYPE", b"doctype")], ids=["xxe", "bomb", "parameter-entity", "external-dtd", "lowercase"])
def test_hostile_documents_are_refused(data: bytes) -> None:
    with pytest.raises(safexml.UnsafeXmlError):
        safexml.parse(data)


def _wide(data: bytes, encoding: str) -> bytes:
    """The same document in a wide encoding (declared), where a byte search for '<!DOCTYPE' sees nothing."""
    return data.decode().replace('version="1.0"?>', f'version="1.0" encoding="{encoding.upper()}"?>', 1).encode(encoding)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32"])
@pytest.mark.parametrize("data", [XXE, BOMB, PARAMETER, EXTERNAL_DTD], ids=["xxe", "bomb", "parameter-entity", "external-dtd"])
def test_hostile_documents_in_wide_encodings_are_refused(data: bytes, encoding: str) -> None:
    with pytest.raises(safexml.UnsafeXmlError):
        safexml.parse(_wide(data, encoding))


def test_oversize_is_refused() -> None:
    with pytest.raises(safexml.UnsafeXmlError, match="over the limit"):
        safexml.parse(b"<a>" + b"x" * 2000 + b"</a>", max_bytes=1000)


def test_broken_xml_is_a_syntax_error() -> None:
    with pytest.raises(safexml.XmlSyntaxError):
        safexml.parse(b"<a><b></a>")


def test_xinclude_is_not_processed() -> None:
    root = safexml.parse(b'<a xmlns:xi="http://www.w3.org/2001/XInclude"><xi:include href="/etc/passwd" parse="text"/></a>')
    assert root[0].tag == "{http://www.w3.org/2001/XInclude}include"
    assert "root:" not in (root[0].text or "")


def test_plain_document_parses() -> None:
    assert safexml.parse("<a>å</a>").text == "å"
