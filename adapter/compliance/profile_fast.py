"""Layer 2, fast path: a compiled yes/no test that a resource conforms to a profile.

`ProfileChecker` interprets a profile's element tree and explains every problem with a path and
a message. Most payloads have no problem, so the engine first runs the profile's predicate,
made once per profile from the same tree: the same checks, in closures, without paths or
messages (cardinality, fixed and pattern values, bindings, reference targets, invariants with
their acceptors, choice types, slices). Only when the predicate says no does the engine run
`ProfileChecker` on that resource, which then reports exactly what it always reported.

The predicate says yes only when `ProfileChecker.check` would add no issue at all (not even an
information issue about an invariant that could not be evaluated).
"""

from __future__ import annotations

from typing import Any, Callable

from adapter.compliance import fhirpath, narrative
from adapter.compliance.profile_check import _navigate, pattern_match
from adapter.compliance.registry import PNode, Profile, Registry

Check = Callable[[Any, "Cx"], bool]


class Cx:
    """What the checks of one resource share: the resource and the reference resolver."""

    __slots__ = ("resource", "resolver")

    def __init__(self, resource: dict, resolver: Callable[[Any, Any], Any]) -> None:
        self.resource = resource
        self.resolver = resolver


def predicate(profile: Profile, reg: Registry) -> Callable[[dict, Callable], bool]:
    """`test(resource, resolver)`: True when the resource certainly conforms (no issue at all)."""
    item = _item(profile.root, reg)
    ptype = profile.type

    def test(resource: dict, resolver: Callable) -> bool:
        return resource.get("resourceType") == ptype and item(resource, Cx(resource, resolver))
    return test


def _all(checks: list[Check]) -> Check:
    if not checks:
        return lambda v, cx: True
    if len(checks) == 1:
        return checks[0]
    checks_t = tuple(checks)

    def all_of(v: Any, cx: Cx) -> bool:
        for c in checks_t:
            if not c(v, cx):
                return False
        return True
    return all_of


def _item(node: PNode, reg: Registry) -> Check:
    """`ProfileChecker._item` without issues: True when it would report nothing for `v`."""
    checks: list[Check] = []
    if node.fixed is not None:
        fixed = node.fixed
        checks.append(lambda v, cx: v == fixed)
    if node.pattern is not None:
        pattern = node.pattern
        checks.append(lambda v, cx: pattern_match(v, pattern))
    if node.binding is not None:
        bound = _binding(node.binding, reg)
        if bound is not None:
            checks.append(bound)
    if node.targets is not None:
        checks.append(_target(node.targets))
    for inv in node.constraints:
        if inv.fn is not None:
            checks.append(_invariant(inv))
    if node.children:
        kids = tuple((_values(child), _apply(child, reg)) for child in node.children.values())

        def children(v: Any, cx: Cx) -> bool:
            if not isinstance(v, dict):
                return True
            for values, apply in kids:
                vals = values(v)
                if vals is None or not apply(vals, cx):
                    return False
            return True
        checks.append(children)
    return _all(checks)


def _apply(node: PNode, reg: Registry) -> Callable[[list, Cx], bool]:
    """`ProfileChecker._apply` without issues, for the values of one element (or slice)."""
    mn = node.min
    mx = node.max if node.max is not None and node.max >= 0 else None
    item = _item(node, reg)
    trivial_item = not (node.fixed is not None or node.pattern is not None or node.binding is not None
                        or node.targets is not None or any(i.fn is not None for i in node.constraints) or node.children)
    slices = tuple((_matcher(snode, node), _apply(snode, reg)) for snode in node.slices.values())
    closed = bool(node.slicing) and node.slicing.get("rules") == "closed"

    def apply(values: list, cx: Cx) -> bool:
        n = len(values)
        if mn is not None and n < mn:
            return False
        if mx is not None and n > mx:
            return False
        if not trivial_item:
            for v in values:
                if not item(v, cx):
                    return False
        if slices:
            matched: set[int] = set()
            for match, sub in slices:
                hits = []
                for i, v in enumerate(values):
                    if match(v):
                        hits.append(v)
                        matched.add(i)
                if not sub(hits, cx):
                    return False
            if closed and len(matched) < n:
                return False
        return True
    return apply


def _values(node: PNode) -> Callable[[dict], list | None]:
    """`ProfileChecker._values` without paths; None when a choice has a type the profile excludes."""
    name = node.name
    if name.endswith("[x]"):
        base = name[:-3]
        k = len(base)
        types = node.types

        def choice_values(item: dict) -> list | None:
            out = []
            for key, v in item.items():
                if key.startswith(base) and key[k:][:1].isupper():
                    tcode = key[k:]
                    if types and tcode not in types and (tcode[:1].lower() + tcode[1:]) not in types:
                        return None  # an error: "value[x] must be of type ..."
                    out.append(v)
            return out
        return choice_values
    underscored = "_" + name

    def values(item: dict) -> list:
        v = item.get(name)
        if v is None:
            v = item.get(underscored)
            if v is None:
                return []
        return v if isinstance(v, list) else [v]
    return values


def _matcher(snode: PNode, parent: PNode) -> Callable[[Any], bool]:
    """`ProfileChecker._matches` with the expected values worked out once."""
    from adapter.compliance.profile_check import ProfileChecker

    slicing = parent.slicing or {}
    discriminators = slicing.get("discriminator") or [{"type": "value", "path": "url"}]
    tests = []
    for d in discriminators:
        dpath = d.get("path", "$this")
        expected, kind = ProfileChecker._expected(snode, dpath)
        if expected is None:
            return lambda value: False
        tests.append((dpath, expected, kind == "fixed" or d.get("type") == "value"))
    tests_t = tuple(tests)

    def match(value: Any) -> bool:
        for dpath, expected, by_value in tests_t:
            actual = _navigate(value, dpath)
            if by_value:
                if not any(a == expected for a in actual):
                    return False
            elif not any(pattern_match(a, expected) for a in actual):
                return False
        return True
    return match


def _binding(binding: tuple[str, str], reg: Registry) -> Check | None:
    """`ProfileChecker._binding` without issues (None: the value set cannot be enumerated, no check)."""
    _strength, url = binding
    vs = reg.valueset(url)
    if vs is None:
        return None
    every = frozenset(c for codes in vs.values() for c in codes)
    empty: frozenset = frozenset()

    def bound(v: Any, cx: Cx) -> bool:
        if isinstance(v, str):
            return v in every
        if not isinstance(v, dict):
            return True
        codings = v.get("coding") if "coding" in v or "text" in v else [v]
        for c in codings or []:
            if isinstance(c, dict) and c.get("code") in vs.get(c.get("system"), empty):
                return True
        return False
    return bound


def _target(targets: frozenset[str]) -> Check:
    """`ProfileChecker._target` without issues."""
    any_type = "Resource" in targets

    def target(v: Any, cx: Cx) -> bool:
        if not isinstance(v, dict) or not isinstance(v.get("reference"), str):
            return True
        resource = cx.resource
        env = fhirpath.Env(resource, resource, v, v, 0, cx.resolver)
        found = cx.resolver(v, env)
        rtype = found.get("resourceType") if isinstance(found, dict) else None
        if rtype is None:
            r = v["reference"]
            parts = r.split("/")
            if len(parts) >= 2 and not r.startswith(("urn:", "#")):
                rtype = parts[-2] if "_history" not in parts else parts[-4]
        return rtype is None or rtype in targets or any_type
    return target


def _invariant(inv: Any) -> Check:
    """`ProfileChecker._invariant` without issues: true only for a clean `true` (acceptor first)."""
    fn, accept = inv.fn, inv.accept
    html_ok = narrative.html_ok

    def holds(v: Any, cx: Cx) -> bool:
        if accept is not None and type(v) is dict and accept(v):
            return True
        resource = cx.resource
        env = fhirpath.Env(resource, resource, v, v, 0, cx.resolver, html_ok)
        try:
            return fhirpath.truth(fn([v], env)) is True
        except fhirpath.EvalError:
            return False
    return holds
