"""Layer 2, fast path: a compiled yes/no test that a resource conforms to a profile.

`ProfileChecker` interprets a profile's element tree and explains every problem with a path and
a message. Most payloads have no problem, so the engine first runs the profile's predicate,
generated once per profile from the same tree as Python source (`exec`'d on first use): the
same checks, inlined, without paths or messages (cardinality, fixed and pattern values,
bindings, reference targets, invariants with their acceptors, choice types, slices). Only when
the predicate says no does the engine run `ProfileChecker` on that resource, which then reports
exactly what it always reported.

The predicate says yes only when `ProfileChecker.check` would add no issue at all (not even an
information issue about an invariant that could not be evaluated).
"""

from __future__ import annotations

from typing import Any, Callable

from adapter.compliance import fhirpath, narrative
from adapter.compliance.profile_check import _navigate
from adapter.compliance.registry import PNode, Profile, Registry

Check = Callable[[Any, "Cx"], bool]
_MISSING = object()


class Cx:
    """What the checks of one resource share: the resource and the reference resolver."""

    __slots__ = ("resource", "resolver")

    def __init__(self, resource: dict, resolver: Callable[[Any, Any], Any]) -> None:
        self.resource = resource
        self.resolver = resolver


def predicate(profile: Profile, reg: Registry) -> Callable[[dict, Callable], bool]:
    """`test(resource, resolver)`: True when the resource certainly conforms (no issue at all)."""
    gen = _Gen(reg)
    body = gen.item(profile.root, "res", "    ")
    lines = [
        f"def make({', '.join(gen.names)}):",
        "  def conforms(res, resolver):",
        f"    if res.get('resourceType') != {profile.type!r}:",
        "        return False",
        "    cx = _Cx(res, resolver)",
        *body,
        "    return True",
        "  return conforms",
    ]
    source = "\n".join(lines) + "\n"
    ns: dict[str, Any] = {"_Cx": Cx, "_MISSING": _MISSING}
    exec(compile(source, f"<carebridge profile {profile.url}>", "exec"), ns)  # noqa: S102 - generated here
    fn = ns["make"](*gen.values)
    fn.source = source
    return fn


class _Gen:
    """Source of the checks of one profile; constants are passed to the generated factory."""

    def __init__(self, reg: Registry) -> None:
        self.reg = reg
        self.names: list[str] = []
        self.values: list[Any] = []
        self.n = 0

    def const(self, value: Any, hint: str = "c") -> str:
        name = f"_{hint}{len(self.names)}"
        self.names.append(name)
        self.values.append(value)
        return name

    def var(self, hint: str) -> str:
        self.n += 1
        return f"{hint}{self.n}"

    def item(self, node: PNode, v: str, ind: str) -> list[str]:
        """Statements that `return False` unless `ProfileChecker._item` would report nothing for `v`."""
        out: list[str] = []
        if node.fixed is not None:
            out.append(f"{ind}if {v} != {self.const(node.fixed, 'fixed')}: return False")
        if node.pattern is not None:
            out.append(f"{ind}if not {self.pattern(node.pattern, v)}: return False")
        if node.binding is not None:
            bound = _binding(node.binding, self.reg)
            if bound is not None:
                out.append(f"{ind}if not {self.const(bound, 'bound')}({v}, cx): return False")
        if node.targets is not None:
            out.append(f"{ind}if not {self.const(_target(node.targets), 'target')}({v}, cx): return False")
        if node.children:
            body: list[str] = []
            for child in node.children.values():
                values = self.var("l")
                checks = self.apply(child, values, ind + "    ")
                if checks:
                    body += self.values_of(child, v, values, ind + "    ") + checks
            if body:
                out.append(f"{ind}if isinstance({v}, dict):")
                out += body
        for inv in node.constraints:  # last: the dearest checks (the answer does not depend on the order)
            if inv.fn is not None:
                out.append(f"{ind}if not {self.const(_invariant(inv), 'inv')}({v}, cx): return False")
        return out

    def values_of(self, node: PNode, d: str, values: str, ind: str) -> list[str]:
        """`ProfileChecker._values` of `node` in the dict `d`, into the list `values`."""
        name = node.name
        if name.endswith("[x]"):
            return [f"{ind}{values} = {self.const(_values(node), 'choice')}({d})",
                    f"{ind}if {values} is None: return False"]
        t = self.var("t")
        return [
            f"{ind}{t} = {d}.get({name!r})",
            f"{ind}if {t} is None: {t} = {d}.get({'_' + name!r})",
            f"{ind}{values} = [] if {t} is None else {t} if isinstance({t}, list) else [{t}]",
        ]

    def apply(self, node: PNode, values: str, ind: str) -> list[str]:
        """`ProfileChecker._apply` for the list `values` of `node`."""
        out: list[str] = []
        if node.min is not None and node.min > 0:
            out.append(f"{ind}if len({values}) < {node.min}: return False")
        if node.max is not None and node.max >= 0:
            out.append(f"{ind}if len({values}) > {node.max}: return False")
        x = self.var("x")
        body = self.item(node, x, ind + "    ")
        if body:
            out.append(f"{ind}for {x} in {values}:")
            out += body
        if node.slices:
            matchers = []
            for snode in node.slices.values():
                matchers.append(snode)
                hits, y = self.var("h"), self.var("y")
                checks = self.apply(snode, hits, ind)
                if checks:
                    out.append(f"{ind}{hits} = [{y} for {y} in {values} if {self.match(snode, node, y)}]")
                    out += checks
            if node.slicing and node.slicing.get("rules") == "closed":
                y = self.var("y")
                out.append(f"{ind}for {y} in {values}:")
                out.append(f"{ind}    if not ({' or '.join(self.match(m, node, y) for m in matchers)}): return False")
        return out

    def match(self, snode: PNode, parent: PNode, y: str) -> str:
        """`ProfileChecker._matches(y, snode, parent)` as an expression (see `_matcher`)."""
        discriminators = _discriminators(snode, parent)
        if discriminators is None:
            return "False"
        tests = []
        for dpath, expected, by_value in discriminators:
            if dpath in ("$this", ""):
                tests.append(f"{y} == {self.const(expected, 'exp')}" if by_value else self.pattern(expected, y))
            elif "." not in dpath and by_value:
                # `_at`: the value at the key (or any item of it, when it is an array) equals the expected one
                e, t = self.const(expected, "exp"), self.var("_d")
                tests.append(f"(isinstance({y}, dict) and ({t} := {y}.get({dpath!r}, _MISSING)) is not _MISSING "
                             f"and ({e} in {t} if isinstance({t}, list) else {t} == {e}))")
            else:
                tests.append(f"{self.const(_matcher(snode, parent), 'match')}({y})")
                break  # (the compiled matcher tests every discriminator)
        return "(" + " and ".join(tests) + ")"

    def pattern(self, pattern: Any, v: str) -> str:
        """`pattern_match(v, pattern)` as an expression."""
        if isinstance(pattern, dict):
            parts = [f"isinstance({v}, dict)"]
            for k, sub in pattern.items():
                parts.append(f"{k!r} in {v}")
                parts.append(self.pattern(sub, f"{v}[{k!r}]"))
            return "(" + " and ".join(parts) + ")"
        if isinstance(pattern, list):
            x = self.var("_p")
            parts = [f"isinstance({v}, list)"] + [f"any({self.pattern(sub, x)} for {x} in {v})" for sub in pattern]
            return "(" + " and ".join(parts) + ")"
        return f"{v} == {self.const(pattern, 'pat')}"


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


def _discriminators(snode: PNode, parent: PNode) -> list[tuple[str, Any, bool]] | None:
    """For each discriminator of `parent`'s slicing (default: value at `url`): its path, the value
    slice `snode` expects there, and whether it is compared by value (fixed or `value`
    discriminator) rather than as a pattern; None when the slice expects nothing at some path."""
    from adapter.compliance.profile_check import ProfileChecker

    slicing = parent.slicing or {}
    out = []
    for d in slicing.get("discriminator") or [{"type": "value", "path": "url"}]:
        dpath = d.get("path", "$this")
        expected, kind = ProfileChecker._expected(snode, dpath)
        if expected is None:
            return None
        out.append((dpath, expected, kind == "fixed" or d.get("type") == "value"))
    return out


def _matcher(snode: PNode, parent: PNode) -> Callable[[Any], bool]:
    """`ProfileChecker._matches` with the expected values worked out once and the comparison
    compiled (`_navigate` then `==` for value/fixed discriminators, `pattern_match` otherwise)."""
    discriminators = _discriminators(snode, parent)
    if discriminators is None:
        return lambda value: False
    tests = [_at(dpath, _equals(expected) if by_value else _pattern(expected)) for dpath, expected, by_value in discriminators]
    if len(tests) == 1:
        return tests[0]
    tests_t = tuple(tests)
    return lambda value: all(t(value) for t in tests_t)


def _at(dpath: str, compare: Callable[[Any], bool]) -> Callable[[Any], bool]:
    """True when some item of `_navigate(value, dpath)` satisfies `compare`."""
    if dpath in ("$this", ""):
        return compare
    segments = dpath.split(".")
    if len(segments) == 1:
        seg = segments[0]

        def one(value: Any) -> bool:
            if not isinstance(value, dict) or seg not in value:
                return False
            v = value[seg]
            if isinstance(v, list):
                return any(compare(x) for x in v)
            return compare(v)
        return one
    return lambda value: any(compare(a) for a in _navigate(value, dpath))


def _equals(expected: Any) -> Callable[[Any], bool]:
    return lambda a: a == expected


def _pattern(pattern: Any) -> Callable[[Any], bool]:
    """`pattern_match(value, pattern)` compiled for one pattern."""
    if isinstance(pattern, dict):
        parts = tuple((k, _pattern(p)) for k, p in pattern.items())

        def obj(value: Any) -> bool:
            if not isinstance(value, dict):
                return False
            for k, sub in parts:
                if k not in value or not sub(value[k]):
                    return False
            return True
        return obj
    if isinstance(pattern, list):
        subs = tuple(_pattern(p) for p in pattern)

        def arr(value: Any) -> bool:
            if not isinstance(value, list):
                return False
            for sub in subs:
                for v in value:
                    if sub(v):
                        break
                else:
                    return False
            return True
        return arr
    return lambda value: value == pattern


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
        r = v["reference"]
        if r[:1] == "#":  # only a local reference needs the environment (the container)
            resource = cx.resource
            found = cx.resolver(v, fhirpath.Env(resource, resource, v, v, 0, cx.resolver))
        else:
            found = cx.resolver(v, None)
        rtype = found.get("resourceType") if isinstance(found, dict) else None
        if rtype is None:
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
