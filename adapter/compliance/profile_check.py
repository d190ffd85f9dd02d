"""Layer 2: checks a resource against a carebridge profile (compiled differential).

Per element of the differential: cardinality (min/max, per slice), fixed and pattern values,
required bindings to the project's ValueSets, allowed types of a choice, reference targets and
the profile's FHIRPath invariants. Slices are matched by their discriminators (value/pattern on
a path, an extension's url).
"""

from __future__ import annotations

from typing import Any, Callable

from adapter.compliance import fhirpath, narrative
from adapter.compliance.outcome import issue
from adapter.compliance.registry import PNode, Profile, Registry


def pattern_match(value: Any, pattern: Any) -> bool:
    """FHIR pattern semantics: every property of the pattern is present (recursively) in value."""
    if isinstance(pattern, dict):
        return isinstance(value, dict) and all(k in value and pattern_match(value[k], p) for k, p in pattern.items())
    if isinstance(pattern, list):
        return isinstance(value, list) and all(any(pattern_match(v, p) for v in value) for p in pattern)
    return value == pattern


def _navigate(value: Any, path: str) -> list:
    items = [value]
    if path in ("$this", ""):
        return items
    for seg in path.split("."):
        nxt = []
        for it in items:
            if isinstance(it, dict) and seg in it:
                v = it[seg]
                nxt.extend(v if isinstance(v, list) else [v])
        items = nxt
    return items


class ProfileChecker:
    """Checks resources against profiles, appending issues to `issues`."""

    def __init__(self, reg: Registry, resolver: Callable[[Any, fhirpath.Env], Any], issues: list[dict]) -> None:
        self.reg = reg
        self.resolver = resolver
        self.issues = issues
        self.profile: Profile | None = None
        self.resource: dict | None = None

    def error(self, path: str, text: str, code: str, rule: str, severity: str = "error") -> None:
        self.issues.append(issue(severity, code, path, f"{text} (from {self.profile.url})", rule))

    def check(self, resource: dict, profile: Profile, path: str) -> None:
        """Check one resource against one profile."""
        if resource.get("resourceType") != profile.type:
            self.issues.append(issue("error", "structure", path, f"a {resource.get('resourceType')} cannot conform to {profile.url}, a profile on {profile.type}", "profile-type"))
            return
        self.profile, self.resource = profile, resource
        self._item(resource, profile.root, path, profile.type)

    # -------------------------------------------------------------------------
    def _values(self, item: dict, node: PNode, path: str) -> list[tuple[Any, str]]:
        name = node.name
        if name.endswith("[x]"):
            base = name[:-3]
            out = []
            for k, v in item.items():
                if k.startswith(base) and k[len(base):][:1].isupper():
                    tcode = k[len(base):]
                    low = tcode[:1].lower() + tcode[1:]
                    if node.types and tcode not in node.types and low not in node.types:
                        self.error(f"{path}.{base}", f"{base}[x] must be of type {', '.join(sorted(node.types))}, found {tcode}", "structure", "profile-type")
                    out.append((v, f"{path}.{base}.ofType({tcode if tcode in (node.types or ()) else low})"))
            return out
        v = item.get(name)
        if v is None:
            ext = item.get("_" + name)
            if ext is None:
                return []
            v = ext
        if isinstance(v, list):
            return [(x, f"{path}.{name}[{i}]") for i, x in enumerate(v)]
        return [(v, f"{path}.{name}")]

    def _apply(self, values: list[tuple[Any, str]], node: PNode, parent_path: str, label: str) -> None:
        n = len(values)
        if node.min is not None and n < node.min:
            self.error(parent_path, f"{label}: minimum required = {node.min}, but only found {n}", "required", "profile-cardinality")
        if node.max is not None and node.max >= 0 and n > node.max:
            where = values[node.max][1] if node.max < n else parent_path
            self.error(where if node.max > 0 else values[0][1], f"{label}: max allowed = {node.max}, but found {n}", "structure", "profile-cardinality")
        for v, vpath in values:
            self._item(v, node, vpath, label)
        if node.slices:
            matched_any: set[int] = set()
            for sname, snode in node.slices.items():
                hits = []
                for i, (v, vpath) in enumerate(values):
                    if self._matches(v, snode, node):
                        hits.append((v, vpath))
                        matched_any.add(i)
                self._apply(hits, snode, parent_path, f"{label}:{sname}")
            if node.slicing and node.slicing.get("rules") == "closed":
                for i, (v, vpath) in enumerate(values):
                    if i not in matched_any:
                        self.error(vpath, f"{label}: this item matches none of the slices, and the slicing is closed", "structure", "profile-slicing")

    def _matches(self, value: Any, snode: PNode, parent: PNode) -> bool:
        slicing = parent.slicing or {}
        discriminators = slicing.get("discriminator") or [{"type": "value", "path": "url"}]
        for d in discriminators:
            dpath = d.get("path", "$this")
            expected, kind = self._expected(snode, dpath)
            if expected is None:
                return False
            actual = _navigate(value, dpath)
            if kind == "fixed" or d.get("type") == "value":
                if not any(a == expected for a in actual):
                    return False
            elif not any(pattern_match(a, expected) for a in actual):
                return False
        return True

    @staticmethod
    def _expected(snode: PNode, dpath: str) -> tuple[Any, str]:
        if dpath in ("$this", ""):
            return (snode.fixed, "fixed") if snode.fixed is not None else (snode.pattern, "pattern")
        if dpath == "url" and snode.ext_url:
            return snode.ext_url, "fixed"
        node = snode
        for seg in dpath.split("."):
            node = node.children.get(seg)
            if node is None:
                return None, ""
        return (node.fixed, "fixed") if node.fixed is not None else (node.pattern, "pattern")

    def _item(self, v: Any, node: PNode, vpath: str, label: str) -> None:
        if node.fixed is not None and v != node.fixed:
            self.error(vpath, f"Value is {_show(v)} but must be {_show(node.fixed)}", "value", "profile-fixed")
        if node.pattern is not None and not pattern_match(v, node.pattern):
            self.error(vpath, f"Value must match the pattern {_show(node.pattern)}", "value", "profile-pattern")
        if node.binding is not None:
            self._binding(v, node.binding, vpath)
        if node.targets is not None and isinstance(v, dict) and isinstance(v.get("reference"), str):
            self._target(v, node.targets, vpath)
        for inv in node.constraints:
            self._invariant(inv, v, vpath)
        if node.children and isinstance(v, dict):
            for name, child in node.children.items():
                self._apply(self._values(v, child, vpath), child, vpath, f"{label}.{name}")

    def _binding(self, v: Any, binding: tuple[str, str], vpath: str) -> None:
        strength, url = binding
        vs = self.reg.valueset(url)
        if vs is None:
            return
        if isinstance(v, str):
            if not any(v in codes for codes in vs.values()):
                self.error(vpath, f"The value '{v}' is not in the value set {url}", "code-invalid", "profile-binding", "error" if strength == "required" else "warning")
            return
        if not isinstance(v, dict):
            return
        codings = v.get("coding") if "coding" in v or "text" in v else [v]
        codings = [c for c in (codings or []) if isinstance(c, dict)]
        for c in codings:
            if c.get("code") in vs.get(c.get("system"), ()):
                return
        shown = ", ".join(f"{c.get('system')}#{c.get('code')}" for c in codings) or "no code"
        self.error(vpath, f"The code(s) {shown} are not in the value set {url}", "code-invalid", "profile-binding", "error" if strength == "required" else "warning")

    def _target(self, ref: dict, targets: frozenset[str], vpath: str) -> None:
        env = fhirpath.Env(self.resource, self.resource, ref, ref, 0, self.resolver)
        target = self.resolver(ref, env)
        rtype = target.get("resourceType") if isinstance(target, dict) else None
        if rtype is None:
            r = ref["reference"]
            parts = r.split("/")
            if len(parts) >= 2 and not r.startswith(("urn:", "#")):
                rtype = parts[-2] if "_history" not in parts else parts[-4]
        if rtype is not None and rtype not in targets and "Resource" not in targets:
            self.error(vpath, f"The reference points to a {rtype}; this profile allows only {', '.join(sorted(targets))}", "structure", "profile-target")

    def _invariant(self, inv: Any, v: Any, vpath: str) -> None:
        if inv.fn is None:
            return
        env = fhirpath.Env(self.resource, self.resource, v, v, 0, self.resolver, narrative.html_ok)
        try:
            verdict = fhirpath.truth(inv.fn([v], env))
        except fhirpath.EvalError as exc:
            self.error(vpath, f"Invariant {inv.key} could not be evaluated ({exc})", "informational", inv.key, "information")
            return
        if verdict is not True:
            self.error(vpath, f"Constraint failed: {inv.key}: '{inv.human}'", "invariant", inv.key, "error" if inv.severity == "error" else "warning")


def _show(v: Any) -> str:
    import json

    text = json.dumps(v, ensure_ascii=False, separators=(",", ":"))
    return text if len(text) <= 120 else text[:117] + "..."
