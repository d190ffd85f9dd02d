"""Runtime form of the compiled R4 rules: type tables, fields, bindings, extensions, invariants.

`rules()` loads `data/r4-rules.json` once; each type's table is built on first use and cached,
so a process pays only for the types it meets.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cache, cached_property
from importlib import resources
from typing import Any, Callable

from adapter.compliance import fhirpath

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


@dataclass(slots=True)
class Primitive:
    """Format rule of one primitive type."""

    name: str
    json: str  # "string" | "boolean" | "integer" | "number"
    regex: re.Pattern | None


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


@dataclass
class Rules:
    """All compiled R4 rules."""

    raw: dict[str, Any]
    _types: dict[str, TypeRule] = field(default_factory=dict)
    _codes: dict[str, Any] = field(default_factory=dict)
    _inv: dict[int, Invariant] = field(default_factory=dict)

    @cached_property
    def primitives(self) -> dict[str, Primitive]:
        out = {}
        for name, p in self.raw["primitives"].items():
            # ASCII: \s and \S mean what they mean in Java regexes (the spec's regex dialect)
            rx = re.compile(p["regex"], re.S | re.ASCII) if p.get("regex") else None
            out[name] = Primitive(name, p["json"], rx)
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
            inv = self._inv[idx] = Invariant(key, severity, human, expression, fn, problem)
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
                fields[key] = Field(
                    key=key, name=base, type=code, tkey=tkey, min=mn, max=mx, is_list=(mx != 1 and mx != 0) and not choice,
                    choice=choice, primitive=prims.get(code),
                    binding=opts.get("b"), strength=opts.get("bs"),
                    targets=frozenset(opts["r"]) if "r" in opts else None,
                    invariants=invs, modifier=bool(opts.get("mod")),
                )
        invariants = tuple(self.invariant(i) for i in spec.get("inv", ()))
        return TypeRule(name, spec["kind"], bool(spec.get("abstract")), fields, tuple(required), names, invariants, spec.get("base"))

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
        key = "cs:" + url
        if key not in self._codes:
            cs = self.raw["codesystems"].get(url)
            self._codes[key] = None if cs is None else (cs["cs"], frozenset(cs["codes"]) if cs["cs"] else frozenset(c.lower() for c in cs["codes"]))
        return self._codes[key]

    def extension(self, url: str) -> dict | None:
        return self.raw["extensions"].get(url)


@cache
def rules() -> Rules:
    """The compiled R4 rules (loaded once per process)."""
    text = resources.files("adapter.compliance").joinpath("data", "r4-rules.json").read_text("utf-8")
    r = Rules(json.loads(text))
    fhirpath.set_choice_names(set(r.choice_names))
    return r
