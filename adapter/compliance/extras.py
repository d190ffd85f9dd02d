"""Base-spec checks that are written in the R4 text rather than as FHIRPath invariants.

Each hook runs after the walker has checked an object of the named type:
- Attachment: a stated `size` must match the decoded `data`;
- Bundle: bdl-3, bdl-4 and bdl-7 (natively: FHIRPath would re-read the Bundle type per entry),
  and a link relation occurs once;
- CodeSystem: property codes are unique and a concept's property value has the declared type;
- ValueSet.compose.include/exclude: `system` is an absolute URI (not '#id');
- Identifier: identifiers with a watched system (personnummer...) are noted for layer 3.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any, Callable

_B64 = re.compile(r"^[A-Za-z0-9+/]*={0,2}$")
_WS = re.compile(r"\s+")
#: Bundle.link relations that may occur only once (IANA registry semantics).
SINGLE_LINK_RELATIONS = frozenset({"self", "first", "previous", "prev", "next", "last"})
#: CodeSystem.property.type -> the concept.property value[x] key it requires.
PROPERTY_VALUE_KEYS = {
    "code": "valueCode", "Coding": "valueCoding", "string": "valueString", "integer": "valueInteger",
    "boolean": "valueBoolean", "dateTime": "valueDateTime", "decimal": "valueDecimal",
}


def base64_ok(v: str) -> bool:
    """True for base64 text (whitespace allowed between groups)."""
    s = _WS.sub("", v) if any(c.isspace() for c in v[:200]) or "\n" in v else v
    return len(s) % 4 == 0 and _B64.match(s) is not None


def _attachment(w: Any, node: dict, path: str) -> None:
    data, size = node.get("data"), node.get("size")
    if not isinstance(data, str) or not isinstance(size, int) or isinstance(size, bool):
        return
    try:
        actual = len(base64.b64decode(_WS.sub("", data), validate=True))
    except (binascii.Error, ValueError):
        return
    if actual != size:
        w.error(path, f"Stated Attachment Size {size} does not match actual attachment size {actual}", "structure", "attachment-size")


_BDL = {  # the R4 texts of the Bundle invariants checked natively here
    "bdl-3": "entry.request mandatory for batch/transaction/history, otherwise prohibited",
    "bdl-4": "entry.response mandatory for batch-response/transaction-response/history, otherwise prohibited",
    "bdl-7": "FullUrl must be unique in a bundle, or else entries with the same fullUrl must have different meta.versionId (except in history bundles)",
}


def _bundle(w: Any, node: dict, path: str) -> None:
    btype = node.get("type")
    entries = [e for e in node.get("entry") or () if isinstance(e, dict)] if isinstance(node.get("entry"), list) else []
    wants_request = btype in ("batch", "transaction", "history")
    wants_response = btype in ("batch-response", "transaction-response", "history")
    bad_request = bad_response = False
    for e in entries:
        if ("request" in e) != wants_request:
            bad_request = True
        if ("response" in e) != wants_response:
            bad_response = True
    if bad_request:
        w.error(path, f"Constraint failed: bdl-3: '{_BDL['bdl-3']}'", "invariant", "bdl-3")
    if bad_response:
        w.error(path, f"Constraint failed: bdl-4: '{_BDL['bdl-4']}'", "invariant", "bdl-4")
    if btype != "history":
        keys = [(e["fullUrl"], ((e.get("resource") or {}).get("meta") or {}).get("versionId") if isinstance(e.get("resource"), dict) else None)
                for e in entries if "fullUrl" in e]
        # text and None compare as their repr does: the set of the pairs themselves will do
        plain = all(type(u) is str and (v is None or type(v) is str) for u, v in keys)
        if len(keys) != len(set(keys) if plain else set(map(repr, keys))):
            w.error(path, f"Constraint failed: bdl-7: '{_BDL['bdl-7']}'", "invariant", "bdl-7")
    seen: set[str] = set()
    for i, link in enumerate(node.get("link") or ()):
        rel = link.get("relation") if isinstance(link, dict) else None
        if rel in SINGLE_LINK_RELATIONS:
            if rel in seen:
                w.error(f"{path}.link[{i}]", f"The link relationship type '{rel}' can only occur once", "invalid", "bundle-link")
            seen.add(rel)


def _codesystem(w: Any, node: dict, path: str) -> None:
    declared: dict[str, str] = {}
    for i, prop in enumerate(node.get("property") or ()):
        if not isinstance(prop, dict):
            continue
        code = prop.get("code")
        if code in declared:
            w.error(f"{path}.property[{i}]", f"A property is already defined with the code '{code}'", "business-rule", "codesystem-property")
        elif isinstance(code, str):
            declared[code] = prop.get("type")
    todo = [(c, f"{path}.concept[{i}]") for i, c in enumerate(node.get("concept") or ())]
    while todo:
        concept, cpath = todo.pop()
        if not isinstance(concept, dict):
            continue
        for j, p in enumerate(concept.get("property") or ()):
            if not isinstance(p, dict):
                continue
            ptype = declared.get(p.get("code"))
            want = PROPERTY_VALUE_KEYS.get(ptype) if ptype else None
            if want and want not in p:
                have = next((k[5:] for k in p if k.startswith("value")), "?")
                w.error(f"{cpath}.property[{j}]", f"The property '{p.get('code')}' has the invalid type '{have[:1].lower() + have[1:]}', when it is defined to have the type '{ptype}'", "business-rule", "codesystem-property")
        todo.extend((c, f"{cpath}.concept[{k}]") for k, c in enumerate(concept.get("concept") or ()))


def _vs_include(w: Any, node: dict, path: str) -> None:
    system = node.get("system")
    if isinstance(system, str) and ":" not in system:
        w.error(path, "URI values in ValueSet.compose.include.system must be absolute; to reference a contained code system, use its full CodeSystem URL", "invalid", "valueset-system")


def _identifier(w: Any, node: dict, path: str) -> None:
    if node.get("system") in w.watched_systems:
        w.watched_identifiers.append((path, node))


TYPE_HOOKS: dict[str, Callable[[Any, dict, str], None]] = {
    "Identifier": _identifier,
    "Attachment": _attachment,
    "Bundle": _bundle,
    "CodeSystem": _codesystem,
    "ValueSet.compose.include": _vs_include,
}
