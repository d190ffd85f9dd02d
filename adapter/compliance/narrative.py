"""Narrative XHTML checks (R4 txt-1, txt-2): well-formed, XHTML div root, allowed markup only.

Uses the standard library's expat parser: no DTD, so named entities other than the five XML
ones (e.g. `&reg;`) are errors, as they are for the HTML-free XHTML FHIR requires.
"""

from __future__ import annotations

from functools import lru_cache
from xml.parsers import expat

XHTML_NS = "http://www.w3.org/1999/xhtml"

#: Elements of the HTML 4.0 chapters FHIR allows (txt-1).
ALLOWED_ELEMENTS = frozenset(
    "p br div h1 h2 h3 h4 h5 h6 a span b em i strong small big tt dfn q var abbr acronym cite blockquote hr "
    "address bdo kbd sub sup ul ol li dl dt dd pre table caption colgroup col thead tr tfoot tbody th td code "
    "samp img map area".split()
)
#: Attributes FHIR allows on those elements (txt-1), plus namespace and xml:* attributes.
ALLOWED_ATTRIBUTES = frozenset(
    "title style class id lang xml:lang dir accesskey tabindex span width align valign char charoff abbr axis "
    "headers scope rowspan colspan href name hreflang rel rev charset type shape coords target src alt height "
    "longdesc usemap ismap border cellpadding cellspacing frame rules summary bgcolor start value compact "
    "cite datetime nohref xmlns xml:space nowrap hspace vspace".split()
)


@lru_cache(maxsize=2048)
def problems(div: str) -> tuple[tuple[str, str], ...]:
    """(invariant key, message) for every problem of a narrative div; empty when it is fine."""
    found: list[tuple[str, str]] = []
    state = {"depth": 0, "content": False}

    def start(name: str, attrs: dict) -> None:
        if state["depth"] == 0:
            if name != "div":
                found.append(("txt-1", f"the narrative root element must be <div>, not <{name}>"))
            elif attrs.get("xmlns") != XHTML_NS:
                found.append(("txt-1", "the narrative <div> must be in the XHTML namespace"))
        local = name.split(":")[-1]
        if local not in ALLOWED_ELEMENTS:
            found.append(("txt-1", f"element <{name}> is not allowed in narrative"))
        for attr in attrs:
            if attr not in ALLOWED_ATTRIBUTES and not attr.startswith("xmlns:"):
                found.append(("txt-1", f"attribute {attr!r} on <{name}> is not allowed in narrative"))
        if local == "img":
            state["content"] = True
        state["depth"] += 1

    def end(name: str) -> None:
        state["depth"] -= 1

    def text(data: str) -> None:
        if data.strip():
            state["content"] = True

    parser = expat.ParserCreate()
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = text
    try:
        parser.Parse(div, True)
    except expat.ExpatError as exc:
        reason = expat.ErrorString(exc.code)
        if exc.code == expat.errors.codes[expat.errors.XML_ERROR_UNDEFINED_ENTITY]:
            reason = "invalid entity in the XHTML (only &lt; &gt; &amp; &quot; &apos; and numeric references are allowed)"
        return (("txt-1", f"narrative is not well-formed XHTML: {reason}"),)
    if not state["content"]:
        found.append(("txt-2", "the narrative has no non-whitespace content"))
    return tuple(found)


def html_ok(div: str) -> bool:
    """FHIRPath htmlChecks(): True when the div passes txt-1 and txt-2."""
    return not problems(div)
