"""Acceptors: cheap Python tests that an invariant certainly holds, tried before FHIRPath.

An acceptor looks at the JSON object an invariant is about and answers True only when the
compiled FHIRPath expression would certainly evaluate to exactly `true` there, without an error.
False means "not sure": the walker then evaluates the FHIRPath as before, so a failing
invariant is reported exactly as it was (same issue, same text, same path). Acceptors only
save the evaluation when the answer is yes, which is the common case.

Two sources:
- `derive(ast)`: from the shape of the expression, for the logical skeletons most R4 invariants
  have (`a.empty() or b.exists()`, `x.hasValue().not() or ...`, `type = 'document' implies ...`):
  an element is certainly present (exists() is true) when its JSON value is a string, number,
  boolean, object or an array with an item; certainly absent (empty() is true) when neither it,
  its `_name` companion nor a choice variant of it is there;
- `SPECIAL`: hand-written tests for comparisons (per-1, inv-1, tim-4/5) and counts (org-1),
  each tied to the exact expression text it was written for.

`python -m adapter.compliance.selfcheck --acceptors` evaluates the FHIRPath as well wherever an
acceptor answered True and fails on any disagreement.
"""

from __future__ import annotations

import re
from datetime import datetime as _datetime
from typing import Any, Callable

from adapter.compliance import fhirpath

_DATE = re.compile(r"\d{4}(?:-\d{2}(?:-\d{2})?)?")
#: A dateTime to the second (no fraction) whose parts are in range: two of them with the same
#: length and zone (or both without) compare as text the way FHIRPath compares them.
_DATETIME = re.compile(r"[1-9]\d{3}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:Z|[+\-](?:0\d|1[0-3]):[0-5]\d)?")
_MONTH_DAYS = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def present(v: Any) -> bool:
    """exists() of an element whose JSON value is `v` is certainly true."""
    if v is None:
        return False
    if type(v) is list:
        for x in v:
            if x is not None:
                return True
        return False
    return True


def absent(n: dict, name: str) -> bool:
    """The element `name` of `n` is certainly empty in FHIRPath (no value, no `_name`, no choice variant)."""
    if n.get(name) is not None or "_" + name in n:
        return False
    choices = fhirpath.CHOICE_NAMES
    return not ((choices is None or name in choices) and fhirpath.has_choice(n, name))


def _real_day(v: str) -> bool:
    y, m, d = int(v[0:4]), int(v[5:7]), int(v[8:10])
    return d <= _MONTH_DAYS[m] and (m != 2 or d < 29 or (y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)))


def le(a: Any, b: Any) -> bool:
    """`a <= b` is certainly true in FHIRPath for these two JSON values (dates and dateTimes)."""
    if type(a) is not str or type(b) is not str or len(a) != len(b):
        return False
    if len(a) <= 10:
        return _DATE.fullmatch(a) is not None and _DATE.fullmatch(b) is not None and a <= b
    if _DATETIME.fullmatch(a) is None or _DATETIME.fullmatch(b) is None or not (_real_day(a) and _real_day(b)):
        return False  # (real calendar days: FHIRPath's shift to UTC cannot fail)
    za, zb = a[19:], b[19:]
    if za == zb:  # same zone (or none): shifting both by the same offset keeps the textual order
        return a <= b
    if za and zb:  # both zoned: FHIRPath compares the UTC instants
        return _datetime.fromisoformat(a.replace("Z", "+00:00")) <= _datetime.fromisoformat(b.replace("Z", "+00:00"))
    return False


def _absent_test(name: str, node: str = "n") -> str:
    test = f"({node}.get({name!r}) is None and {'_' + name!r} not in {node}"
    if fhirpath.CHOICE_NAMES is None or name in fhirpath.CHOICE_NAMES:
        test += f" and not _HAS_CHOICE({node}, {name!r})"
    return test + ")"


def _member_name(node) -> str | None:
    """'x' for the path `x` starting at the focus (lower-case: an element, not a type)."""
    if node[0] == "member" and node[1] is None and node[2][:1].islower():
        return node[2]
    return None


def _safe(node) -> bool:
    """Evaluating the expression never raises and gives at most one item."""
    kind = node[0]
    if kind == "lit":
        return len(node[1]) <= 1
    if kind == "call" and node[1] is not None:
        name, args = node[2], node[3]
        if name in ("exists", "empty", "hasValue", "count") and not args:
            return _path_safe(node[1])
        if name == "not" and not args:
            return _safe(node[1])
    if kind == "bin" and node[1] in ("=", "!=", "or", "and", "implies"):
        return (_safe(node[2]) or node[1] in ("=", "!=") and _path_safe(node[2])) and (_safe(node[3]) or node[1] in ("=", "!=") and _path_safe(node[3]))
    return False


def _path_safe(node) -> bool:
    """A navigation path (members, where() with a safe criterion) that never raises."""
    kind = node[0]
    if kind == "member":
        return node[1] is None and node[2][:1].islower() or node[1] is not None and _path_safe(node[1])
    if kind == "call" and node[1] is not None and node[2] == "where" and len(node[3]) == 1:
        return _path_safe(node[1]) and _safe(node[3][0])
    return False


def _true(node) -> str | None:
    """Python source over `n` that implies the expression is exactly true (None: no such test)."""
    kind = node[0]
    if kind == "call" and node[1] is not None and not node[3]:
        name = node[2]
        if name == "exists":
            m = _member_name(node[1])
            return f"_PRESENT(n.get({m!r}))" if m else None
        if name == "empty":  # the path from an absent element is empty, whatever follows
            root = fhirpath._root_name(node[1])
            return _absent_test(root) if root else None
        if name == "not":
            inner = node[1]
            if inner[0] == "call" and inner[2] in ("exists", "hasValue") and not inner[3]:
                m = _member_name(inner[1])
                return _absent_test(m) if m else None
        return None
    if kind == "bin":
        op, left, right = node[1], node[2], node[3]
        if op == "or":
            a, b = _true(left), _true(right)
            if b is not None and not _safe(left):
                b = None
            parts = [x for x in (a, b) if x is not None]
            return " or ".join(f"({p})" for p in parts) if parts else None
        if op == "and":
            a, b = _true(left), _true(right)
            return f"({a}) and ({b})" if a is not None and b is not None else None
        if op == "implies":
            a, b = _false(left), _true(right)
            if b is not None and not _safe(left):
                b = None
            parts = [x for x in (a, b) if x is not None]
            return " or ".join(f"({p})" for p in parts) if parts else None
    return None


def _false(node) -> str | None:
    """Python source over `n` that implies the expression is exactly false."""
    kind = node[0]
    if kind == "call" and node[1] is not None and not node[3] and node[2] in ("exists", "hasValue"):
        m = _member_name(node[1])
        return _absent_test(m) if m else None
    if kind == "bin" and node[1] == "=" and node[3][0] == "lit" and len(node[3][1]) == 1:
        m, lit = _member_name(node[2]), node[3][1][0]
        if m and isinstance(lit, str) and lit and not lit[0].isdigit():
            return f"(type(n.get({m!r})) is str and n[{m!r}] != {lit!r} and {'_' + m!r} not in n)"
    return None


def _per_1(n: dict) -> bool:
    if absent(n, "start") or absent(n, "end"):
        return True  # start.hasValue().not() or end.hasValue().not() is true (and cannot fail)
    return le(n.get("start"), n.get("end"))


def _inv_1(n: dict) -> bool:
    if absent(n, "lastModified") or absent(n, "authoredOn"):
        return True
    return le(n.get("authoredOn"), n.get("lastModified"))


def _not_negative(name: str) -> Callable[[dict], bool]:
    def test(n: dict) -> bool:
        v = n.get(name)
        return absent(n, name) or (type(v) is int or type(v) is float) and v >= 0
    return test


def _org_1(n: dict) -> bool:
    ident, name = n.get("identifier"), n.get("name")
    return (type(ident) is list and present(ident)) or type(name) is str


def _bdl_8(n: dict) -> bool:
    url = n.get("fullUrl")
    if type(url) is str:
        return "/_history/" not in url
    return absent(n, "fullUrl")  # contains() on nothing is false


def _not_home(n: dict) -> bool:
    """`where(use = 'home').empty()` (org-2, org-3): a `use` other than 'home', or none at all."""
    use = n.get("use")
    if type(use) is str:
        return use != "home"
    return "use" not in n and "_use" not in n


_UCUM = fhirpath.UCUM


def _drt_1(n: dict) -> bool:
    """`code.exists() implies ((system = %ucum) and value.exists())`."""
    if absent(n, "code"):
        return True
    value = n.get("value")
    return type(n.get("code")) is str and n.get("system") == _UCUM and (type(value) is int or type(value) is float)


def _rat_1(n: dict) -> bool:
    """`(numerator.empty() xor denominator.exists()) and (numerator.exists() or extension.exists())`:
    both a numerator and a denominator."""
    num, den = n.get("numerator"), n.get("denominator")
    return type(num) is dict and bool(num) and type(den) is dict and bool(den)


def _bdl_12(n: dict) -> bool:
    """`type = 'message' implies entry.first().resource.is(MessageHeader)`."""
    btype = n.get("type")
    if type(btype) is not str or "_type" in n:
        return False
    if btype != "message":
        return True
    entries = n.get("entry")
    first = entries[0] if type(entries) is list and entries else None
    res = first.get("resource") if type(first) is dict else None
    return type(res) is dict and res.get("resourceType") == "MessageHeader"


#: key -> (the exact expression, test): hand-written where the expression compares, counts or
#: looks into a string.
SPECIAL: dict[str, tuple[str, Callable[[dict], bool]]] = {
    "per-1": ("start.hasValue().not() or end.hasValue().not() or (start <= end)", _per_1),
    "inv-1": ("lastModified.exists().not() or authoredOn.exists().not() or lastModified >= authoredOn", _inv_1),
    "tim-4": ("duration.exists() implies duration >= 0", _not_negative("duration")),
    "tim-5": ("period.exists() implies period >= 0", _not_negative("period")),
    "org-1": ("(identifier.count() + name.count()) > 0", _org_1),
    "bdl-8": ("fullUrl.contains('/_history/').not()", _bdl_8),
    "org-2": ("where(use = 'home').empty()", _not_home),
    "org-3": ("where(use = 'home').empty()", _not_home),
    "drt-1": ("code.exists() implies ((system = %ucum) and value.exists())", _drt_1),
    "rat-1": ("(numerator.empty() xor denominator.exists()) and (numerator.exists() or extension.exists())", _rat_1),
    "bdl-12": ("type = 'message' implies entry.first().resource.is(MessageHeader)", _bdl_12),
}


# --- exact evaluation of a subset of FHIRPath ------------------------------------------------
#
# `_exact(ast)` gives a function of the context object returning the very collection the compiled
# FHIRPath would return, or None when it cannot be sure (a construct outside the subset, an item a
# where() criterion cannot judge natively, or a case where the compiled expression would raise).
# It evaluates as lazily as the compiled `and`/`or`/`implies` do. The subset: paths of members and
# where() with a quick criterion (fhirpath._Criterion), exists(), empty(), count(), not(),
# `=`/`!=`, and, or, implies, literals.

_Exact = Callable[[dict], "list | None"]


def _exact(node) -> _Exact | None:
    kind = node[0]
    if kind == "lit":
        value = node[1]
        return lambda n: value
    if kind in ("member", "call") and (kind == "member" or node[2] == "where"):
        path = fhirpath._Criterion._path(node)
        if path is None:
            return None
        not_plain = fhirpath._NOT_PLAIN
        return lambda n: None if (r := path(n)) is not_plain else r
    if kind == "call" and node[1] is not None and node[2] == "all" and len(node[3]) == 1:
        base, judge = _exact(node[1]), fhirpath._Criterion.of(node[3][0])
        if base is None or judge is None:
            return None
        not_plain = fhirpath._NOT_PLAIN

        def every(n: dict) -> list | None:
            items = base(n)
            if items is None:
                return None
            for x in items:
                r = judge(x)
                if r is not_plain:
                    return None
                if r is not True:
                    return [False]
            return [True]
        return every
    if kind == "call" and node[1] is not None and not node[3]:
        base = _exact(node[1])
        if base is None:
            return None
        name = node[2]
        if name == "exists":
            return lambda n: None if (c := base(n)) is None else [bool(c)]
        if name == "empty":
            return lambda n: None if (c := base(n)) is None else [not c]
        if name == "count":
            return lambda n: None if (c := base(n)) is None else [len(c)]
        if name == "not":
            def negate(n: dict) -> list | None:
                c = base(n)
                if c is None or len(c) > 1:
                    return None  # (more than one item: the compiled not() raises)
                if not c:
                    return []
                v = c[0]
                return [not v] if isinstance(v, bool) else [False]
            return negate
        return None
    if kind == "bin":
        op = node[1]
        left, right = _exact(node[2]), _exact(node[3])
        if op in ("=", "!="):
            if left is None or right is None:
                return None
            neg = op == "!="

            def eq(n: dict) -> list | None:
                x = left(n)
                if x is None:
                    return None
                y = right(n)
                if y is None:
                    return None
                return fhirpath.equality(x, y, neg)
            return eq
        if op in ("and", "or", "implies"):
            return _logic(op, left, right)
    return None


def _bool(c: list) -> Any:
    """`fhirpath._to_bool`, with `_NOT_SURE` where it would raise (more than one item)."""
    if not c:
        return None
    if len(c) > 1:
        return _NOT_SURE
    v = c[0]
    return v if isinstance(v, bool) else True


_NOT_SURE = object()


def _logic(op: str, left: _Exact | None, right: _Exact | None) -> _Exact:
    """`Compiler._logic`: the same truth tables and the same laziness."""
    def side(f: _Exact | None, n: dict) -> Any:
        if f is None:
            return _NOT_SURE
        c = f(n)
        return _NOT_SURE if c is None else _bool(c)

    if op in ("and", "or"):
        dominant = op == "or"  # the value that decides alone: false for and, true for or

        def short_circuit(n: dict) -> list | None:
            x = side(left, n)
            if x is _NOT_SURE:
                return None
            if x is dominant:
                return [dominant]
            y = side(right, n)
            if y is _NOT_SURE:
                return None
            if y is dominant:
                return [dominant]
            return [not dominant] if x is (not dominant) and y is (not dominant) else []
        return short_circuit

    def implies(n: dict) -> list | None:
        x = side(left, n)
        if x is _NOT_SURE:
            return None
        if x is False:
            return [True]
        y = side(right, n)
        if y is _NOT_SURE:
            return None
        if y is True:
            return [True]
        if x is True and y is False:
            return [False]
        return []
    return implies


_EXACT_NAMES = iter(range(1_000_000))


def source(key: str, expression: str) -> tuple[str, dict[str, Any]] | None:
    """(Python expression over `n`, names it uses) that implies the invariant holds, or None."""
    special = SPECIAL.get(key)
    if special is not None:
        text, test = special
        if text != expression:
            return None  # written for another text
        name = "_SPECIAL_" + re.sub(r"\W", "_", key)
        return f"{name}(n)", {name: test}
    try:
        ast = fhirpath.parse(expression)
    except fhirpath.Unsupported:
        return None
    src = _true(ast)
    env: dict[str, Any] = {"_PRESENT": present, "_HAS_CHOICE": fhirpath.has_choice}
    exact = _exact(ast)
    if exact is not None:
        name = f"_EXACT_{next(_EXACT_NAMES)}"

        def holds(n: dict, _exact: _Exact = exact) -> bool:
            c = _exact(n)
            return c is not None and len(c) == 1 and c[0] is True
        env[name] = holds
        src = f"({src}) or {name}(n)" if src is not None else f"{name}(n)"
    if src is None:
        return None
    return src, env


def acceptor(key: str, expression: str) -> Callable[[dict], bool] | None:
    """The acceptor of an invariant as a function of its (dict) context, or None."""
    found = source(key, expression)
    if found is None:
        return None
    src, env = found
    fn = eval("lambda n: " + src, dict(env))  # noqa: S307 - source built above from the parsed expression
    fn.src, fn.env = src, env
    return fn
