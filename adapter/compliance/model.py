"""Runtime form of the compiled R4 rules: type tables, fields, bindings, extensions, invariants.

`rules()` loads `data/r4-rules.json` once; each type's table is built on first use and cached,
so a process pays only for the types it meets.
"""

from __future__ import annotations

import calendar
import json
import re
from dataclasses import dataclass, field
from functools import cache, cached_property
from importlib import resources
from typing import Any, Callable

from adapter.compliance import fhirpath, native

#: Invariants implemented natively in Python (faster, or FHIRPath the engine cannot run).
NATIVE_INVARIANTS = {
    "ele-1": "every element has a value or children (checked while walking)",
    "ext-1": "an extension has a value or nested extensions, not both (checked in the extension walker)",
    "txt-1": "narrative XHTML: only the allowed elements and attributes (htmlChecks, see narrative.py)",
    "txt-2": "narrative XHTML has non-whitespace content (htmlChecks, see narrative.py)",
    "dom-2": "contained resources do not contain resources",
    "dom-3": "every contained resource is referenced from the container (or references it)",
    "dom-4": "contained resources have no meta.versionId / meta.lastUpdated",
    "dom-5": "contained resources have no security labels",
    "ref-1": "a local reference '#id' resolves to a contained resource",
    "bdl-3": "entry.request present exactly for batch/transaction/history Bundles (extras.py)",
    "bdl-4": "entry.response present exactly for batch-response/transaction-response/history Bundles (extras.py)",
    "bdl-7": "fullUrl (with meta.versionId) unique in a non-history Bundle (extras.py)",
}
#: Invariants deliberately not reported, with the reason (listed in docs/compliance.md).
SKIPPED_INVARIANTS = {
    "dom-6": "best-practice guideline (a resource should have narrative); the HL7 validator reports it only as a warning and carebridge payloads carry no narrative by design",
}


@dataclass(slots=True)
class Invariant:
    """A FHIRPath constraint with its compiled function (None when it cannot be compiled)."""

    key: str
    severity: str
    human: str
    expression: str
    fn: Callable | None
    problem: str | None = None
    #: Element names of which one must be present for the invariant to possibly fail (see fhirpath.guard).
    guard: tuple[str, ...] | None = None
    #: A cheap test that the invariant certainly holds on a (dict) context (see native.py).
    accept: Callable[[dict], bool] | None = None


@dataclass(slots=True)
class Primitive:
    """Format rule of one primitive type."""

    name: str
    json: str  # "string" | "boolean" | "integer" | "number"
    regex: re.Pattern | None
    #: The same regex without capturing groups (the same language, matched faster): for the
    #: fast acceptance checks, which only ask whether it matches.
    plain: re.Pattern | None = None


#: Field.kind values: how the walker treats a value.
PRIMITIVE, RESOURCE, EXTENSION, COMPLEX = 0, 1, 2, 3
#: Field.post values: the extra check after walking a complex value.
POST_NONE, POST_REFERENCE, POST_CODING, POST_CONCEPT = 0, 1, 2, 3
#: TypeRule.dispatch modes: the walker's fast paths (anything unusual takes GENERIC).
SINGLE_FAST, LIST_FAST, SINGLE_COMPLEX, LIST_COMPLEX, GENERIC = 0, 1, 2, 3, 9

_INT_MIN, _INT_MAX = -2147483648, 2147483647
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_DATES = frozenset({"date", "dateTime", "instant"})
_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_URN = re.compile(r"urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|urn:oid:[0-2](\.(0|[1-9][0-9]*))+")


#: Days of each month (February: of a common year).
_MONTH_DAYS = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _real_date(v: str) -> bool:
    """The YYYY-MM-DD at the start of `v` is a real calendar date (the walker's full check; `v`
    matched its type's regex, so the month is 01-12 and the day 01-31)."""
    y, m, d = int(v[0:4]), int(v[5:7]), int(v[8:10])
    if m == 2 and d == 29:
        return calendar.isleap(y)
    return d <= _MONTH_DAYS[m]
_URIS = frozenset({"uri", "url", "canonical", "oid", "uuid"})


def non_capturing(pattern: str) -> str:
    """`pattern` with every capturing group `(` made non-capturing `(?:` (for patterns without
    back-references, as the R4 primitive regexes are: the language stays the same)."""
    out: list[str] = []
    escaped = in_class = False
    for i, ch in enumerate(pattern):
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
        elif ch == "(" and pattern[i + 1 : i + 2] != "?":
            out.append("(?:")
            continue
        out.append(ch)
    return "".join(out)


def fast_expr(p: "Primitive", codes: frozenset | None, v: str = "v") -> tuple[str, dict[str, Any]] | None:
    """The fast acceptance check of a primitive as a Python expression over the name `v`, with the
    names it needs; None when there is none. `fast_check` evaluates it into a predicate and the
    generated walker (fastwalk.py) inlines it, so both accept exactly the same values.

    True only for values that are certainly fine: False only means "look closer" (the full check
    decides and explains).
    """
    name = p.name
    ctl = f"(({v}).isprintable() or _CONTROL_SEARCH({v}) is None)"
    env: dict[str, Any] = {"_CONTROL_SEARCH": _CONTROL.search}
    if name == "boolean":
        return f"type({v}) is bool", env
    if name == "integer":
        return f"(type({v}) is int and {_INT_MIN} <= {v} <= {_INT_MAX})", env
    if name == "positiveInt":
        return f"(type({v}) is int and 1 <= {v} <= {_INT_MAX})", env
    if name == "unsignedInt":
        return f"(type({v}) is int and 0 <= {v} <= {_INT_MAX})", env
    if name == "decimal":
        return f"(type({v}) is float or type({v}) is int)", env
    # str.isprintable() is false for every control character: only the rare string with a
    # newline, tab or non-printable character needs the regex.
    if name == "string":
        return f"(type({v}) is str and {v} != \"\" and {ctl})", env
    if name == "markdown":
        return f"(type({v}) is str and {v} != \"\" and \"<\" not in {v} and {ctl})", env
    if p.regex is None:
        return None
    env["_RX"] = (p.plain or p.regex).fullmatch
    if name == "base64Binary":
        # the R4 regex backtracks through every group of four: first try what the full check
        # accepts (extras.base64_ok) for text without white space, a single character class
        env["_B64"] = _BASE64.fullmatch
        return f"(type({v}) is str and ({v} != \"\" and len({v}) % 4 == 0 and _B64({v}) is not None or _RX({v}) is not None))", env
    if codes is not None:
        env["_CODES"] = codes
        return f"(type({v}) is str and {v} in _CODES)", env
    if name == "code":
        seen: set[str] = set()
        env["_SEEN"] = seen
        env["_MEMO"] = _memo_code(p.regex.fullmatch, seen)
        return f"(type({v}) is str and ({v} in _SEEN or _MEMO({v})))", env
    if name in _DATES:  # a day after the 28th: a real calendar date (the full check's own test)
        env["_REAL_DATE"] = _real_date
        return f"(type({v}) is str and _RX({v}) is not None and (len({v}) < 10 or {v}[8:10] <= \"28\" or _REAL_DATE({v})))", env
    if name in ("uri", "url", "canonical"):
        # values that passed are remembered (`_Uris`): systems, profiles and value sets recur
        uris = _URLS if name == "url" else _URIS
        env["_SEEN"] = uris.seen
        env["_MEMO"] = uris.ok
        return f"(type({v}) is str and ({v} in _SEEN or _MEMO({v})))", env
    return f"(type({v}) is str and _RX({v}) is not None)", env


def _uri_fast(v: str) -> bool:
    """The fast acceptance of a uri or canonical (the full check decides when False)."""
    # \S*: no space, and isprintable() rules out the other ASCII whitespace; a valid lower-case
    # urn:uuid: or urn:oid: has no white space either
    return (v != "" and v[0] != "#" and v[:4] != "urn:" and " " not in v and v.isprintable()
            or v[:4] == "urn:" and _URN.fullmatch(v) is not None)


def _url_fast(v: str) -> bool:
    """The fast acceptance of a url: a uri that is not an example URL (which the full check
    may report, see `Walker._uri`)."""
    return _uri_fast(v) and (v[:4] == "urn:" or "example" not in v and "acme." not in v)


class _Uris:
    """Values of one fast acceptance test (`_uri_fast` or `_url_fast`) that passed, remembered."""

    def __init__(self, test: Callable[[str], bool]) -> None:
        self.test = test
        self.seen: set[str] = set()

    def ok(self, v: str) -> bool:
        """`test(v)`, remembering `v` when it passes (bounded)."""
        if not self.test(v):
            return False
        if len(self.seen) > 50000:
            self.seen.clear()
        self.seen.add(v)
        return True


_URIS = _Uris(_uri_fast)  # uri and canonical
_URLS = _Uris(_url_fast)  # url


def fast_check(p: "Primitive", codes: frozenset | None) -> Callable[[Any], bool] | None:
    """A predicate true for values that are certainly fine (the walker then skips its full check).

    False only means "look closer": the full check decides and explains. None: always look closer.
    """
    found = fast_expr(p, codes)
    if found is None:
        return None
    expr, env = found
    fn = eval("lambda v: " + expr, env)  # noqa: S307 - our own expression text (fast_expr)
    fn.expr, fn.env = expr, env  # the generated walker inlines the same expression
    return fn


def _memo_code(rx: Callable, seen: set[str]) -> Callable[[Any], bool]:
    """A `code` check remembering valid codes in `seen` (a code's vocabulary is small; bounded anyway)."""

    def check(v: Any) -> bool:
        if type(v) is not str:
            return False
        if v in seen:
            return True
        if rx(v) is None:
            return False
        if len(seen) > 50000:
            seen.clear()
        seen.add(v)
        return True
    return check


@dataclass(slots=True)
class Field:
    """One JSON property of a complex type (a choice element has one Field per allowed type)."""

    key: str
    name: str
    type: str
    tkey: str
    min: int
    max: int
    is_list: bool
    choice: bool
    primitive: Primitive | None
    binding: str | None = None
    strength: str | None = None
    targets: frozenset | None = None
    invariants: tuple = ()
    modifier: bool = False
    kind: int = PRIMITIVE
    post: int = POST_NONE
    fast: Callable[[Any], bool] | None = None
    trule: "TypeRule | None" = None


@dataclass(slots=True)
class TypeRule:
    """A resource, data type or backbone element: its fields and invariants."""

    name: str
    kind: str
    abstract: bool
    fields: dict[str, Field]
    required: tuple[tuple[str, int], ...]
    names: dict[str, tuple[int, int]]
    invariants: tuple[Invariant, ...]
    base: str | None = None
    hook: Callable | None = None
    is_entry: bool = False
    #: (element name, min, the JSON keys that carry it) of each required element.
    required_keys: tuple[tuple[str, int, tuple[str, ...]], ...] = ()
    #: JSON key -> (walker mode, Field).
    dispatch: dict[str, tuple[int, Field]] = field(default_factory=dict)
    #: The generated walker of this type (fastwalk.py), made on first use.
    walk: Callable | None = None


def _mode(f: Field) -> int:
    """The walker's fast path for a field (see the *_FAST / *_COMPLEX constants)."""
    if f.choice or f.max == 0:
        return GENERIC
    if f.fast is not None and not f.invariants:
        return LIST_FAST if f.is_list else SINGLE_FAST
    if f.kind == COMPLEX:
        return LIST_COMPLEX if f.is_list else SINGLE_COMPLEX
    return GENERIC


@dataclass
class Rules:
    """All compiled R4 rules."""

    raw: dict[str, Any]
    _types: dict[str, TypeRule] = field(default_factory=dict)
    _codes: dict[str, Any] = field(default_factory=dict)
    _inv: dict[int, Invariant] = field(default_factory=dict)
    _cs: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def primitives(self) -> dict[str, Primitive]:
        out = {}
        for name, p in self.raw["primitives"].items():
            # ASCII: \s and \S mean what they mean in Java regexes (the spec's regex dialect)
            rx = re.compile(p["regex"], re.S | re.ASCII) if p.get("regex") else None
            plain = re.compile(non_capturing(p["regex"]), re.S | re.ASCII) if p.get("regex") else None
            out[name] = Primitive(name, p["json"], rx, plain)
        return out

    @cached_property
    def resource_types(self) -> frozenset[str]:
        return frozenset(k for k, t in self.raw["types"].items() if t["kind"] == "resource" and not t.get("abstract"))

    @cached_property
    def all_type_names(self) -> frozenset[str]:
        return frozenset(k for k in self.raw["types"] if "." not in k)

    @cached_property
    def choice_names(self) -> frozenset[str]:
        return frozenset(row[0][:-3] for t in self.raw["types"].values() for row in t["elements"] if row[0].endswith("[x]"))

    def invariant(self, idx: int) -> Invariant:
        inv = self._inv.get(idx)
        if inv is None:
            key, severity, human, expression = self.raw["invariants"][idx]
            fn, problem = None, None
            if key not in NATIVE_INVARIANTS and key not in SKIPPED_INVARIANTS:
                try:
                    fn = fhirpath.compile(expression)
                except fhirpath.Unsupported as exc:
                    problem = str(exc)
            g = fhirpath.guard(expression) if fn is not None else None
            accept = native.acceptor(key, expression) if fn is not None else None
            inv = self._inv[idx] = Invariant(key, severity, human, expression, fn, problem, tuple(sorted(g)) if g else None, accept)
        return inv

    def type(self, name: str) -> TypeRule | None:
        """The rule table of a type or backbone path (None if unknown)."""
        t = self._types.get(name)
        if t is None:
            spec = self.raw["types"].get(name)
            if spec is None:
                return None
            t = self._types[name] = self._build(name, spec)
        return t

    def _build(self, name: str, spec: dict) -> TypeRule:
        fields: dict[str, Field] = {}
        required: list[tuple[str, int]] = []
        names: dict[str, tuple[int, int]] = {}
        prims = self.primitives
        is_resource = spec["kind"] == "resource"
        for row in spec["elements"]:
            ename, mn, mx, types = row[0], row[1], row[2], row[3]
            opts = row[4] if len(row) > 4 else {}
            choice = ename.endswith("[x]")
            base = ename[:-3] if choice else ename
            if is_resource and ename == "id":
                types = ["id"]  # R4 snapshots type Resource.id as string; the spec says id
            names[base] = (mn, mx)
            if mn > 0:
                required.append((base, mn))
            invs = tuple(self.invariant(i) for i in opts.get("inv", ()))
            invs = tuple(i for i in invs if i.key not in ("ext-1",))
            for t in types:
                code, tkey = (t[0], t[1]) if isinstance(t, list) else (t, t)
                if "c" in opts:
                    tkey = opts["c"]
                key = base + code[0].upper() + code[1:] if choice else base
                prim = prims.get(code)
                binding, strength = opts.get("b"), opts.get("bs")
                codes = self.valueset_codes(binding) if prim is not None and binding and strength == "required" else None
                kind = PRIMITIVE if prim is not None else RESOURCE if code == "Resource" else EXTENSION if code == "Extension" else COMPLEX
                post = {"Reference": POST_REFERENCE, "Coding": POST_CODING, "CodeableConcept": POST_CONCEPT}.get(code, POST_NONE)
                fields[key] = Field(
                    key=key, name=base, type=code, tkey=tkey, min=mn, max=mx, is_list=(mx != 1 and mx != 0) and not choice,
                    choice=choice, primitive=prim, binding=binding, strength=strength,
                    targets=frozenset(opts["r"]) if "r" in opts else None,
                    invariants=tuple(i for i in invs if i.fn is not None), modifier=bool(opts.get("mod")),
                    kind=kind, post=post, fast=fast_check(prim, codes) if prim is not None else None,
                )
        invariants = tuple(i for i in (self.invariant(i) for i in spec.get("inv", ())) if i.fn is not None)
        required_keys = tuple(
            (name, mn, tuple(k for f in fields.values() if f.name == name for k in (f.key, "_" + f.key)))
            for name, mn in required
        )
        from adapter.compliance.extras import TYPE_HOOKS

        return TypeRule(name, spec["kind"], bool(spec.get("abstract")), fields, tuple(required), names, invariants, spec.get("base"),
                        hook=TYPE_HOOKS.get(name), is_entry=name == "Bundle.entry", required_keys=required_keys,
                        dispatch={k: (_mode(f), f) for k, f in fields.items()})

    # terminology ---------------------------------------------------------------
    def valueset(self, url: str) -> dict[str, frozenset] | None:
        """{system: codes} of a required value set; None if it cannot be enumerated here."""
        key = "vs:" + url
        if key not in self._codes:
            vs = self.raw["valuesets"].get(url)
            if vs is None or "codes" not in vs:
                self._codes[key] = None
            else:
                self._codes[key] = {s: frozenset(c) for s, c in vs["codes"].items()}
        return self._codes[key]

    def valueset_codes(self, url: str) -> frozenset | None:
        """All codes of a value set regardless of system (for `code` elements)."""
        key = "vsc:" + url
        if key not in self._codes:
            vs = self.valueset(url)
            self._codes[key] = None if vs is None else frozenset(c for codes in vs.values() for c in codes)
        return self._codes[key]

    def codesystem(self, url: str) -> tuple[bool, frozenset] | None:
        """(case sensitive, codes) of a complete CodeSystem the rules know, else None."""
        try:
            return self._cs[url]
        except KeyError:
            cs = self.raw["codesystems"].get(url)
            found = None if cs is None else (cs["cs"], frozenset(cs["codes"]) if cs["cs"] else frozenset(c.lower() for c in cs["codes"]))
            self._cs[url] = found
            return found

    def extension(self, url: str) -> dict | None:
        return self.raw["extensions"].get(url)


@cache
def rules() -> Rules:
    """The compiled R4 rules (loaded once per process)."""
    text = resources.files("adapter.compliance").joinpath("data", "r4-rules.json").read_text("utf-8")
    r = Rules(json.loads(text))
    fhirpath.set_choice_names(set(r.choice_names))
    return r
