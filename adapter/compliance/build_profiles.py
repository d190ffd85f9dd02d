"""Generate the snapshots of the StructureDefinitions in `adapter/compliance/profiles/`.

Every `StructureDefinition-*.json` there is hand-written as a differential; this script adds
its `snapshot`: the base R4 snapshot with the differential applied, datatype children expanded
where the differential reaches into them, slices inserted after their base element. (The
project's CodeSystems are not files here: the engine reads them from `mappings.terminology`.)

    python -m adapter.compliance.build_profiles           # rewrite the generated parts
    python -m adapter.compliance.build_profiles --check   # exit 1 if anything is stale

Needs the R4 package (fetched into `.cache/r4/` with npm when absent) for base snapshots.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path
from typing import Any

from adapter.compliance.r4package import package_dir

PROFILES = Path(__file__).with_name("profiles")
#: Differential keys that replace the base element's value in the snapshot.
MERGE_KEYS = ("short", "definition", "comment", "min", "max", "type", "binding", "slicing", "sliceName", "mustSupport", "isModifier", "isModifierReason", "maxLength")
VALUE_PREFIXES = ("fixed", "pattern")


def dumps(doc: Any) -> str:
    """The repository's JSON style for generated files."""
    return json.dumps(doc, ensure_ascii=False, indent=2) + "\n"


# --- snapshots -------------------------------------------------------------------------


def _load_base(pkg: Path) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for bundle in ("Bundle-types.json", "Bundle-resources.json"):
        for e in json.loads((pkg / bundle).read_text("utf-8"))["entry"]:
            r = e["resource"]
            if r["resourceType"] == "StructureDefinition":
                out[r["url"]] = r
    return out


def _parent_id(eid: str) -> str:
    return eid.rsplit(".", 1)[0]


def _base_path(eid: str) -> str:
    """Element id without slice names: 'A.b:s.c' -> 'A.b.c'."""
    return ".".join(seg.split(":")[0] for seg in eid.split("."))


def _subtree_end(elems: list[dict], idx: int) -> int:
    """Index after the element at idx, its children and its slices."""
    eid = elems[idx]["id"]
    j = idx + 1
    while j < len(elems) and (elems[j]["id"].startswith(eid + ".") or elems[j]["id"].startswith(eid + ":")):
        j += 1
    return j


def _index(elems: list[dict], eid: str) -> int | None:
    for i, e in enumerate(elems):
        if e["id"] == eid:
            return i
    return None


def _expand_type(elems: list[dict], idx: int, types: dict[str, dict]) -> None:
    """Insert the children of a datatype-typed element (from the type's snapshot)."""
    el = elems[idx]
    if idx + 1 < len(elems) and elems[idx + 1]["id"].startswith(el["id"] + "."):
        return
    tcode = el["type"][0]["code"]
    tsd = types.get("http://hl7.org/fhir/StructureDefinition/" + tcode)
    if tsd is None:
        raise ValueError(f"cannot expand {el['id']}: no definition of type {tcode}")
    kids = []
    for child in tsd["snapshot"]["element"][1:]:
        c = copy.deepcopy(child)
        rel = child["id"][len(tcode):]
        c["id"] = el["id"] + rel
        c["path"] = el["path"] + child["path"][len(tcode):]
        kids.append(c)
    elems[idx + 1 : idx + 1] = kids


def _ensure(elems: list[dict], eid: str, types: dict[str, dict]) -> int:
    """Index of element `eid` in the snapshot, creating it (slice or expanded child) if needed."""
    idx = _index(elems, eid)
    if idx is not None:
        return idx
    last = eid.rsplit(".", 1)[-1]
    if ":" in last:  # a new slice: copy of the unsliced element, after its subtree
        name, slice_name = last.split(":", 1)
        base_id = _parent_id(eid) + "." + name if "." in eid else name
        base_idx = _ensure(elems, base_id, types)
        new = copy.deepcopy(elems[base_idx])
        new.pop("slicing", None)
        new["id"] = eid
        new["sliceName"] = slice_name
        end = _subtree_end(elems, base_idx)
        elems.insert(end, new)
        return end
    parent = _ensure(elems, _parent_id(eid), types)
    _expand_type(elems, parent, types)
    idx = _index(elems, eid)
    if idx is None:
        raise ValueError(f"differential element {eid} does not exist in the base definition")
    return idx


def snapshot(profile: dict, base: dict[str, dict]) -> list[dict]:
    """The snapshot of a profile: its base snapshot with the differential applied."""
    parent = base.get(profile["baseDefinition"])
    if parent is None:
        raise ValueError(f"{profile['url']}: unknown baseDefinition {profile['baseDefinition']}")
    elems = copy.deepcopy(parent["snapshot"]["element"])
    for d in profile["differential"]["element"]:
        idx = _ensure(elems, d["id"], base)
        el = elems[idx]
        for key in MERGE_KEYS:
            if key in d:
                el[key] = copy.deepcopy(d[key])
        for key, value in d.items():
            if key.startswith(VALUE_PREFIXES):
                el[key] = copy.deepcopy(value)
        if "constraint" in d:
            el["constraint"] = [*el.get("constraint", []), *copy.deepcopy(d["constraint"])]
    _expand_extension_slices(elems, base)
    for el in elems:
        el.setdefault("path", _base_path(el["id"]))
    return elems


def _expand_extension_slices(elems: list[dict], base: dict[str, dict]) -> None:
    """Give each extension slice its Extension children with `url` fixed to the extension's URL,
    so validators that discriminate slices by `url` (Medplum) can match them."""
    i = 0
    while i < len(elems):
        el = elems[i]
        types = el.get("type") or []
        profiles = [p for t in types if t.get("code") == "Extension" for p in t.get("profile", ())]
        if el.get("sliceName") and profiles and not (i + 1 < len(elems) and elems[i + 1]["id"].startswith(el["id"] + ".")):
            _expand_type(elems, i, base)
            for j in range(i + 1, _subtree_end(elems, i)):
                if elems[j]["id"] == el["id"] + ".url":
                    elems[j]["fixedUri"] = profiles[0]
        i += 1


def build(pkg: Path | None = None) -> dict[str, str]:
    """{file name: text} of every generated or completed file in the profiles folder."""
    files: dict[str, str] = {}
    base: dict[str, dict] | None = None
    for path in sorted(PROFILES.glob("StructureDefinition-*.json")):
        sd = json.loads(path.read_text("utf-8"))
        if base is None:
            base = _load_base(pkg or package_dir())
        sd["snapshot"] = {"element": snapshot(sd, base)}
        files[path.name] = dumps(sd)
    return files


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--package", type=Path, help="unpacked package/ folder (default: fetch into .cache/r4)")
    ap.add_argument("--check", action="store_true", help="only report stale files")
    args = ap.parse_args(argv)
    stale = []
    for name, text in build(args.package).items():
        target = PROFILES / name
        if target.is_file() and target.read_text("utf-8") == text:
            continue
        stale.append(name)
        if not args.check:
            target.write_text(text, "utf-8")
    if args.check:
        print("up to date" if not stale else "stale: " + ", ".join(stale))
        return 1 if stale else 0
    print(f"wrote {len(stale)} file(s)" + (": " + ", ".join(stale) if stale else ""))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
