"""Narrative XHTML checks (R4 txt-1, txt-2): well-formed, XHTML div root, allowed markup only.

Well-formedness comes from the standard library's expat parser (no DTD, so named entities
other than the five XML ones, e.g. `&reg;`, are errors, as for the HTML-free XHTML FHIR
requires); element and attribute names are then checked against the allowed lists.
"""

from __future__ import annotations

import re
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
_START_TAG = re.compile(r"<([A-Za-z_][\w:.\-]*)((?:\s+[^\s=/>]+\s*=\s*(?:\"[^\"]*\"|'[^']*'))*)\s*/?>")
_ATTR_NAME = re.compile(r"""\s+([^\s=/>]+)\s*=\s*(?:"[^"]*"|'[^']*')""")
_TEXT = re.compile(r">\s*+[^\s<]")  # some non-whitespace character data between tags
_ROOT = re.compile(r"\s*<div\b([^>]*)>")
_XMLNS = re.compile(r"""\sxmlns\s*=\s*["']http://www\.w3\.org/1999/xhtml["']""")
#: `_ROOT` matches and `_XMLNS` is found in its attributes, in one match.
_XHTML_ROOT = re.compile(r"\s*<div\b[^>]*?" + _XMLNS.pattern + r"[^>]*>")


def _trie(words: frozenset[str]) -> str:
    """A regex alternation of `words` as a trie (one branch per first letter: fast to reject)."""
    tree: dict = {}
    for w in words:
        node = tree
        for ch in w:
            node = node.setdefault(ch, {})
        node[""] = {}

    def emit(node: dict) -> str:
        alts = [re.escape(ch) + emit(node[ch]) for ch in sorted(k for k in node if k)]
        if not alts:
            return ""
        if len(alts) == 1 and "" not in node:
            return alts[0]
        return "(?:" + "|".join(alts) + ")" + ("?" if "" in node else "")
    return emit(tree)


#: A narrative made only of text, end tags and start tags of allowed elements with allowed
#: attributes (no comments, CDATA or processing instructions). Possessive: fails fast, no
#: backtracking. Unrolled (text, then a tag and the text after it, repeated) so that the regex
#: engine makes one iteration per tag rather than one per text run and one per tag, and a start
#: tag without attributes (`<p>`, `<b>`: most of them) closes right after its name. Used only as
#: a fast acceptance: after a successful parse it implies that the element and attribute checks
#: below find nothing.
_ALLOWED_ONLY = re.compile(
    r"[^<]*+(?:<(?:/[^>]*+>|" + _trie(ALLOWED_ELEMENTS) + r"(?:>|(?=[\s/])(?:\s++(?:" + _trie(ALLOWED_ATTRIBUTES)
    + r"|xmlns:[^\s=/>]++)\s*+=\s*+(?:\"[^\"]*+\"|'[^']*+'))*+\s*+/?>))[^<]*+)*+"
)


def problems(div: str) -> tuple[tuple[str, str], ...]:
    """(invariant key, message) for every problem of a narrative div; empty when it is fine."""
    parser = expat.ParserCreate()
    try:
        parser.Parse(div, True)
    except expat.ExpatError as exc:
        reason = expat.ErrorString(exc.code)
        if exc.code == expat.errors.codes[expat.errors.XML_ERROR_UNDEFINED_ENTITY]:
            reason = "invalid entity in the XHTML (only &lt; &gt; &amp; &quot; &apos; and numeric references are allowed)"
        return (("txt-1", f"narrative is not well-formed XHTML: {reason}"),)
    # the usual case, in one pass of the regex engine: an XHTML <div> root, every start tag an
    # allowed element with allowed attributes (so the two checks on names below would find
    # nothing) and some text
    if (_XHTML_ROOT.match(div) is not None and _ALLOWED_ONLY.fullmatch(div) is not None
            and (_TEXT.search(div) is not None or "<img" in div)):
        return ()
    root = _ROOT.match(div)
    found: list[tuple[str, str]] = []
    if root is None:
        found.append(("txt-1", "the narrative root element must be <div>"))
    elif not _XMLNS.search(root.group(1)):
        found.append(("txt-1", "the narrative <div> must be in the XHTML namespace"))
    tags = _START_TAG.findall(div)
    names = {name for name, _ in tags}
    if not names <= ALLOWED_ELEMENTS:
        bad = sorted(n for n in names if n.split(":")[-1] not in ALLOWED_ELEMENTS)
        found += [("txt-1", f"element <{e}> is not allowed in narrative") for e in bad]
    attrs = set(_ATTR_NAME.findall(" ".join(a for _, a in tags if a)))
    if not attrs <= ALLOWED_ATTRIBUTES:
        bad = sorted(a for a in attrs if a not in ALLOWED_ATTRIBUTES and not a.startswith("xmlns:"))
        found += [("txt-1", f"attribute '{a}' is not allowed in narrative") for a in bad]
    if "<img" not in div and _TEXT.search(div) is None:
        found.append(("txt-2", "the narrative has no non-whitespace content"))
    return tuple(found)


def html_ok(div: str) -> bool:
    """FHIRPath htmlChecks(): True when the div passes txt-1 and txt-2."""
    return not problems(div)
