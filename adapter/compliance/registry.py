"""The project's conformance artefacts: profiles, extensions, ValueSets and CodeSystems.

Everything in `adapter/compliance/profiles/*.json` is loaded once: StructureDefinitions that
constrain a resource are profiles, those of type Extension are extension definitions,
ValueSets are expanded. The project's CodeSystems come from `mappings.terminology` (one per
code table) so the engine checks exactly the codes the mappings write; each also gets an
implicit all-codes ValueSet at `<base>/ValueSet/<table name>`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from adapter.compliance import fhirpath, native
from adapter.compliance.model import Invariant, rules
from mappings import systems


@dataclass
class PNode:
    """One element of a profile's differential, with its children and slices."""

    name: str
    slice_name: str | None = None
    min: int | None = None
    max: int | None = None
    fixed: Any = None
    pattern: Any = None
    binding: tuple[str, str] | None = None
    constraints: list[Invariant] = field(default_factory=list)
    targets: frozenset[str] | None = None
    types: frozenset[str] | None = None
    ext_url: str | None = None
    slicing: dict | None = None
    children: dict[str, "PNode"] = field(default_factory=dict)
    slices: dict[str, "PNode"] = field(default_factory=dict)


@dataclass
class Profile:
    """A compiled profile: its URL, constrained type and element tree."""

    url: str
    type: str
    title: str
    root: PNode
    #: `test(resource, resolver)`: the resource certainly conforms (profile_fast.py), made on first use.
    conforms: Any = None


def _max(v: str | None) -> int | None:
    if v is None:
        return None
    return -1 if v == "*" else int(v)


def compile_profile(sd: dict) -> Profile:
    """The element tree of a StructureDefinition's differential."""
    url = sd["url"]
    root = PNode(sd["type"])
    for el in sd["differential"]["element"]:
        segments = el["id"].split(".")[1:]
        node = root
        for seg in segments:
            name, _, slice_name = seg.partition(":")
            node = node.children.setdefault(name, PNode(name))
            if slice_name:
                node = node.slices.setdefault(slice_name, PNode(name, slice_name))
        if "min" in el:
            node.min = int(el["min"])
        if "max" in el:
            node.max = _max(el["max"])
        for key, value in el.items():
            if key.startswith("fixed"):
                node.fixed = value
            elif key.startswith("pattern"):
                node.pattern = value
        b = el.get("binding")
        if b and b.get("valueSet") and b.get("strength") in ("required", "extensible"):
            node.binding = (b["strength"], b["valueSet"].split("|")[0])
        for c in el.get("constraint", ()):
            try:
                fn = fhirpath.compile(c["expression"])
                problem = None
            except fhirpath.Unsupported as exc:  # reported by the profile tests, never at run time
                fn, problem = None, str(exc)
            accept = native.acceptor(c["key"], c["expression"]) if fn is not None else None
            node.constraints.append(Invariant(c["key"], c.get("severity", "error"), c.get("human", ""), c["expression"], fn, problem, None, accept))
        types = el.get("type")
        if types:
            targets = {p.rsplit("/", 1)[-1] for t in types for p in t.get("targetProfile", ())}
            if targets:
                node.targets = frozenset(targets)
            node.types = frozenset(t["code"] for t in types)
            ext = [p for t in types if t["code"] == "Extension" for p in t.get("profile", ())]
            if ext:
                node.ext_url = ext[0]
        if "slicing" in el:
            node.slicing = el["slicing"]
    return Profile(url, sd["type"], sd.get("title", sd.get("name", url)), root)


def compile_extension_sd(sd: dict) -> dict:
    """An extension definition in the same form as the compiled R4 ones (see build_rules)."""
    from adapter.compliance.build_rules import compile_extension

    return compile_extension(sd, set())


class Registry:
    """Lookup tables of the project's artefacts (built once)."""

    def __init__(self, docs: list[dict]) -> None:
        self.profiles: dict[str, Profile] = {}
        self.extensions: dict[str, dict] = {}
        self._vs_docs: dict[str, dict] = {}
        self._vs: dict[str, dict[str, frozenset] | None] = {}
        self.codesystems: dict[str, tuple[bool, frozenset]] = {}
        self.properties: dict[str, dict[str, dict[str, str]]] = {}
        self._load_terminology()
        for doc in docs:
            rt = doc.get("resourceType")
            if rt == "StructureDefinition":
                if doc.get("type") == "Extension":
                    self.extensions[doc["url"]] = compile_extension_sd(doc)
                else:
                    self.profiles[doc["url"]] = compile_profile(doc)
            elif rt == "ValueSet":
                self._vs_docs[doc["url"]] = doc
            elif rt == "CodeSystem":
                self._add_codesystem(doc)

    def _load_terminology(self) -> None:
        from mappings import terminology

        for name, url in terminology.CODE_SYSTEM_URLS.items():
            self._add_codesystem(terminology.code_system(name))
            props: dict[str, dict[str, str]] = {}
            for code, row in terminology.table(name).items():
                props[code] = {k: str(v) for k, v in row.items() if k not in ("code", "display") and v is not None}
            self.properties[url] = props
            self._vs_docs[f"{systems.BASE}/ValueSet/{name}"] = {"compose": {"include": [{"system": url}]}}

    def _add_codesystem(self, cs: dict) -> None:
        codes: set[str] = set()
        todo = list(cs.get("concept", ()))
        while todo:
            c = todo.pop()
            codes.add(c["code"])
            todo.extend(c.get("concept", ()))
        self.codesystems[cs["url"]] = (True, frozenset(codes))

    def codesystem(self, url: str) -> tuple[bool, frozenset] | None:
        """(case sensitive, codes) of a project CodeSystem."""
        return self.codesystems.get(url)

    def extension(self, url: str) -> dict | None:
        return self.extensions.get(url)

    def property(self, system: str, code: str, prop: str) -> str | None:
        """A concept property of a project code (an extra column of its code table)."""
        return self.properties.get(system, {}).get(code, {}).get(prop)

    def valueset(self, url: str) -> dict[str, frozenset] | None:
        """{system: codes} of a project (or R4) ValueSet; None if unknown or not enumerable."""
        if url in self._vs:
            return self._vs[url]
        doc = self._vs_docs.get(url)
        result: dict[str, frozenset] | None
        if doc is None:
            result = rules().valueset(url)
        else:
            out: dict[str, set[str]] = {}
            result = out  # type: ignore[assignment]
            for inc in doc.get("compose", {}).get("include", ()):
                system = inc.get("system")
                if inc.get("concept"):
                    out.setdefault(system, set()).update(c["code"] for c in inc["concept"])
                elif system:
                    known = self.codesystem(system) or rules().codesystem(system)
                    if known is None:
                        result = None
                        break
                    out.setdefault(system, set()).update(known[1])
            if result is not None:
                result = {s: frozenset(c) for s, c in out.items()}
        self._vs[url] = result
        return result


def _documents() -> list[dict]:
    folder = resources.files("adapter.compliance").joinpath("profiles")
    docs = []
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        if entry.name.endswith(".json"):
            docs.append(json.loads(entry.read_text("utf-8")))
    return docs


@cache
def registry() -> Registry:
    """The project's artefacts (loaded once per process)."""
    return Registry(_documents())
