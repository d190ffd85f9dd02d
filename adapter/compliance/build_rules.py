"""Compile the official FHIR R4 definitions into the compact rules file the engine loads.

Run after changing the compiler (needs the `hl7.fhir.r4.examples@4.0.1` npm package, fetched
into `.cache/r4/` with `npm pack` when absent):

    python -m adapter.compliance.build_rules            # writes adapter/compliance/data/r4-rules.json
    python -m adapter.compliance.build_rules --check    # exit 1 if the committed file is stale

What is carried over from the standard: element names and cardinalities, types, required
bindings (expanded to their codes), the codes of every complete CodeSystem, core extension
definitions and invariants (key, severity, human text, FHIRPath). Nothing else.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Iterable

from adapter.compliance.r4package import package_dir

OUT = Path(__file__).with_name("data") / "r4-rules.json"
FORMAT = 1

FHIR_TYPE_EXT = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type"
REGEX_EXT = "http://hl7.org/fhir/StructureDefinition/regex"
SYSTEM_TYPES = {  # FHIRPath system types used for Element.id, Extension.url etc. when no fhir-type is given
    "http://hl7.org/fhirpath/System.String": "string",
    "http://hl7.org/fhirpath/System.Boolean": "boolean",
    "http://hl7.org/fhirpath/System.Integer": "integer",
    "http://hl7.org/fhirpath/System.Decimal": "decimal",
    "http://hl7.org/fhirpath/System.Date": "date",
    "http://hl7.org/fhirpath/System.DateTime": "dateTime",
    "http://hl7.org/fhirpath/System.Time": "time",
}
JSON_KIND = {"boolean": "boolean", "integer": "integer", "positiveInt": "integer", "unsignedInt": "integer", "decimal": "number"}
#: Value sets bound `required` that cannot be enumerated here (external code systems).
EXTERNAL_SYSTEMS = {"urn:ietf:bcp:13", "urn:ietf:bcp:47", "http://unitsofmeasure.org", "urn:iso:std:iso:4217", "https://www.iana.org/time-zones", "http://loinc.org", "http://snomed.info/sct"}


def _bundle(pkg: Path, name: str) -> list[dict]:
    return [e["resource"] for e in json.loads((pkg / name).read_text("utf-8"))["entry"]]


def _canon(url: str | None) -> str | None:
    return url.split("|")[0] if url else url


def _type_code(t: dict) -> str:
    code = t.get("code", "")
    for ext in [*t.get("extension", ()), *(t.get("_code") or {}).get("extension", ())]:
        if ext.get("url") == FHIR_TYPE_EXT:
            return ext.get("valueUrl") or ext.get("valueUri") or code
    return SYSTEM_TYPES.get(code, code)


class InvariantTable:
    """Deduplicated list of invariants referenced by index from types and elements."""

    def __init__(self) -> None:
        self.rows: list[list[str]] = []
        self._index: dict[tuple, int] = {}

    def add(self, c: dict) -> int:
        row = [c["key"], c.get("severity", "error"), c.get("human", ""), c.get("expression", "")]
        key = tuple(row)
        if key not in self._index:
            self._index[key] = len(self.rows)
            self.rows.append(row)
        return self._index[key]


def _element_types(el: dict, profiled: set[str]) -> list:
    out: list = []
    for t in el.get("type", ()):
        code = _type_code(t)
        prof = [p.rsplit("/", 1)[-1] for p in t.get("profile", ()) if p.rsplit("/", 1)[-1] in profiled]
        out.append([code, prof[0]] if prof else code)
    return out


def _targets(el: dict) -> list[str] | None:
    targets: set[str] = set()
    for t in el.get("type", ()):
        if t.get("code") == "Reference":
            for p in t.get("targetProfile", ()):
                targets.add(p.rsplit("/", 1)[-1])
    if not targets or "Resource" in targets:
        return None
    return sorted(targets)


def compile_structure(sd: dict, types: dict, invs: InvariantTable, profiled: set[str]) -> None:
    """Add one StructureDefinition (its snapshot) to `types`: the type itself and its backbones."""
    elements = [e for e in sd["snapshot"]["element"] if "sliceName" not in e and ":" not in e["id"]]
    root = elements[0]
    name = sd["id"] if sd.get("derivation") == "constraint" else sd["type"]
    kind = {"resource": "resource", "complex-type": "complex", "primitive-type": "primitive"}.get(sd["kind"], sd["kind"])
    children: dict[str, list[dict]] = {}
    for el in elements[1:]:
        parent, _, _ = el["path"].rpartition(".")
        children.setdefault(parent, []).append(el)
    backbone_paths = {el["path"] for el in elements[1:] if el["path"] in children}

    def node(path: str, el: dict, key: str, node_kind: str) -> None:
        entry: dict[str, Any] = {"kind": node_kind, "elements": []}
        if key == name:
            entry["abstract"] = bool(sd.get("abstract"))
            if sd.get("baseDefinition"):
                entry["base"] = sd["baseDefinition"].rsplit("/", 1)[-1]
        if key == name:  # a backbone's own constraints sit on the element row of its parent
            inv = [invs.add(c) for c in el.get("constraint", ())]
            if inv:
                entry["inv"] = inv
        for child in children.get(path, ()):
            cname = child["path"][len(path) + 1 :]
            if kind == "primitive" and cname == "value":
                continue
            opts: dict[str, Any] = {}
            max_ = child.get("max", "*")
            if child["path"] in backbone_paths:
                opts["c"] = child["path"]
                node(child["path"], child, child["path"], "backbone")
                ctypes: list = [_type_code(child["type"][0])] if child.get("type") else ["BackboneElement"]
            elif child.get("contentReference"):
                opts["c"] = child["contentReference"].lstrip("#")
                ctypes = ["BackboneElement"]
            else:
                ctypes = _element_types(child, profiled)
            b = child.get("binding") or {}
            if b.get("valueSet") and b.get("strength") in ("required", "extensible"):
                opts["b"] = _canon(b["valueSet"])
                opts["bs"] = b["strength"]
            targets = _targets(child)
            if targets:
                opts["r"] = targets
            cinv = [invs.add(c) for c in child.get("constraint", ()) if c.get("key") != "ele-1"]
            if cinv:
                opts["inv"] = cinv
            if child.get("isModifier"):
                opts["mod"] = True
            row: list = [cname, int(child.get("min", 0)), -1 if max_ == "*" else int(max_), ctypes]
            if opts:
                row.append(opts)
            entry["elements"].append(row)
        types[key] = entry

    node(root["path"], root, name, kind)


def primitive_rules(type_sds: Iterable[dict]) -> dict[str, dict]:
    """Regex and JSON representation of every primitive type."""
    out: dict[str, dict] = {}
    for sd in type_sds:
        if sd["kind"] != "primitive-type":
            continue
        regex = None
        for el in sd["snapshot"]["element"]:
            if el["path"].endswith(".value"):
                for ext in el["type"][0].get("extension", ()):
                    if ext.get("url") == REGEX_EXT:
                        regex = ext["valueString"]
        base = sd.get("baseDefinition", "").rsplit("/", 1)[-1]
        out[sd["id"]] = {"regex": regex, "json": JSON_KIND.get(sd["id"], "string"), "base": base}
    return out


# --- terminology -----------------------------------------------------------------------


def _walk_concepts(concepts: list[dict], parent: str | None, into: dict[str, list[str]]) -> None:
    for c in concepts or ():
        code = c.get("code")
        if code is None:
            continue
        into.setdefault(code, [])
        if parent:
            into[code].append(parent)
        for p in c.get("property", ()):
            if p.get("code") in ("subsumedBy", "parent") and p.get("valueCode"):
                into[code].append(p["valueCode"])
        _walk_concepts(c.get("concept", ()), code, into)


class Terminology:
    """CodeSystems and ValueSets of the R4 package, with a small expander."""

    def __init__(self, resources: Iterable[dict]) -> None:
        self.cs: dict[str, dict] = {}
        self.vs: dict[str, dict] = {}
        self.parents: dict[str, dict[str, list[str]]] = {}
        for r in resources:
            if r["resourceType"] == "CodeSystem" and r.get("url"):
                self.cs[r["url"]] = r
                tree: dict[str, list[str]] = {}
                _walk_concepts(r.get("concept", ()), None, tree)
                self.parents[r["url"]] = tree
            elif r["resourceType"] == "ValueSet" and r.get("url"):
                self.vs[r["url"]] = r

    def complete_codes(self, system: str) -> set[str] | None:
        cs = self.cs.get(system)
        if cs is None or cs.get("content") != "complete":
            return None
        return set(self.parents[system])

    def _descendants(self, system: str, code: str) -> set[str]:
        children: dict[str, set[str]] = {}
        for c, ps in self.parents[system].items():
            for p in ps:
                children.setdefault(p, set()).add(c)
        out, todo = set(), [code]
        while todo:
            for child in children.get(todo.pop(), ()):
                if child not in out:
                    out.add(child)
                    todo.append(child)
        return out

    def _include(self, inc: dict, seen: tuple[str, ...]) -> dict[str, set[str]] | None:
        result: dict[str, set[str]] | None = None
        system = inc.get("system")
        if system:
            if inc.get("concept"):
                codes = {c["code"] for c in inc["concept"]}
            else:
                all_codes = self.complete_codes(system)
                if all_codes is None:
                    return None
                codes = set(all_codes)
                for f in inc.get("filter", ()):
                    if f.get("property") == "concept" and f.get("op") in ("is-a", "descendent-of"):
                        sub = self._descendants(system, f["value"])
                        if f["op"] == "is-a":
                            sub.add(f["value"])
                        codes &= sub
                    else:
                        return None
            result = {system: codes}
        for vs_url in inc.get("valueSet", ()):
            other = self.expand(_canon(vs_url), seen)
            if other is None:
                return None
            if result is None:
                result = other
            else:
                result = {s: c & other.get(s, set()) for s, c in result.items()}
        return result

    def expand(self, url: str, seen: tuple[str, ...] = ()) -> dict[str, set[str]] | None:
        """{system: codes} of an enumerable value set, None if it is not enumerable here."""
        if url in seen:
            return None
        vs = self.vs.get(url)
        if vs is None or "compose" not in vs:
            return None
        out: dict[str, set[str]] = {}
        for inc in vs["compose"].get("include", ()):
            if inc.get("system") in EXTERNAL_SYSTEMS and not inc.get("concept"):
                return None
            part = self._include(inc, seen + (url,))
            if part is None:
                return None
            for s, codes in part.items():
                out.setdefault(s, set()).update(codes)
        for exc in vs["compose"].get("exclude", ()):
            part = self._include(exc, seen + (url,))
            if part is None:
                return None
            for s, codes in part.items():
                out.get(s, set()).difference_update(codes)
        return out


def compile_extension(sd: dict, types_profiled: set[str]) -> dict:
    """Value types, binding, sub-extensions and contexts of one extension definition."""
    els = sd["snapshot"]["element"]
    out: dict[str, Any] = {"context": [[c["type"], c["expression"]] for c in sd.get("context", ())]}
    root = els[0]
    out["max"] = -1 if root.get("max", "*") == "*" else int(root["max"])
    subs: dict[str, dict] = {}
    slice_of: dict[str, str] = {}
    for el in els[1:]:
        eid = el["id"]
        if eid == "Extension.value[x]":
            out["value"] = [] if el.get("max") == "0" else [t["code"] for t in el.get("type", ())]
            out["valueMin"] = int(el.get("min", 0))
            b = el.get("binding") or {}
            if b.get("strength") == "required" and b.get("valueSet"):
                out["binding"] = _canon(b["valueSet"])
            targets = _targets(el)
            if targets:
                out["r"] = targets
        elif eid == "Extension.extension" and el.get("max") == "0":
            out["noChildren"] = True
        elif eid.startswith("Extension.extension:") and eid.count(".") == 1:
            name = eid.split(":", 1)[1]
            slice_of[name] = ""
            subs[name] = {"min": int(el.get("min", 0)), "max": -1 if el.get("max", "*") == "*" else int(el["max"])}
        elif eid.startswith("Extension.extension:") and eid.count(".") == 2:
            name, leaf = eid.split(":", 1)[1].split(".")
            if name not in subs:
                continue
            if leaf == "url":
                slice_of[name] = el.get("fixedUri", name)
            elif leaf == "value[x]":
                subs[name]["value"] = [] if el.get("max") == "0" else [t["code"] for t in el.get("type", ())]
                b = el.get("binding") or {}
                if b.get("strength") == "required" and b.get("valueSet"):
                    subs[name]["binding"] = _canon(b["valueSet"])
    if subs:
        out["children"] = {slice_of.get(n) or n: spec for n, spec in subs.items()}
    return out


def build(pkg: Path) -> dict:
    """The whole rules document from an unpacked R4 package folder."""
    type_sds = [r for r in _bundle(pkg, "Bundle-types.json") if r["resourceType"] == "StructureDefinition"]
    res_sds = [r for r in _bundle(pkg, "Bundle-resources.json") if r["resourceType"] == "StructureDefinition" and r["kind"] == "resource"]
    profiled = {sd["id"] for sd in type_sds if sd.get("derivation") == "constraint"}
    invs = InvariantTable()
    types: dict[str, dict] = {}
    for sd in type_sds + res_sds:
        compile_structure(sd, types, invs, profiled)

    term = Terminology(r for b in ("Bundle-valuesets.json", "Bundle-v2-valuesets.json", "Bundle-v3-valuesets.json") for r in _bundle(pkg, b))
    ext_sds = [r for r in _bundle(pkg, "Bundle-extensions.json") if r["resourceType"] == "StructureDefinition"]
    extensions = {sd["url"]: compile_extension(sd, profiled) for sd in ext_sds}

    bound: set[str] = set()
    for t in types.values():
        for row in t["elements"]:
            if len(row) > 4 and row[4].get("bs") == "required":
                bound.add(row[4]["b"])
    for e in extensions.values():
        if e.get("binding"):
            bound.add(e["binding"])
        for s in e.get("children", {}).values():
            if s.get("binding"):
                bound.add(s["binding"])
    valuesets: dict[str, Any] = {}
    for url in sorted(bound):
        exp = term.expand(url)
        valuesets[url] = {"external": True} if exp is None else {"codes": {s: sorted(c) for s, c in sorted(exp.items())}}
    # extensible bindings are kept as URLs only (no codes): a miss there is never an error.
    codesystems: dict[str, Any] = {}
    for url, cs in sorted(term.cs.items()):
        codes = term.complete_codes(url)
        if codes is not None:
            codesystems[url] = {"cs": bool(cs.get("caseSensitive", False)), "codes": sorted(codes)}
    return {
        "format": FORMAT,
        "fhirVersion": "4.0.1",
        "source": "hl7.fhir.r4.examples@4.0.1 (Bundle-types, Bundle-resources, Bundle-extensions, Bundle-valuesets, Bundle-v2-valuesets, Bundle-v3-valuesets)",
        "primitives": primitive_rules(type_sds),
        "types": types,
        "invariants": invs.rows,
        "valuesets": valuesets,
        "codesystems": codesystems,
        "extensions": extensions,
    }


def render(doc: dict) -> str:
    """Stable JSON text of the rules document: compact, one line per type, value set,
    code system, extension or invariant, so a regenerated file diffs readably."""
    def dump(value: object) -> str:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)

    parts = []
    for key in sorted(doc):
        value = doc[key]
        if isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
            body = ",\n".join(f"  {dump(k)}:{dump(v)}" for k, v in sorted(value.items()))
            parts.append(f"{dump(key)}:{{\n{body}\n}}")
        elif isinstance(value, list) and value:
            body = ",\n".join(f"  {dump(v)}" for v in value)
            parts.append(f"{dump(key)}:[\n{body}\n]")
        else:
            parts.append(f"{dump(key)}:{dump(value)}")
    return "{\n" + ",\n".join(parts) + "\n}\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--package", type=Path, help="unpacked package/ folder (default: fetch into .cache/r4)")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--check", action="store_true", help="only compare with the committed file")
    args = ap.parse_args(argv)
    text = render(build(args.package or package_dir()))
    if args.check:
        same = args.out.is_file() and args.out.read_text("utf-8") == text
        print("up to date" if same else f"{args.out} is stale: rerun build_rules")
        return 0 if same else 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, "utf-8")
    print(f"wrote {args.out} ({len(text) // 1024} KiB)")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
