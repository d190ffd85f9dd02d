"""Layer 1: base FHIR R4 validity of any resource, Bundles included, against the compiled rules.

One pass over the JSON: unknown elements, JSON shapes, cardinality, primitive formats, choice
types, required bindings, codes of known CodeSystems, extensions, narrative, contained
resources, references (local, inside Bundles and Parameters) and the FHIRPath invariants of
every element, data type and resource.
"""

from __future__ import annotations

import re
from types import MethodType
from typing import Any, Callable

from adapter.compliance import extras, fhirpath, narrative
from adapter.compliance.context import ValidationContext
from adapter.compliance.model import _real_date
from adapter.compliance.model import (
    COMPLEX, LIST_COMPLEX, LIST_FAST, POST_CODING, POST_REFERENCE, PRIMITIVE, RESOURCE, SINGLE_COMPLEX, SINGLE_FAST,
    Field, Invariant, Rules, TypeRule, rules,
)
from adapter.compliance.outcome import issue

_REL_REF = re.compile(r"^(?:(?P<base>https?://.+)/)?(?P<type>[A-Z][A-Za-z]+)/(?P<id>[A-Za-z0-9\-\.]{1,64})(?:/_history/(?P<version>[A-Za-z0-9\-\.]{1,64}))?$")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_UUID = re.compile(r"^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}(#.*)?$")
_THO = "http://terminology.hl7.org/"
_OID = re.compile(r"^urn:oid:[0-2](\.(0|[1-9][0-9]*))+$")
_HTML_IN_MD = re.compile(r"<[A-Za-z/!]")
_EXAMPLE_HOST = re.compile(r"^https?://([^/]*\.)?(example\.(org|com|net)|acme\.(com|org))(/|:|$)")
_INT_MIN, _INT_MAX = -2147483648, 2147483647
_DATE_TYPES = frozenset({"date", "dateTime", "instant"})
_URI_TYPES = frozenset({"uri", "url", "canonical", "oid", "uuid"})
_STRING_TYPES = frozenset({"string", "markdown"})


#: What a reference text says as a relative or absolute `Type/id` URL: (its `_REL_REF` match or
#: None, the type it names or None, whether it has a base URL, (type, id) or None).
RefParts = tuple[Any, "str | None", bool, "tuple[str, str] | None"]
_NO_PARTS: RefParts = (None, None, False, None)
#: `ref_parts` remembered per reference text (the same few references recur in every payload;
#: bounded anyway).
_REF_PARTS: dict[str, RefParts] = {}


def ref_parts(ref: str) -> RefParts:
    """`_REL_REF.match(ref)` with the parts the walker reads, worked out once per reference text."""
    parts = _REF_PARTS.get(ref)
    if parts is None:
        m = _REL_REF.match(ref)
        parts = _NO_PARTS if m is None else (m, m.group("type"), m.group("base") is not None, (m.group("type"), m.group("id")))
        if len(_REF_PARTS) > 20000:
            _REF_PARTS.clear()
        _REF_PARTS[ref] = parts
    return parts


class BundleScope:
    """Entries of one Bundle (or Parameters) for resolving references made inside it."""

    __slots__ = ("kind", "btype", "by_url", "by_type_id", "refs", "owner")

    def __init__(self, kind: str, btype: str | None, owner: dict) -> None:
        self.owner = owner
        self.kind = kind
        self.btype = btype
        self.by_url: dict[str, dict] = {}
        self.by_type_id: dict[tuple[str, str], dict] = {}
        self.refs: list[tuple] = []  # (path, reference, Field, entry fullUrl[, ref_parts(reference)])

    def add(self, full_url: Any, res: Any) -> None:
        if not isinstance(res, dict):
            return
        if isinstance(full_url, str):
            self.by_url.setdefault(full_url, res)
        rt, rid = res.get("resourceType"), res.get("id")
        if isinstance(rt, str) and isinstance(rid, str):
            self.by_type_id.setdefault((rt, rid), res)

    def find(self, ref: str, full_url: str | None, parts: RefParts | None = None) -> dict | None:
        """The entry a reference points to (`parts`: `ref_parts(ref)` when already known)."""
        hit = self.by_url.get(ref)
        if hit is not None:
            return hit
        if parts is None:
            parts = ref_parts(ref)
        m = parts[0]
        if m is None:
            return None
        if not parts[2] and full_url and full_url.startswith("http"):
            base = _REL_REF.match(full_url)
            if base and base.group("base"):
                hit = self.by_url.get(f"{base.group('base')}/{m.group('type')}/{m.group('id')}")
                if hit is not None:
                    return hit
        return self.by_type_id.get(parts[3])


_UNSET = object()
#: The index of a payload without Bundles or Parameters: empty, and never added to.
_NO_ENTRIES = BundleScope("payload", None, {})
#: Code system lookups (R4 rules, then the extra lookup) remembered per extra lookup: the engine
#: always passes the registry's, so one table serves every payload of the process.
_KNOWN_CS: dict[Any, dict[str, Any]] = {}


_KNOWN_EXT: dict[Any, dict[str, Any]] = {}


def _known_codesystems(extra: Callable[[str], Any], tables: dict[Any, dict[str, Any]] = _KNOWN_CS) -> dict[str, Any]:
    """The table of lookups remembered for this extra lookup (code systems, or extensions)."""
    if type(extra) is MethodType:  # (the engine's: a bound method of the registry)
        key = (extra.__self__, extra.__func__)
    else:
        key = (getattr(extra, "__self__", None), getattr(extra, "__func__", extra))
    if key[0] is None:
        return {}  # a one-off lookup function: remember for this walker only
    table = tables.get(key)
    if table is None:
        table = tables[key] = {}
    return table


class Walker:
    """Walks one payload and collects OperationOutcome issues."""

    #: `obj` runs the generated walkers (fastwalk.py), which may then be called directly.
    generated = True

    def __init__(self, ctx: ValidationContext, extra_codesystems: Callable[[str], Any] | None = None,
                 extra_extensions: Callable[[str], Any] | None = None, watch_identifier_systems: frozenset[str] = frozenset()) -> None:
        self.R: Rules = rules()
        self.ctx = ctx
        self.issues: list[dict] = []
        self.res: dict | None = None
        self.root: dict | None = None
        self.scopes: list[BundleScope] = []
        self.entry_url: str | None = None
        self.local_refs: set[str] | None = None
        self.external_seen: set[str] = set()
        self.failed_invariants: set[str] = set()
        self.extra_codesystems = extra_codesystems or (lambda url: None)
        self.extra_extensions = extra_extensions or (lambda url: None)
        self.resources: list[tuple[dict, str]] = []  # every resource met, with its path
        self.index = _NO_ENTRIES  # every Bundle entry / parameter resource met (see `_open_scope`)
        self.seen_codes: set[tuple[str, str]] = set()  # (system, code) of every Coding met
        self.watched_systems: frozenset[str] = watch_identifier_systems
        self.watched_identifiers: list[tuple[str, dict]] = []  # Identifiers with a watched system
        self.known_cs = _known_codesystems(self.extra_codesystems)  # system -> (case sensitive, codes) | None
        self.known_ext = _known_codesystems(self.extra_extensions, _KNOWN_EXT)  # url -> definition | None

    # --- reporting ---------------------------------------------------------------
    def add(self, severity: str, code: str, path: str, text: str, rule: str | None = None) -> None:
        self.issues.append(issue(severity, code, path, text, rule))

    def error(self, path: str, text: str, code: str = "structure", rule: str | None = None) -> None:
        self.issues.append(issue("error", code, path, text, rule))

    # --- resources ---------------------------------------------------------------
    def resource(self, res: Any, path: str, *, contained: bool = False) -> None:
        """Check one resource (top level, Bundle entry, parameter or contained)."""
        if not isinstance(res, dict):
            self.error(path, "a resource must be a JSON object", "structure", "json-shape")
            return
        rt = res.get("resourceType")
        if not isinstance(rt, str):
            self.error(path, "the resource has no resourceType", "required", "resource-type")
            return
        if rt not in self.R.resource_types:
            self.error(path, f"unknown resource type '{rt}'", "structure", "resource-type")
            return
        t = self.R.type(rt)
        saved = (self.res, self.root, self.local_refs)
        self.res = res
        if not contained:
            self.root = res
            self.local_refs = set()
        self.resources.append((res, path))
        scope = None
        if rt in ("Bundle", "Parameters"):
            scope = self._open_scope(res, rt)
        fn = t.walk
        if fn is not None and self.generated:  # (what `obj` would call)
            fn(self, res, path)
        else:
            self.obj(res, t, path)
        if not contained and "contained" in res:
            self._contained(res, path)
        if scope is not None:
            self.scopes.pop()
            self._close_scope(scope)
        self.res, self.root, self.local_refs = saved

    def _open_scope(self, res: dict, rt: str) -> BundleScope:
        scope = BundleScope(rt, res.get("type") if rt == "Bundle" else None, res)
        if self.index is _NO_ENTRIES:  # the first Bundle or Parameters: the payload's own index
            self.index = BundleScope("payload", None, {})
        if rt == "Bundle":
            # `scope.add(url, resource)` and `self.index.add(url, resource)` for every entry, in one pass
            by_url, by_type_id = scope.by_url, scope.by_type_id
            all_by_url, all_by_type_id = self.index.by_url, self.index.by_type_id
            for e in res.get("entry") or ():
                if isinstance(e, dict):
                    entry_res = e.get("resource")
                    if not isinstance(entry_res, dict):
                        continue
                    url = e.get("fullUrl")
                    if isinstance(url, str):
                        by_url.setdefault(url, entry_res)
                        all_by_url.setdefault(url, entry_res)
                    rtype, rid = entry_res.get("resourceType"), entry_res.get("id")
                    if isinstance(rtype, str) and isinstance(rid, str):
                        key = (rtype, rid)
                        by_type_id.setdefault(key, entry_res)
                        all_by_type_id.setdefault(key, entry_res)
        else:
            todo = list(res.get("parameter") or ())
            while todo:
                p = todo.pop()
                if isinstance(p, dict):
                    r = p.get("resource")
                    if isinstance(r, dict):
                        scope.add(None, r)
                        self.index.add(None, r)
                    todo.extend(p.get("part") or ())
        self.scopes.append(scope)
        return scope

    def _close_scope(self, scope: BundleScope) -> None:
        transactional = scope.btype in ("transaction", "batch")
        by_url = scope.by_url
        for item in scope.refs:
            path, ref, f, full_url = item[0], item[1], item[2], item[3]
            target = by_url.get(ref)  # (the first thing `find` tries: usually enough)
            if target is None:
                target = scope.find(ref, full_url, item[4] if len(item) > 4 else None)
            if target is None:
                if ref.startswith("urn:"):
                    if transactional:
                        self.error(path, f"reference '{ref}' does not resolve to an entry of the Bundle", "not-found", "bundle-reference")
                    else:
                        self.add("warning", "not-found", path, f"URN reference '{ref}' is not contained in the Bundle", "bundle-reference")
                elif scope.kind == "Parameters" and ref_parts(ref)[0] is not None and not ref.startswith("http"):
                    self.error(path, f"unable to resolve resource with reference '{ref}' among the parameters", "structure", "parameters-reference")
                continue
            rtype = target.get("resourceType")
            if f.targets and rtype not in f.targets:
                self.error(path, f"the reference points to a {rtype}, which is not a valid target here (allowed: {', '.join(sorted(f.targets))})", "structure", "reference-target")

    def _contained(self, res: dict, path: str) -> None:
        back_refs = self.local_refs or set()
        for i, c in enumerate(res.get("contained") or ()):
            if not isinstance(c, dict):
                continue
            cpath = f"{path}.contained[{i}]"
            if "contained" in c:
                self.error(cpath, "Constraint failed: dom-2: 'If the resource is contained in another resource, it SHALL NOT contain nested Resources'", "invariant", "dom-2")
            meta = c.get("meta") if isinstance(c.get("meta"), dict) else {}
            if "versionId" in meta or "lastUpdated" in meta:
                self.error(cpath, "Constraint failed: dom-4: 'If a resource is contained in another resource, it SHALL NOT have a meta.versionId or a meta.lastUpdated'", "invariant", "dom-4")
            if "security" in meta:
                self.error(cpath, "Constraint failed: dom-5: 'If a resource is contained in another resource, it SHALL NOT have a security label'", "invariant", "dom-5")
            cid = c.get("id")
            if isinstance(cid, str) and ("#" + cid) not in back_refs and "#" not in back_refs:
                self.error(cpath, f"Constraint failed: dom-3: the contained resource '{cid}' is not referenced from elsewhere in the containing resource nor does it refer to the containing resource", "invariant", "dom-3")

    # --- complex values -----------------------------------------------------------
    def obj(self, node: Any, t: TypeRule, path: str) -> None:
        """Check a JSON object against a type's fields, cardinalities and invariants.

        Runs the type's generated walker (fastwalk.py), which does what `generic_obj` does."""
        fn = t.walk
        if fn is None:
            from adapter.compliance.fastwalk import compile_type

            fn = compile_type(t)
        fn(self, node, path)

    def generic_obj(self, node: Any, t: TypeRule, path: str) -> None:
        """Check a JSON object against a type's fields, cardinalities and invariants (the interpreter:
        the reference the generated walkers are compared with, see selfcheck.py)."""
        if type(node) is not dict:
            self.error(path, f"expected a JSON object for {t.name}, found {_json_kind(node)}", "structure", "json-shape")
            return
        dispatch = t.dispatch
        choices: set[str] | None = None
        if t.is_entry:
            entry_saved = self.entry_url
            fu = node.get("fullUrl")
            self.entry_url = fu if isinstance(fu, str) else None
        for key, val in node.items():
            e = dispatch.get(key)
            if e is None:
                self._odd_key(node, key, val, t, path)
                continue
            mode, f = e
            if mode == SINGLE_FAST:
                if f.fast(val):
                    continue
            elif mode == SINGLE_COMPLEX:
                if type(val) is dict:
                    p = path + "." + f.name
                    tr = f.trule
                    if tr is None:
                        tr = f.trule = self.R.type(f.tkey)
                    self.obj(val, tr, p)
                    if f.post:
                        self._post(val, f, p)
                    for inv in f.invariants:
                        self.invariant(inv, val, p)
                    continue
            elif mode == LIST_FAST:
                if type(val) is list and val:
                    if 1 < f.max < len(val):
                        self.error(f"{path}.{f.name}", f"{t.name}.{f.name}: max allowed = {f.max}, but found {len(val)}", "structure", "cardinality")
                    fast = f.fast
                    for item in val:
                        if item is not None and not fast(item):
                            self._slow_items(val, f, path)
                            break
                    continue
            elif mode == LIST_COMPLEX:
                if type(val) is list and val:
                    if 1 < f.max < len(val):
                        self.error(f"{path}.{f.name}", f"{t.name}.{f.name}: max allowed = {f.max}, but found {len(val)}", "structure", "cardinality")
                    tr = f.trule
                    if tr is None:
                        tr = f.trule = self.R.type(f.tkey)
                    stem = path + "." + f.name + "["
                    post, invs = f.post, f.invariants
                    for i, item in enumerate(val):
                        p = f"{stem}{i}]"
                        if type(item) is dict:
                            self.obj(item, tr, p)
                            if post:
                                self._post(item, f, p)
                            for inv in invs:
                                self.invariant(inv, item, p)
                        else:
                            self.value(item, f, p)
                    continue
            choices = self._generic(node, key, val, f, t, path, choices)
        if t.is_entry:
            self.entry_url = entry_saved
        if t.kind != "resource" and (not node or (len(node) == 1 and "id" in node)):
            self.error(path, "Constraint failed: ele-1: 'All FHIR elements must have a @value or children'", "invariant", "ele-1")
        for name, mn, keys in t.required_keys:
            for k in keys:
                if k in node:
                    if mn > 1:
                        self._count_min(node, keys, name, mn, t, path)
                    break
            else:
                self.error(path, f"{t.name}.{name}: minimum required = {mn}, but only found 0", "required", "cardinality")
        if t.hook is not None:
            t.hook(self, node, path)
        for inv in t.invariants:
            self.invariant(inv, node, path)

    def _generic(self, node: dict, key: str, val: Any, f: Field, t: TypeRule, path: str, choices: set[str] | None) -> set[str] | None:
        """One field the fast paths do not cover (choices, lists with problems, odd values)."""
        if f.choice:
            if choices is None:
                choices = set()
            if f.name in choices:
                self.error(f"{path}.{f.name}", f"only one type of {f.name}[x] may be present", "structure", "choice")
                return choices
            choices.add(f.name)
        if f.is_list:
            if type(val) is not list or not val:
                val = self._odd_list(key, val, f, path)
                if val is None:
                    return choices
            if 1 < f.max < len(val):
                self.error(f"{path}.{f.name}", f"{t.name}.{f.name}: max allowed = {f.max}, but found {len(val)}", "structure", "cardinality")
            prim = f.primitive is not None
            for i, item in enumerate(val):
                if item is None and prim:
                    continue  # value supplied by the `_key` array (checked there)
                self.value(item, f, f"{path}.{f.name}[{i}]")
            return choices
        fast = f.fast
        if fast is not None and not f.invariants and fast(val):
            return choices
        if type(val) is list or f.max == 0:
            self._odd_single(val, f, t, path)
            return choices
        self.value(val, f, f"{path}.{f.name}.ofType({f.type})" if f.choice else f"{path}.{f.name}")
        return choices

    def _choice_rest(self, val: Any, f: Field, t: TypeRule, path: str) -> None:
        """`_generic` for a single choice value, after the "only one type" bookkeeping and the fast
        check (the generated walkers do those themselves)."""
        if type(val) is list or f.max == 0:
            self._odd_single(val, f, t, path)
            return
        self.value(val, f, f"{path}.{f.name}.ofType({f.type})")

    def _post(self, item: dict, f: Field, path: str) -> None:
        """The check after walking a Reference, Coding or CodeableConcept."""
        post = f.post
        if post == POST_REFERENCE:
            self.reference(item, f, path)
        elif post == POST_CODING:
            self.coding(item, path)
            if f.binding is not None and f.strength == "required":
                self.coding_binding([item], f.binding, path, is_concept=False)
        elif f.binding is not None and f.strength == "required":
            codings = item.get("coding")
            self.coding_binding(codings if type(codings) is list else [], f.binding, path, is_concept=True)

    def _odd_key(self, node: dict, key: str, val: Any, t: TypeRule, path: str) -> None:
        """A key that is not a field: a primitive's `_key`, resourceType, or an unknown element."""
        if key[:1] == "_":
            self._primitive_extension(node, key, val, t, path)
        elif key != "resourceType" or t.kind != "resource":
            self.error(path, f"Unrecognized property '{key}'", "structure", "unknown-element")

    def _odd_list(self, key: str, val: Any, f: Field, path: str) -> list | None:
        """A list field that is not a non-empty JSON array: report, and what to check instead."""
        if type(val) is not list:
            self.error(f"{path}.{f.name}", f"property '{key}' must be a JSON array, not {_json_kind(val)}", "structure", "json-shape")
            return [val]
        self.error(f"{path}.{f.name}", "Array cannot be empty - the property should not be present if it has no values", "invalid", "empty-array")
        return None

    def _odd_single(self, val: Any, f: Field, t: TypeRule, path: str) -> None:
        if f.max == 0:
            self.error(f"{path}.{f.name}", f"{t.name}.{f.name}: maximum allowed = 0, but found 1", "structure", "cardinality")
        else:
            self.error(f"{path}.{f.name}", f"property '{f.key}' must be a single value, not an array (max cardinality 1)", "structure", "cardinality")

    def _slow_items(self, val: list, f: Field, path: str) -> None:
        for i, item in enumerate(val):
            if item is not None:
                self.value(item, f, f"{path}.{f.name}[{i}]")

    def _count_min(self, node: dict, keys: tuple[str, ...], name: str, mn: int, t: TypeRule, path: str) -> None:
        n = max((len(node[k]) if type(node[k]) is list else 1) for k in keys if k in node)
        if n < mn:
            self.error(path, f"{t.name}.{name}: minimum required = {mn}, but only found {n}", "required", "cardinality")

    def value(self, item: Any, f: Field, path: str) -> None:
        """Check one occurrence of a field (the full check, with reasons)."""
        kind = f.kind
        if kind == PRIMITIVE:
            self.primitive(item, f, path)
            if f.binding is not None and f.strength == "required" and type(item) is str:
                codes = self.R.valueset_codes(f.binding)
                if codes is not None and item not in codes:
                    self.error(path, f"The value '{item}' is not in the required value set {f.binding}", "code-invalid", "binding")
        elif kind == COMPLEX:
            t = f.trule
            if t is None:
                t = f.trule = self.R.type(f.tkey)
            self.obj(item, t, path)
            if f.post and type(item) is dict:
                self._post(item, f, path)
        elif kind == RESOURCE:
            self.resource(item, path, contained=f.name == "contained")
        else:
            self.extension(item, path, modifier=f.name == "modifierExtension")
        for inv in f.invariants:
            self.invariant(inv, item, path)

    # --- primitives -----------------------------------------------------------------
    def primitive(self, v: Any, f: Field, path: str) -> None:
        p = f.primitive
        kind = p.json
        if kind == "string":
            if not isinstance(v, str):
                self.error(path, f"the value of {f.type} must be a JSON string, found {_json_kind(v)}", "structure", "json-shape")
                return
            if not v:
                self.error(path, "@value cannot be empty", "invalid", "format")
                return
            tname = p.name
            if tname in _STRING_TYPES:
                if _CONTROL.search(v):
                    self.error(path, f"the {tname} contains an illegal control character", "invalid", "format")
                elif tname == "markdown" and _HTML_IN_MD.search(v):
                    self.add("warning", "invalid", path, "The markdown contains content that appears to be an embedded HTML tag; it will (or SHOULD) be escaped by the presentation layer", "markdown-html")
                if len(v) > 1048576:
                    self.error(path, "string values are limited to 1 MB", "too-long", "format")
                return
            if tname == "xhtml":
                for key, text in narrative.problems(v):
                    self.error(path, text, "invalid" if "well-formed" in text else "invariant", key)
                return
            if tname == "base64Binary":
                if not extras.base64_ok(v):
                    self.error(path, "Not a valid base64Binary value", "invalid", "format")
                return
            rx = p.regex
            if rx is not None and rx.fullmatch(v) is None:
                if tname == "id":
                    why = f"Too long ({len(v)} chars)" if len(v) > 64 else f"Invalid Characters ('{v}')"
                    self.error(path, f"Invalid {'Resource ' if path.endswith('.id') else ''}id: {why}", "invalid", "format")
                else:
                    self.error(path, f"Not a valid {tname} format: '{_clip(v)}'", "invalid", "format")
                return
            if tname in _DATE_TYPES:
                if len(v) >= 10 and not _real_date(v):
                    self.error(path, f"Not a valid {tname}: '{v}' is not a calendar date", "invalid", "format")
            elif tname in _URI_TYPES:
                self._uri(v, tname, path)
        elif kind == "boolean":
            if not isinstance(v, bool):
                self.error(path, f"the value of boolean must be JSON true or false, found {_json_kind(v)}", "structure", "json-shape")
        elif kind == "integer":
            if isinstance(v, bool) or not isinstance(v, int):
                if isinstance(v, float) and v.is_integer():
                    return
                self.error(path, f"the value of {p.name} must be a JSON integer, found {_json_kind(v)}", "structure", "json-shape")
                return
            if v < _INT_MIN or v > _INT_MAX:
                self.error(path, f"integer value {v} is outside the 32-bit range", "invalid", "format")
            elif p.name == "positiveInt" and v < 1:
                self.error(path, f"positiveInt must be at least 1, found {v}", "invalid", "format")
            elif p.name == "unsignedInt" and v < 0:
                self.error(path, f"unsignedInt must not be negative, found {v}", "invalid", "format")
        else:  # decimal
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                self.error(path, f"the value of decimal must be a JSON number, found {_json_kind(v)}", "structure", "json-shape")

    def _uri(self, v: str, tname: str, path: str) -> None:
        if v[0] == "#":
            if self.local_refs is not None:
                self.local_refs.add(v)
        elif v.startswith("urn:uuid:"):
            if not _UUID.match(v):
                self.error(path, f"UUIDs must be valid and lowercase ({v[9:]})", "invalid", "format")
        elif v.startswith("urn:oid:"):
            if not _OID.match(v):
                self.error(path, f"OIDs must be valid ({v})", "invalid", "format")
        elif tname == "url" and self.ctx.forbid_example_urls and _EXAMPLE_HOST.match(v):
            self.error(path, f"Example URLs are not allowed in this context ({v})", "invalid", "example-url")

    def _primitive_extension(self, node: dict, key: str, val: Any, t: TypeRule, path: str) -> bool:
        """A `_name` property: the id/extensions of a primitive. True if it carries content."""
        f = t.fields.get(key[1:])
        if f is None or f.primitive is None:
            self.error(path, f"Unrecognized property '{key}'", "structure", "unknown-element")
            return False
        name = f.name
        vpath = f"{path}.{name}"
        base_val = node.get(key[1:])
        if f.is_list:
            if not isinstance(val, list):
                self.error(vpath, f"property '{key}' must be a JSON array", "structure", "json-shape")
                return False
            if base_val is not None and (not isinstance(base_val, list) or len(base_val) != len(val)):
                self.error(vpath, f"the arrays '{key[1:]}' and '{key}' must have the same length", "structure", "json-shape")
            for i, item in enumerate(val):
                have_value = isinstance(base_val, list) and i < len(base_val) and base_val[i] is not None
                if item is None:
                    if not have_value:
                        self.error(f"{vpath}[{i}]", "an array item has neither a value nor extensions", "structure", "ele-1")
                    continue
                self._ext_holder(item, f"{vpath}[{i}]", f, have_value)
        else:
            if isinstance(val, list):
                self.error(vpath, f"property '{key}' must be a single object", "structure", "json-shape")
                return False
            self._ext_holder(val, vpath if not f.choice else f"{vpath}.ofType({f.type})", f, base_val is not None)
        return True

    def _ext_holder(self, item: Any, path: str, f: Field, has_value: bool) -> None:
        if not isinstance(item, dict):
            self.error(path, "the extension part of a primitive must be a JSON object", "structure", "json-shape")
            return
        for k in item:
            if k not in ("id", "extension"):
                self.error(path, f"The property '{f.name}' is invalid: unrecognized property '{k}' in the primitive's extension object", "invalid", "unknown-element")
        exts = item.get("extension")
        if isinstance(exts, list):
            for i, e in enumerate(exts):
                self.extension(e, f"{path}.extension[{i}]", modifier=False)
        elif exts is not None:
            self.error(path + ".extension", "property 'extension' must be a JSON array", "structure", "json-shape")
        if not has_value and not exts:
            self.error(path, "Constraint failed: ele-1: 'All FHIR elements must have a @value or children'", "invariant", "ele-1")
        if not has_value and f.binding is not None and f.strength == "required" and f.type == "code":
            self.error(path, f"No code provided, and a code is required from the value set {f.binding}", "code-invalid", "binding")

    # --- extensions -------------------------------------------------------------------
    def extension(self, ext: Any, path: str, *, modifier: bool, parent: dict | None = None, nested: bool = False) -> None:
        """Check an Extension: structure, ext-1, and its definition when known.

        `nested` marks a sub-extension of a complex extension; `parent` is that extension's
        definition (None when the parent is unknown, in which case children are not judged).
        """
        t = self.R.type("Extension")
        if not isinstance(ext, dict):
            self.error(path, f"an extension must be a JSON object, found {_json_kind(ext)}", "structure", "json-shape")
            return
        value_key = None
        for k in ext:
            if k.startswith("value") or k.startswith("_value"):
                value_key = k.lstrip("_")
                break
        subs = ext.get("extension")
        node = {k: v for k, v in ext.items() if k != "extension"} if subs is not None else ext
        fn = t.walk
        if fn is not None and self.generated:  # (what `obj` would call)
            fn(self, node, path)
        else:
            self.obj(node, t, path)
        has_value = value_key is not None
        has_ext = isinstance(subs, list) and bool(subs)
        if subs is not None and not isinstance(subs, list):
            self.error(f"{path}.extension", "property 'extension' must be a JSON array", "structure", "json-shape")
        elif subs == []:
            self.error(f"{path}.extension", "Array cannot be empty - the property should not be present if it has no values", "invalid", "empty-array")
        if has_value == has_ext:
            self.error(path, "Constraint failed: ext-1: 'Must have either extensions or value[x], not both'", "invariant", "ext-1")
        url = ext.get("url")
        definition = None
        if isinstance(url, str):
            if nested and ":" not in url:
                definition = ((parent or {}).get("children") or {}).get(url)
            else:
                definition = self.known_ext.get(url, _UNSET)
                if definition is _UNSET:
                    definition = self.R.extension(url) or self.extra_extensions(url)
                    if len(self.known_ext) > 10000:
                        self.known_ext.clear()
                    self.known_ext[url] = definition
                if definition is None and not nested and not url.startswith(self.ctx.extension_domains):
                    if modifier:
                        self.error(path, f"The modifier extension {url} is not known, so the resource cannot be safely processed", "structure", "extension-unknown")
                    else:
                        self.error(path, f"The extension {url} could not be found so is not allowed here", "structure", "extension-unknown")
        if has_ext:
            for i, sub in enumerate(subs):
                self.extension(sub, f"{path}.extension[{i}]", modifier=False, parent=definition, nested=True)
        if definition is None:
            return
        allowed = definition.get("value")
        if has_value and allowed is not None:
            vtype_code = self._suffix_type(value_key[5:])
            if vtype_code not in allowed:
                kinds = ", ".join(allowed) if allowed else "no value (a complex extension)"
                self.error(path, f"The Extension '{url}' definition allows for the types [{kinds}] but found type {vtype_code}", "structure", "extension-type")
            elif definition.get("binding") and isinstance(ext.get(value_key), (str, dict)):
                self._ext_binding(ext[value_key], vtype_code, definition["binding"], f"{path}.value.ofType({vtype_code})")
        elif not has_value and definition.get("valueMin", 0) > 0 and not has_ext:
            self.error(path, f"The Extension '{url}' requires a value", "structure", "extension-type")
        if has_ext and definition.get("noChildren"):
            self.error(path, f"The Extension '{url}' does not allow nested extensions", "structure", "extension-type")
        children = definition.get("children")
        if children and isinstance(subs, list):
            counts: dict[str, int] = {}
            for sub in subs:
                if isinstance(sub, dict) and isinstance(sub.get("url"), str):
                    counts[sub["url"]] = counts.get(sub["url"], 0) + 1
            for child_url, spec in children.items():
                n = counts.get(child_url, 0)
                if n < spec.get("min", 0):
                    self.error(path, f"The Extension '{url}' requires the sub-extension '{child_url}'", "structure", "extension-type")
                if spec.get("max", -1) >= 0 and n > spec["max"]:
                    self.error(path, f"The Extension '{url}' allows at most {spec['max']} '{child_url}'", "structure", "extension-type")

    def _suffix_type(self, suffix: str) -> str:
        """The type code of a `value[x]` suffix: 'DateTime' -> 'dateTime', 'Quantity' -> 'Quantity'."""
        low = suffix[:1].lower() + suffix[1:]
        return low if low in self.R.primitives else suffix

    def _ext_binding(self, value: Any, vtype: str, vs_url: str, path: str) -> None:
        if vtype == "code" and isinstance(value, str):
            codes = self.R.valueset_codes(vs_url)
            if codes is not None and value not in codes:
                self.error(path, f"The value '{value}' is not in the required value set {vs_url}", "code-invalid", "binding")
        elif vtype in ("Coding", "CodeableConcept") and isinstance(value, dict):
            codings = [value] if vtype == "Coding" else value.get("coding") or []
            self.coding_binding(codings, vs_url, path, is_concept=vtype == "CodeableConcept")

    # --- terminology ---------------------------------------------------------------------
    def coding(self, c: dict, path: str) -> None:
        """A Coding's code must exist in its CodeSystem when that CodeSystem is known here."""
        system, code = c.get("system"), c.get("code")
        if not isinstance(system, str) or not isinstance(code, str):
            return
        self.seen_codes.add((system, code))
        known = self.known_cs.get(system, _UNSET)
        if known is _UNSET:
            known = self.R.codesystem(system)
            if known is None:
                known = self.extra_codesystems(system)
            if len(self.known_cs) > 10000:
                self.known_cs.clear()
            self.known_cs[system] = known
        if known is not None:
            case, codes = known
            if (code if case else code.lower()) not in codes:
                # terminology.hl7.org code systems grow after R4 4.0.1 was published: a code
                # missing from the R4 copy may be valid in the current edition, so only warn.
                severity = "warning" if system.startswith(_THO) else "error"
                self.add(severity, "code-invalid", f"{path}.code", f"Unknown code '{code}' in the CodeSystem '{system}'", "unknown-code")
        elif system not in self.external_seen:
            self.external_seen.add(system)
            self.add("information", "informational", f"{path}.system",
                     f"Codes from '{system}' are not checked: the code system is external (e.g. SNOMED CT, LOINC) or unknown, and no terminology server is used", "external-terminology")

    def coding_binding(self, codings: list, vs_url: str, path: str, *, is_concept: bool) -> None:
        vs = self.R.valueset(vs_url)
        if vs is None:
            return
        real = [c for c in codings if isinstance(c, dict) and (c.get("code") is not None or c.get("system") is not None)]
        if not real:
            self.error(path, f"No code provided, and a code is required from the value set {vs_url}", "code-invalid", "binding")
            return
        for c in real:
            codes = vs.get(c.get("system"))
            if codes is not None and c.get("code") in codes:
                return
        first = real[0]
        what = "None of the codings provided are" if is_concept and len(real) > 1 else f"The Coding provided ({first.get('system')}#{first.get('code')}) is not"
        self.error(path, f"{what} in the value set {vs_url}, and a code from this value set is required", "code-invalid", "binding")

    # --- references -------------------------------------------------------------------------
    def reference(self, ref: dict, f: Field, path: str) -> None:
        r = ref.get("reference")
        if not isinstance(r, str):
            return
        if r.startswith("#"):
            if self.local_refs is not None:
                self.local_refs.add(r)
            if r == "#":
                return
            target = None
            for c in (self.root or {}).get("contained") or ():
                if isinstance(c, dict) and c.get("id") == r[1:]:
                    target = c
                    break
            if target is None:
                self.error(path, f"Constraint failed: ref-1: the local reference '{r}' does not resolve to a contained resource", "invariant", "ref-1")
            elif f.targets and target.get("resourceType") not in f.targets:
                self.error(path, f"the reference points to a {target.get('resourceType')}, which is not a valid target here (allowed: {', '.join(sorted(f.targets))})", "structure", "reference-target")
            return
        parts = ref_parts(r)
        rtype = parts[1]
        if rtype is not None:
            if rtype not in self.R.resource_types:
                if not parts[2]:
                    self.error(path, f"the reference '{r}' names an unknown resource type '{rtype}'", "structure", "reference-target")
                    return
            elif f.targets and rtype not in f.targets:
                self.error(path, f"The type '{rtype}' implied by the reference URL {r} is not a valid target for this element (must be one of {', '.join(sorted(f.targets))})", "structure", "reference-target")
                return
        if self.scopes:
            scope = self.scopes[-1]
            if scope.kind == "Parameters" and self.res is scope.owner:
                return  # a parameter's own valueReference may point anywhere
            scope.refs.append((path, r, f, self.entry_url, parts))

    def resolve(self, item: Any, env: fhirpath.Env) -> Any:
        """FHIRPath resolve(): contained, then the enclosing Bundle/Parameters."""
        r = item.get("reference") if isinstance(item, dict) else item
        if not isinstance(r, str):
            return None
        if r.startswith("#"):
            root = env.root if env is not None else None
            for c in (root or {}).get("contained") or ():
                if isinstance(c, dict) and c.get("id") == r[1:]:
                    return c
            return None
        if self.scopes:
            return self.scopes[-1].find(r, self.entry_url)
        return self.index.find(r, None)

    # --- invariants ---------------------------------------------------------------------------
    def invariant(self, inv: Invariant, node: Any, path: str) -> None:
        guard = inv.guard
        if guard is not None and type(node) is dict:
            for name in guard:
                if name in node or ("_" + name) in node or (name in self.R.choice_names and fhirpath.has_choice(node, name)):
                    break
            else:
                return  # none of the elements it depends on is present: it holds
        self.eval_invariant(inv, node, path)

    def eval_invariant(self, inv: Invariant, node: Any, path: str) -> None:
        """Evaluate an invariant (its acceptor first, see native.py) and report it if it fails."""
        accept = inv.accept
        if accept is not None and type(node) is dict and accept(node):
            return
        self.fhirpath_invariant(inv, node, path)

    def fhirpath_invariant(self, inv: Invariant, node: Any, path: str) -> None:
        """Evaluate an invariant's FHIRPath and report it if it fails (or cannot be evaluated)."""
        env = fhirpath.Env(self.res, self.root, node, node, 0, self.resolve, narrative.html_ok)
        try:
            verdict = fhirpath.truth(inv.fn([node], env))
        except fhirpath.EvalError as exc:
            if inv.key not in self.failed_invariants:
                self.failed_invariants.add(inv.key)
                self.add("information", "informational", path, f"Invariant {inv.key} could not be evaluated here ({exc}); not checked", inv.key)
            return
        if verdict is not True:
            sev = "error" if inv.severity == "error" else "warning"
            self.add(sev, "invariant", path, f"Constraint failed: {inv.key}: '{inv.human}'", inv.key)


def _json_kind(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, (int, float)):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list):
        return "an array"
    return "an object"


def _clip(v: str) -> str:
    return v if len(v) <= 60 else v[:57] + "..."





class ReferenceWalker(Walker):
    """The walker with the interpreter only (no generated code, no acceptors): the reference for
    selfcheck.py."""

    obj = Walker.generic_obj
    eval_invariant = Walker.fhirpath_invariant
    generated = False
