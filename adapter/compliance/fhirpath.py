"""A small FHIRPath compiler: expressions become Python closures over FHIR JSON, compiled once.

It covers the part of FHIRPath (N1/R4) that invariants use: paths, choice types, indexers,
operators, three-valued logic, the existence/filtering/subsetting/string/math functions,
`is`/`as`/`ofType`, `resolve()`, `iif`, `trace`, `hasValue`, `children`/`descendants`,
`htmlChecks` and the `%resource`/`%rootResource`/`%context`/`%ucum` variables. `compile()`
raises `Unsupported` for anything else (e.g. `conformsTo()`, `memberOf()`); callers then fall
back to fhirpathpy or skip the invariant. Evaluation errors raise `EvalError`.

Items of a collection are plain JSON values (dict, str, int, float, bool). Dates and times stay
strings and are compared with FHIRPath precision rules when both sides look temporal.
"""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass, field
from typing import Any, Callable

Coll = list
Fn = Callable[[Coll, "Env"], Coll]

UCUM = "http://unitsofmeasure.org"


class Unsupported(ValueError):
    """The expression uses FHIRPath this compiler does not implement."""


class EvalError(ValueError):
    """The expression failed at run time (e.g. a singleton was expected)."""


@dataclass(slots=True)
class Env:
    """Evaluation environment: variables, the current $this and a reference resolver."""

    resource: Any = None
    root: Any = None
    context: Any = None
    this: Any = None
    index: int = 0
    resolver: Callable[[Any, "Env"], Any] | None = None
    html_check: Callable[[str], bool] | None = None
    vars: dict = field(default_factory=dict)

    def with_this(self, item: Any, index: int = 0) -> "Env":
        return Env(self.resource, self.root, self.context, item, index, self.resolver, self.html_check, self.vars)


# --- lexer ---------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+|//[^\n]*|/\*.*?\*/)
  | (?P<date>@T?[0-9][0-9:\-T.+Z]*)
  | (?P<num>[0-9]+(\.[0-9]+)?)
  | (?P<str>'(?:[^'\\]|\\.)*')
  | (?P<bq>`[^`]*`)
  | (?P<var>%[A-Za-z_][A-Za-z0-9_\-]*|%'[^']*'|%`[^`]*`)
  | (?P<special>\$this|\$index|\$total)
  | (?P<id>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op><=|>=|!=|!~|[=~<>+\-*/|&.,()\[\]{}])
    """,
    re.X | re.S,
)
_ESC = {"'": "'", '"': '"', "`": "`", "\\": "\\", "/": "/", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


def _unescape(s: str) -> str:
    return re.sub(r"\\(u[0-9a-fA-F]{4}|.)", lambda m: chr(int(m.group(1)[1:], 16)) if m.group(1)[0] == "u" and len(m.group(1)) == 5 else _ESC.get(m.group(1), m.group(1)), s)


def tokenize(text: str) -> list[tuple[str, str]]:
    """Split an expression into (kind, text) tokens."""
    out, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise Unsupported(f"cannot read FHIRPath at {text[pos:pos + 20]!r}")
        pos = m.end()
        kind = m.lastgroup
        if kind == "ws":
            continue
        out.append((kind, m.group(kind)))
    out.append(("eof", ""))
    return out


# --- parser (AST as tuples) ------------------------------------------------------------

_BINARY = [  # lowest precedence first
    ("implies",),
    ("or", "xor"),
    ("and",),
    ("in", "contains"),
    ("=", "~", "!=", "!~"),
    ("<", ">", "<=", ">="),
    ("|",),
    ("is", "as"),
    ("+", "-", "&"),
    ("*", "/", "div", "mod"),
]


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = tokenize(text)
        self.i = 0

    def peek(self, k: int = 0) -> tuple[str, str]:
        return self.toks[self.i + k]

    def take(self, text: str | None = None) -> tuple[str, str]:
        tok = self.toks[self.i]
        if text is not None and tok[1] != text:
            raise Unsupported(f"expected {text!r}, found {tok[1]!r}")
        self.i += 1
        return tok

    def parse(self):
        node = self.expr(0)
        if self.peek()[0] != "eof":
            raise Unsupported(f"unexpected {self.peek()[1]!r}")
        return node

    def expr(self, level: int):
        if level == len(_BINARY):
            return self.unary()
        left = self.expr(level + 1)
        while True:
            kind, text = self.peek()
            if kind in ("op", "id") and text in _BINARY[level]:
                self.take()
                if text in ("is", "as"):
                    left = ("typeop", text, left, self.type_name())
                else:
                    left = ("bin", text, left, self.expr(level + 1))
            else:
                return left

    def type_name(self) -> str:
        name = self.take()[1].strip("`")
        while self.peek()[1] == ".":
            self.take()
            name = self.take()[1].strip("`")  # FHIR.Patient / System.Boolean -> last part
        return name

    def unary(self):
        if self.peek()[1] in ("+", "-") and self.peek()[0] == "op":
            op = self.take()[1]
            return ("neg", self.unary()) if op == "-" else self.unary()
        return self.postfix(self.term())

    def postfix(self, node):
        while True:
            t = self.peek()[1]
            if t == ".":
                self.take()
                node = self.invocation(node)
            elif t == "[":
                self.take()
                idx = self.expr(0)
                self.take("]")
                node = ("index", node, idx)
            else:
                return node

    def invocation(self, base):
        kind, text = self.take()
        if kind not in ("id", "bq"):
            raise Unsupported(f"unexpected {text!r} after '.'")
        name = text.strip("`")
        if kind == "id" and self.peek()[1] == "(":
            return ("call", base, name, self.args())
        return ("member", base, name)

    def args(self) -> list:
        self.take("(")
        args = []
        if self.peek()[1] != ")":
            args.append(self.expr(0))
            while self.peek()[1] == ",":
                self.take()
                args.append(self.expr(0))
        self.take(")")
        return args

    def term(self):
        kind, text = self.peek()
        if text == "(" and kind == "op":
            self.take()
            node = self.expr(0)
            self.take(")")
            return node
        if text == "{" and kind == "op":
            self.take()
            self.take("}")
            return ("lit", [])
        self.take()
        if kind == "num":
            return ("lit", [float(text) if "." in text else int(text)])
        if kind == "str":
            return ("lit", [_unescape(text[1:-1])])
        if kind == "date":
            return ("lit", [text[1:]])
        if kind == "var":
            return ("var", text[1:].strip("'`"))
        if kind == "special":
            return ("special", text)
        if kind == "id" and text in ("true", "false"):
            return ("lit", [text == "true"])
        if kind in ("id", "bq"):
            name = text.strip("`")
            if kind == "id" and self.peek()[1] == "(":
                return ("call", None, name, self.args())
            return ("member", None, name)
        raise Unsupported(f"unexpected {text!r}")


def parse(text: str):
    """The AST of an expression (nested tuples)."""
    return _Parser(text).parse()


# --- value helpers ---------------------------------------------------------------------

_TEMPORAL = re.compile(
    r"^(?P<y>\d{4})(?:-(?P<mo>\d{2})(?:-(?P<d>\d{2}))?)?"
    r"(?:T(?P<h>\d{2})(?::(?P<mi>\d{2})(?::(?P<s>\d{2}(?:\.\d+)?))?)?(?P<tz>Z|[+\-]\d{2}:\d{2})?)?$"
)
_TIME = re.compile(r"^(?P<h>\d{2})(?::(?P<mi>\d{2})(?::(?P<s>\d{2}(?:\.\d+)?))?)?$")


def _temporal(s: str) -> tuple[list, int | None] | None:
    """Components of a date/dateTime string ([y, mo, d, h, mi, s] up to its precision) and tz minutes."""
    m = _TEMPORAL.match(s)
    if not m or (m.group("h") is None and "T" in s and not s.endswith("T")):
        return None
    parts = []
    for g in ("y", "mo", "d", "h", "mi", "s"):
        v = m.group(g)
        if v is None:
            break
        parts.append(float(v) if g == "s" else int(v))
    tz = m.group("tz")
    off = None
    if tz:
        off = 0 if tz == "Z" else (1 if tz[0] == "+" else -1) * (int(tz[1:3]) * 60 + int(tz[4:6]))
    return parts, off


def _to_utc(parts: list, off: int | None) -> list:
    if off is None or len(parts) < 5:
        return parts
    sec = parts[5] if len(parts) > 5 else 0
    base = _dt.datetime(parts[0], parts[1], parts[2], parts[3], parts[4]) - _dt.timedelta(minutes=off)
    out = [base.year, base.month, base.day, base.hour, base.minute]
    if len(parts) > 5:
        out.append(sec)
    return out


def _cmp_temporal(a: str, b: str) -> int | None:
    """-1/0/1 comparing two date/time strings, None when precision makes it undecidable."""
    ta, tb = _temporal(a), _temporal(b)
    if ta is None or tb is None:
        ma, mb = _TIME.match(a), _TIME.match(b)
        if ma and mb:
            pa = [float(x) for x in ma.groups() if x is not None]
            pb = [float(x) for x in mb.groups() if x is not None]
            ta, tb = (pa, None), (pb, None)
        else:
            raise EvalError("not comparable")
    pa, pb = ta[0], tb[0]
    if len(pa) > 3 and len(pb) > 3 and (ta[1] is None) != (tb[1] is None):
        pa, pb = list(pa), list(pb)  # one side without zone: compare as written
    else:
        pa, pb = _to_utc(*ta), _to_utc(*tb)
    for x, y in zip(pa, pb):
        if x != y:
            return -1 if x < y else 1
    if len(pa) != len(pb):
        return None
    return 0


def _is_temporal(v: Any) -> bool:
    return isinstance(v, str) and bool(v) and v[0].isdigit() and (_TEMPORAL.match(v) is not None or _TIME.match(v) is not None)


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _compare(a: Any, b: Any) -> int | None:
    """Order two singleton values: -1/0/1, None when undecidable (empty result)."""
    if _num(a) and _num(b):
        return (a > b) - (a < b)
    if isinstance(a, str) and isinstance(b, str):
        if _is_temporal(a) and _is_temporal(b):
            return _cmp_temporal(a, b)
        return (a > b) - (a < b)
    if isinstance(a, dict) and isinstance(b, dict) and "value" in a and "value" in b:
        if a.get("code", a.get("unit")) != b.get("code", b.get("unit")):
            return None
        return _compare(a["value"], b["value"])
    raise EvalError(f"cannot compare {type(a).__name__} with {type(b).__name__}")


def _equal(a: Any, b: Any) -> bool | None:
    if _num(a) and _num(b):
        return a == b
    if isinstance(a, str) and isinstance(b, str):
        if a == b:
            return True
        if not (a[:1].isdigit() and b[:1].isdigit()):
            return False
        if _is_temporal(a) and _is_temporal(b):
            try:
                c = _cmp_temporal(a, b)
            except EvalError:
                return False
            return None if c is None else c == 0
        return False
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b if isinstance(a, bool) and isinstance(b, bool) else False
    return a == b


def _equivalent(a: Any, b: Any) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return " ".join(a.lower().split()) == " ".join(b.lower().split())
    return bool(_equal(a, b))


def _to_bool(c: Coll) -> bool | None:
    """Collection as a boolean: empty -> None, one boolean -> it, any other single item -> True."""
    if not c:
        return None
    if len(c) > 1:
        raise EvalError("expected a single boolean, got a collection")
    v = c[0]
    return v if isinstance(v, bool) else True


def _single(c: Coll) -> Any:
    if len(c) > 1:
        raise EvalError("expected a single item")
    return c[0] if c else None


def _children(item: Any) -> Coll:
    if not isinstance(item, dict):
        return []
    out: Coll = []
    for k, v in item.items():
        if k == "resourceType" or k[0] == "_":
            continue
        if isinstance(v, list):
            if None in v:
                out.extend(x for x in v if x is not None)
            else:
                out.extend(v)
        else:
            out.append(v)
    return out


def _navigate1(item: dict, name: str) -> Coll:
    """`_navigate([item], name)` for one object, with the usual case (a value, no null) first."""
    v = item.get(name)
    if v is None:
        return _navigate([item], name)
    if isinstance(v, list):
        return [x for x in v if x is not None] if None in v else list(v)
    return [v]


def _descendants(items: Coll) -> Coll:
    out: Coll = []
    todo = list(items)
    while todo:
        kids = _children(todo.pop())
        out.extend(kids)
        todo.extend(k for k in kids if isinstance(k, dict))
    return out


def _distinct(c: Coll) -> Coll:
    out: Coll = []
    for x in c:
        if not any(_equal(x, y) is True for y in out):
            out.append(x)
    return out


_PRIMITIVE_PY = {
    "boolean": (bool,),
    "integer": (int,), "positiveint": (int,), "unsignedint": (int,),
    "decimal": (int, float),
    "string": (str,), "code": (str,), "id": (str,), "uri": (str,), "url": (str,), "canonical": (str,),
    "markdown": (str,), "date": (str,), "datetime": (str,), "instant": (str,), "time": (str,),
    "oid": (str,), "uuid": (str,), "base64binary": (str,), "xhtml": (str,),
}
_NOT_DOMAIN = {"Bundle", "Binary", "Parameters"}


def type_matches(item: Any, type_name: str) -> bool | None:
    """Does a JSON item have FHIR type `type_name`? None when its type cannot be told."""
    t = type_name.split(".")[-1]
    if isinstance(item, dict):
        rt = item.get("resourceType")
        if rt is None:
            return None
        return rt == t or t == "Resource" or (t == "DomainResource" and rt not in _NOT_DOMAIN)
    py = _PRIMITIVE_PY.get(t.lower())
    if py is None:
        return False
    if isinstance(item, bool):
        return bool in py
    return isinstance(item, py) and (t.lower() != "integer" or isinstance(item, int))


def _cap(t: str) -> str:
    t = t.split(".")[-1]
    return t[:1].upper() + t[1:]


# --- compiler --------------------------------------------------------------------------


#: Names of choice elements (`value` for `value[x]`); None means "look for a choice everywhere".
CHOICE_NAMES: set[str] | None = None


def set_choice_names(names: set[str]) -> None:
    """Tell the navigator which names can be choice elements (saves scanning keys)."""
    global CHOICE_NAMES
    CHOICE_NAMES = set(names)


def _navigate(items: Coll, name: str) -> Coll:
    out: Coll = []
    choices = CHOICE_NAMES
    for it in items:
        if not isinstance(it, dict):
            continue
        v = it.get(name)
        if v is None:
            if ("_" + name) in it:
                ext = it["_" + name]
                if isinstance(ext, list):
                    out.extend(_PrimitiveExt(x) for x in ext if x is not None)
                else:
                    out.append(_PrimitiveExt(ext))
                continue
            if choices is not None and name not in choices:
                continue
            n = len(name)
            for k, cv in it.items():  # choice type: valueQuantity, valueString, ...
                if len(k) > n and k.startswith(name) and k[n].isupper():
                    v = cv
                    break
            if v is None:
                continue
        if isinstance(v, list):
            if None in v:
                out.extend(x for x in v if x is not None)
            else:
                out.extend(v)
        else:
            out.append(v)
    return out


def _navigate1(item: dict, name: str) -> Coll:
    """`_navigate([item], name)` for one object, with the usual case (a value, no null) first."""
    v = item.get(name)
    if v is None:
        return _navigate([item], name)
    if isinstance(v, list):
        return [x for x in v if x is not None] if None in v else list(v)
    return [v]


class _PrimitiveExt(dict):
    """A primitive element that has extensions but no value (from a `_name` JSON property)."""


def _member(base: Fn | None, name: str) -> Fn:
    if base is None and not name[:1].isupper():
        return lambda focus, env: _navigate(focus, name)
    if base is None:
        def f(focus: Coll, env: Env) -> Coll:
            if name[:1].isupper() and focus and isinstance(focus[0], dict):
                first = focus[0]
                if first.get("resourceType") == name or (name not in first and type_matches(first, name) is not False):
                    return focus
            return _navigate(focus, name)
        return f

    def g(focus: Coll, env: Env) -> Coll:
        return _navigate(base(focus, env), name)
    return g


def _typed_member(base: Fn | None, name: str, type_name: str) -> Fn:
    """`name.ofType(T)` on a choice element: read `nameT` directly, else check the item's type."""
    key = name + _cap(type_name)

    def f(focus: Coll, env: Env) -> Coll:
        return choice_values(base(focus, env) if base else focus, name, key, type_name)
    return f


def equality(x: Coll, y: Coll, neg: bool) -> Coll:
    """`x = y` (or `x != y` when `neg`) on two evaluated collections: empty when either is empty or
    an item pair cannot be compared."""
    if not x or not y:
        return []
    if len(x) != len(y):
        return [neg]
    res: bool | None = True
    for p, q in zip(x, y):
        r = _equal(p, q)
        if r is None:
            return []
        res = res and r
    return [res != neg]


def choice_values(items: Coll, name: str, key: str, type_name: str) -> Coll:
    """The values of choice element `name` of type `type_name` in `items`: the key `key` (`nameT`)
    read directly, else `name` with each value's type checked."""
    out: Coll = []
    for it in items:
        if not isinstance(it, dict):
            continue
        if key in it:
            v = it[key]
            out.extend(v if isinstance(v, list) else [v])
        elif name in it:
            v = it[name]
            out.extend(x for x in (v if isinstance(v, list) else [v]) if type_matches(x, type_name))
    return out


def _of_type(base: Fn, type_name: str) -> Fn:
    def f(focus: Coll, env: Env) -> Coll:
        return [x for x in base(focus, env) if type_matches(x, type_name)]
    return f


def _eq_text(a: Fn, text: str, neg: bool) -> Fn:
    """`a = 'text'` (or `!=`): the general equality, with the usual case (one string) done first."""
    digit = text[:1].isdigit()

    def eq(focus: Coll, env: Env) -> Coll:
        x = a(focus, env)
        if not x:
            return []
        if len(x) != 1:
            return [neg]
        p = x[0]
        if type(p) is str:
            if p == text:
                return [not neg]
            if not (digit and p[:1].isdigit()):
                return [neg]
        r = _equal(p, text)
        return [] if r is None else [r != neg]
    return eq


#: A criterion's result for an item it cannot judge natively (see _Criterion).
_NOT_PLAIN = object()


class _Criterion:
    """A where()/exists()/all() criterion made of `name = 'text'`, `name != 'text'`,
    `path.exists()`, `path.empty()` (paths of members and where() with such a criterion), `and`
    and `or`, judged natively for a "plain" item: an object whose elements compared with text
    are absent or single strings, with no `_name` companions or choice variants.
    Answers True, False or None (the empty collection), exactly as the compiled criterion would;
    `_NOT_PLAIN` for any other item (which the compiled criterion then judges)."""

    @staticmethod
    def of(node) -> Callable[[Any], Any] | None:
        names: set[str] = set()
        test = _Criterion._compile(node, names)
        if test is None:
            return None
        names_t = tuple(sorted(names))

        def judge(item: Any) -> Any:
            if type(item) is not dict:
                return _NOT_PLAIN
            for name in names_t:
                v = item.get(name)
                if v is None:
                    if ("_" + name) in item or ((CHOICE_NAMES is None or name in CHOICE_NAMES) and has_choice(item, name)):
                        return _NOT_PLAIN
                elif type(v) is not str:
                    return _NOT_PLAIN
            return test(item)
        return judge

    @staticmethod
    def _compile(node, names: set[str]) -> Callable[[dict], bool | None] | None:
        kind = node[0]
        if kind == "bin" and node[1] in ("=", "!=") and node[2][0] == "member" and node[2][1] is None and node[2][2][:1].islower() \
                and node[3][0] == "lit" and len(node[3][1]) == 1 and isinstance(node[3][1][0], str):
            name, text, neg = node[2][2], node[3][1][0], node[1] == "!="
            names.add(name)
            digit = text[:1].isdigit()

            def eq(item: dict) -> bool | None:
                v = item.get(name)
                if v is None:
                    return None
                if v == text:
                    return not neg
                if not (digit and v[:1].isdigit()):
                    return neg
                r = _equal(v, text)
                return None if r is None else r != neg
            return eq
        if kind == "call" and node[2] in ("exists", "empty") and not node[3] and node[1] is not None:
            # a path from the item (members, where() with a quick criterion), then exists()/empty()
            found = _Criterion._path(node[1])
            if found is None:
                return None
            want = node[2] == "exists"

            def nonempty(item: dict) -> Any:
                items = found(item)
                if items is _NOT_PLAIN:
                    return _NOT_PLAIN
                return bool(items) is want
            return nonempty
        if kind == "bin" and node[1] in ("and", "or"):
            left, right = _Criterion._compile(node[2], names), _Criterion._compile(node[3], names)
            if left is None or right is None:
                return None
            if node[1] == "and":
                def both(item: dict) -> Any:
                    x = left(item)
                    if x is _NOT_PLAIN:
                        return x
                    if x is False:
                        return False
                    y = right(item)
                    if y is _NOT_PLAIN:
                        return y
                    if y is False:
                        return False
                    return True if x and y else None
                return both

            def either(item: dict) -> Any:
                x = left(item)
                if x is _NOT_PLAIN:
                    return x
                if x is True:
                    return True
                y = right(item)
                if y is _NOT_PLAIN:
                    return y
                if y is True:
                    return True
                return False if x is False and y is False else None
            return either
        return None

    @staticmethod
    def _path(node) -> Callable[[dict], Any] | None:
        """The collection a path from the item gives (members and where() with a quick criterion),
        or `_NOT_PLAIN` when a where() meets an item its criterion cannot judge."""
        kind = node[0]
        if kind == "member":
            name = node[2]
            if node[1] is None:
                if name[:1].isupper():
                    return None
                return lambda item: _navigate1(item, name)
            base = _Criterion._path(node[1])
            if base is None:
                return None

            def member(item: dict) -> Any:
                items = base(item)
                return items if items is _NOT_PLAIN else _navigate(items, name)
            return member
        if kind == "call" and node[2] == "ofType" and len(node[3]) == 1 and node[3][0][0] == "member" and node[3][0][1] is None \
                and node[1] is not None and node[1][0] == "member" and node[1][2][:1].islower():
            # `name.ofType(T)`: Compiler._choice / _typed_member (the choice key first, else a type test)
            operand, type_name = node[1], node[3][0][2]
            name = operand[2]
            base = None if operand[1] is None else _Criterion._path(operand[1])
            if operand[1] is not None and base is None:
                return None
            key = name + _cap(type_name)

            def typed(item: dict) -> Any:
                items = [item] if base is None else base(item)
                if items is _NOT_PLAIN:
                    return items
                return choice_values(items, name, key, type_name)
            return typed
        if kind == "call" and node[2] == "where" and len(node[3]) == 1 and node[1] is not None:
            base = _Criterion._path(node[1])
            judge = _Criterion.of(node[3][0])
            if base is None or judge is None:
                return None

            def where(item: dict) -> Any:
                items = base(item)
                if items is _NOT_PLAIN:
                    return items
                out = []
                for x in items:
                    r = judge(x)
                    if r is _NOT_PLAIN:
                        return r
                    if r is True:
                        out.append(x)
                return out
            return where
        return None


def has_choice(node: dict, name: str) -> bool:
    """A key `name` + upper-case letter (a choice variant: valueString, ...) is in `node`."""
    n = len(name)
    for k in node:
        if len(k) > n and k.startswith(name) and k[n].isupper():
            return True
    return False


class Compiler:
    """Turns an AST into a closure `f(focus, env) -> collection`."""

    def compile(self, node) -> Fn:
        kind = node[0]
        return getattr(self, "c_" + kind)(*node[1:])

    def c_lit(self, value: Coll) -> Fn:
        return lambda focus, env: value

    def c_var(self, name: str) -> Fn:
        if name in ("resource",):
            return lambda focus, env: [env.resource] if env.resource is not None else []
        if name == "rootResource":
            return lambda focus, env: [env.root] if env.root is not None else []
        if name == "context":
            return lambda focus, env: [env.context] if env.context is not None else []
        if name == "ucum":
            return lambda focus, env: [UCUM]
        if name == "sct":
            return lambda focus, env: ["http://snomed.info/sct"]
        if name == "loinc":
            return lambda focus, env: ["http://loinc.org"]
        raise Unsupported(f"variable %{name}")

    def c_special(self, name: str) -> Fn:
        if name == "$this":
            return lambda focus, env: [env.this] if env.this is not None else []
        if name == "$index":
            return lambda focus, env: [env.index]
        raise Unsupported(name)

    def c_member(self, base, name: str) -> Fn:
        return _member(self.compile(base) if base is not None else None, name)

    def c_index(self, base, idx) -> Fn:
        b, i = self.compile(base), self.compile(idx)

        def f(focus: Coll, env: Env) -> Coll:
            items = b(focus, env)
            n = _single(i(focus, env))
            return [items[n]] if isinstance(n, int) and 0 <= n < len(items) else []
        return f

    def c_neg(self, operand) -> Fn:
        o = self.compile(operand)

        def f(focus: Coll, env: Env) -> Coll:
            v = _single(o(focus, env))
            return [] if v is None else [-v]
        return f

    def _choice(self, operand, type_name: str) -> Fn | None:
        if operand[0] == "member":
            base = self.compile(operand[1]) if operand[1] is not None else None
            return _typed_member(base, operand[2], type_name)
        return None

    def c_typeop(self, op: str, operand, type_name: str) -> Fn:
        typed = self._choice(operand, type_name) or _of_type(self.compile(operand), type_name)
        if op == "as":
            return typed
        raw = self.compile(operand)

        def is_(focus: Coll, env: Env) -> Coll:
            if not raw(focus, env):
                return [False]  # the HL7 Java engine answers false for an empty operand
            return [bool(typed(focus, env))]
        return is_

    def c_bin(self, op: str, left, right) -> Fn:
        a, b = self.compile(left), self.compile(right)
        if op in ("and", "or", "xor", "implies"):
            return self._logic(op, a, b)
        if op == "|":
            return lambda focus, env: _distinct(a(focus, env) + b(focus, env))
        if op in ("=", "!=") and right[0] == "lit" and len(right[1]) == 1 and isinstance(right[1][0], str):
            return _eq_text(a, right[1][0], op == "!=")
        if op in ("=", "!="):
            neg = op == "!="

            def eq(focus: Coll, env: Env) -> Coll:
                return equality(a(focus, env), b(focus, env), neg)
            return eq
        if op in ("~", "!~"):
            neg = op == "!~"

            def eqv(focus: Coll, env: Env) -> Coll:
                x, y = a(focus, env), b(focus, env)
                if not x and not y:
                    return [not neg]
                if len(x) != len(y):
                    return [neg]
                return [all(_equivalent(p, q) for p, q in zip(x, y)) != neg]
            return eqv
        if op in ("<", ">", "<=", ">="):
            test = {"<": lambda c: c < 0, ">": lambda c: c > 0, "<=": lambda c: c <= 0, ">=": lambda c: c >= 0}[op]

            def cmp(focus: Coll, env: Env) -> Coll:
                x, y = _single(a(focus, env)), _single(b(focus, env))
                if x is None or y is None:
                    return []
                c = _compare(x, y)
                return [] if c is None else [test(c)]
            return cmp
        if op in ("in", "contains"):
            member_first = op == "in"

            def inop(focus: Coll, env: Env) -> Coll:
                x, y = a(focus, env), b(focus, env)
                item, coll = (x, y) if member_first else (y, x)
                if not item:
                    return []
                v = _single(item)
                return [any(_equal(v, c) is True for c in coll)]
            return inop
        if op == "&":
            def cat(focus: Coll, env: Env) -> Coll:
                x, y = _single(a(focus, env)), _single(b(focus, env))
                return [(x if x is not None else "") + (y if y is not None else "")]
            return cat
        if op in ("+", "-", "*", "/", "div", "mod"):
            def arith(focus: Coll, env: Env) -> Coll:
                x, y = _single(a(focus, env)), _single(b(focus, env))
                if x is None or y is None:
                    return []
                if op == "+":
                    if isinstance(x, str) and isinstance(y, str):
                        return [x + y]
                    if _num(x) and _num(y):
                        return [x + y]
                    raise EvalError("cannot add")
                if not (_num(x) and _num(y)):
                    raise EvalError("arithmetic on non-numbers")
                if op == "-":
                    return [x - y]
                if op == "*":
                    return [x * y]
                if y == 0:
                    return []
                if op == "/":
                    return [x / y]
                if op == "div":
                    return [int(x // y)]
                return [x % y]
            return arith
        raise Unsupported(f"operator {op}")

    @staticmethod
    def _logic(op: str, a: Fn, b: Fn) -> Fn:
        if op == "and":
            def f(focus: Coll, env: Env) -> Coll:
                x = _to_bool(a(focus, env))
                if x is False:
                    return [False]
                y = _to_bool(b(focus, env))
                if y is False:
                    return [False]
                return [True] if x and y else []
        elif op == "or":
            def f(focus: Coll, env: Env) -> Coll:
                x = _to_bool(a(focus, env))
                if x is True:
                    return [True]
                y = _to_bool(b(focus, env))
                if y is True:
                    return [True]
                return [False] if x is False and y is False else []
        elif op == "xor":
            def f(focus: Coll, env: Env) -> Coll:
                x, y = _to_bool(a(focus, env)), _to_bool(b(focus, env))
                return [] if x is None or y is None else [x != y]
        else:
            def f(focus: Coll, env: Env) -> Coll:
                x = _to_bool(a(focus, env))
                if x is False:
                    return [True]
                y = _to_bool(b(focus, env))
                if y is True:
                    return [True]
                if x is True and y is False:
                    return [False]
                return []
        return f

    # functions --------------------------------------------------------------------
    def c_focus(self) -> Fn:
        return lambda focus, env: focus

    def c_call(self, base, name: str, args: list) -> Fn:
        if name in ("ofType", "as", "is") and len(args) == 1 and args[0][0] == "member" and args[0][1] is None:
            operand = base if base is not None else ("focus",)
            return self.c_typeop("is" if name == "is" else "as", operand, args[0][2])
        b = self.compile(base) if base is not None else (lambda focus, env: focus)
        impl = getattr(self, "f_" + name, None)
        if impl is None:
            raise Unsupported(f"function {name}()")
        return impl(b, args)

    def _arg(self, args: list, i: int) -> Fn:
        """A non-iterative argument, evaluated against the enclosing $this."""
        fn = self.compile(args[i])
        return lambda focus, env: fn([env.this] if env.this is not None else [], env)

    def _iter(self, args: list, i: int) -> Fn:
        return self.compile(args[i])

    def f_exists(self, b: Fn, args: list) -> Fn:
        if args:
            crit = self._iter(args, 0)
            quick = _Criterion.of(args[0])
            if quick is not None:
                def exists_quick(focus: Coll, env: Env) -> Coll:
                    for n, x in enumerate(b(focus, env)):
                        r = quick(x)
                        if r is _NOT_PLAIN:
                            r = _to_bool(crit([x], env.with_this(x, n)))
                        if r is True:
                            return [True]
                    return [False]
                return exists_quick
            return lambda focus, env: [any(_to_bool(crit([x], env.with_this(x, n))) is True for n, x in enumerate(b(focus, env)))]
        return lambda focus, env: [bool(b(focus, env))]

    def f_empty(self, b: Fn, args: list) -> Fn:
        return lambda focus, env: [not b(focus, env)]

    def f_not(self, b: Fn, args: list) -> Fn:
        def f(focus: Coll, env: Env) -> Coll:
            v = _to_bool(b(focus, env))
            return [] if v is None else [not v]
        return f

    def f_hasValue(self, b: Fn, args: list) -> Fn:
        def f(focus: Coll, env: Env) -> Coll:
            c = b(focus, env)
            return [len(c) == 1 and not isinstance(c[0], dict)]
        return f

    def f_all(self, b: Fn, args: list) -> Fn:
        crit = self._iter(args, 0)
        quick = _Criterion.of(args[0])
        if quick is not None:
            def all_quick(focus: Coll, env: Env) -> Coll:
                for n, x in enumerate(b(focus, env)):
                    r = quick(x)
                    if r is _NOT_PLAIN:
                        r = _to_bool(crit([x], env.with_this(x, n)))
                    if r is not True:
                        return [False]
                return [True]
            return all_quick
        return lambda focus, env: [all(_to_bool(crit([x], env.with_this(x, n))) is True for n, x in enumerate(b(focus, env)))]

    def f_where(self, b: Fn, args: list) -> Fn:
        crit = self._iter(args, 0)
        quick = _Criterion.of(args[0])
        if quick is not None:
            def where_quick(focus: Coll, env: Env) -> Coll:
                out: Coll = []
                for n, x in enumerate(b(focus, env)):
                    r = quick(x)
                    if r is _NOT_PLAIN:
                        r = _to_bool(crit([x], env.with_this(x, n)))
                    if r is True:
                        out.append(x)
                return out
            return where_quick
        return lambda focus, env: [x for n, x in enumerate(b(focus, env)) if _to_bool(crit([x], env.with_this(x, n))) is True]

    def f_select(self, b: Fn, args: list) -> Fn:
        proj = self._iter(args, 0)

        def f(focus: Coll, env: Env) -> Coll:
            out: Coll = []
            for n, x in enumerate(b(focus, env)):
                out.extend(proj([x], env.with_this(x, n)))
            return out
        return f

    def f_count(self, b: Fn, args: list) -> Fn:
        return lambda focus, env: [len(b(focus, env))]

    def f_first(self, b: Fn, args: list) -> Fn:
        return lambda focus, env: b(focus, env)[:1]

    def f_last(self, b: Fn, args: list) -> Fn:
        return lambda focus, env: b(focus, env)[-1:]

    def f_tail(self, b: Fn, args: list) -> Fn:
        return lambda focus, env: b(focus, env)[1:]

    def f_single(self, b: Fn, args: list) -> Fn:
        def f(focus: Coll, env: Env) -> Coll:
            c = b(focus, env)
            return [_single(c)] if c else []
        return f

    def f_distinct(self, b: Fn, args: list) -> Fn:
        return lambda focus, env: _distinct(b(focus, env))

    def f_isDistinct(self, b: Fn, args: list) -> Fn:
        def f(focus: Coll, env: Env) -> Coll:
            c = b(focus, env)
            return [len(_distinct(c)) == len(c)]
        return f

    def f_trace(self, b: Fn, args: list) -> Fn:
        return b

    def f_children(self, b: Fn, args: list) -> Fn:
        return lambda focus, env: [x for it in b(focus, env) for x in _children(it)]

    def f_descendants(self, b: Fn, args: list) -> Fn:
        return lambda focus, env: _descendants(b(focus, env))

    def _string_fn(self, b: Fn, args: list, op: Callable[..., Any], predicate: bool = False) -> Fn:
        """A string function; a predicate (startsWith, contains, ...) on empty input gives false,
        as the HL7 Java engine does (invariants such as bdl-8 and ref-1 rely on it)."""
        params = [self._arg(args, i) for i in range(len(args))]
        on_empty: Coll = [False] if predicate else []

        def f(focus: Coll, env: Env) -> Coll:
            s = _single(b(focus, env))
            if s is None:
                return on_empty
            if not isinstance(s, str):
                raise EvalError("string function on a non-string")
            vals = []
            for p in params:
                v = _single(p(focus, env))
                if v is None:
                    return []
                vals.append(v)
            r = op(s, *vals)
            return [] if r is None else [r]
        return f

    def f_startsWith(self, b: Fn, args: list) -> Fn:
        return self._string_fn(b, args, lambda s, p: s.startswith(p), predicate=True)

    def f_endsWith(self, b: Fn, args: list) -> Fn:
        return self._string_fn(b, args, lambda s, p: s.endswith(p), predicate=True)

    def f_contains(self, b: Fn, args: list) -> Fn:
        return self._string_fn(b, args, lambda s, p: p in s, predicate=True)

    def f_matches(self, b: Fn, args: list) -> Fn:
        return self._string_fn(b, args, lambda s, p: _regex(p).search(s) is not None, predicate=True)

    def f_replaceMatches(self, b: Fn, args: list) -> Fn:
        return self._string_fn(b, args, lambda s, p, r: _regex(p).sub(r.replace("$", "\\"), s))

    def f_replace(self, b: Fn, args: list) -> Fn:
        return self._string_fn(b, args, lambda s, p, r: s.replace(p, r))

    def f_length(self, b: Fn, args: list) -> Fn:
        return self._string_fn(b, args, len)

    def f_upper(self, b: Fn, args: list) -> Fn:
        return self._string_fn(b, args, str.upper)

    def f_lower(self, b: Fn, args: list) -> Fn:
        return self._string_fn(b, args, str.lower)

    def f_indexOf(self, b: Fn, args: list) -> Fn:
        return self._string_fn(b, args, lambda s, p: s.find(p))

    def f_substring(self, b: Fn, args: list) -> Fn:
        def sub(s: str, start: int, length: int | None = None) -> str | None:
            if start < 0 or start >= len(s):
                return None
            return s[start:] if length is None else s[start : start + length]
        return self._string_fn(b, args, sub)

    def f_toInteger(self, b: Fn, args: list) -> Fn:
        def f(focus: Coll, env: Env) -> Coll:
            v = _single(b(focus, env))
            if isinstance(v, bool):
                return [int(v)]
            if isinstance(v, int):
                return [v]
            if isinstance(v, str) and re.fullmatch(r"[+-]?\d+", v):
                return [int(v)]
            return []
        return f

    def f_toDecimal(self, b: Fn, args: list) -> Fn:
        def f(focus: Coll, env: Env) -> Coll:
            v = _single(b(focus, env))
            if _num(v):
                return [float(v)]
            if isinstance(v, str) and re.fullmatch(r"[+-]?\d+(\.\d+)?", v):
                return [float(v)]
            return []
        return f

    def f_toString(self, b: Fn, args: list) -> Fn:
        def f(focus: Coll, env: Env) -> Coll:
            v = _single(b(focus, env))
            if v is None:
                return []
            if isinstance(v, bool):
                return ["true" if v else "false"]
            return [str(v)] if not isinstance(v, dict) else []
        return f

    def f_iif(self, b: Fn, args: list) -> Fn:
        cond, yes = self.compile(args[0]), self.compile(args[1])
        no = self.compile(args[2]) if len(args) > 2 else None

        def f(focus: Coll, env: Env) -> Coll:
            data = b(focus, env)
            if _to_bool(cond(data, env)) is True:
                return yes(data, env)
            return no(data, env) if no else []
        return f

    def f_combine(self, b: Fn, args: list) -> Fn:
        other = self._arg(args, 0)
        return lambda focus, env: b(focus, env) + other(focus, env)

    def f_union(self, b: Fn, args: list) -> Fn:
        other = self._arg(args, 0)
        return lambda focus, env: _distinct(b(focus, env) + other(focus, env))

    def f_intersect(self, b: Fn, args: list) -> Fn:
        other = self._arg(args, 0)

        def f(focus: Coll, env: Env) -> Coll:
            right = other(focus, env)
            return _distinct([x for x in b(focus, env) if any(_equal(x, y) is True for y in right)])
        return f

    def f_exclude(self, b: Fn, args: list) -> Fn:
        other = self._arg(args, 0)

        def f(focus: Coll, env: Env) -> Coll:
            right = other(focus, env)
            return [x for x in b(focus, env) if not any(_equal(x, y) is True for y in right)]
        return f

    def f_allTrue(self, b: Fn, args: list) -> Fn:
        return lambda focus, env: [all(x is True for x in b(focus, env))]

    def f_anyTrue(self, b: Fn, args: list) -> Fn:
        return lambda focus, env: [any(x is True for x in b(focus, env))]

    def f_resolve(self, b: Fn, args: list) -> Fn:
        def f(focus: Coll, env: Env) -> Coll:
            if env.resolver is None:
                return []
            out: Coll = []
            for it in b(focus, env):
                r = env.resolver(it, env)
                if r is not None:
                    out.append(r)
            return out
        return f

    def f_extension(self, b: Fn, args: list) -> Fn:
        url = self._arg(args, 0)

        def f(focus: Coll, env: Env) -> Coll:
            u = _single(url(focus, env))
            return [e for e in _navigate(b(focus, env), "extension") if isinstance(e, dict) and e.get("url") == u]
        return f

    def f_htmlChecks(self, b: Fn, args: list) -> Fn:
        def f(focus: Coll, env: Env) -> Coll:
            v = _single(b(focus, env))
            if v is None:
                return []
            return [env.html_check(v) if env.html_check else True]
        return f

    def f_today(self, b: Fn, args: list) -> Fn:
        return lambda focus, env: [_dt.date.today().isoformat()]

    def f_now(self, b: Fn, args: list) -> Fn:
        return lambda focus, env: [_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")]


_REGEX_CACHE: dict[str, re.Pattern] = {}


def _regex(p: str) -> re.Pattern:
    rx = _REGEX_CACHE.get(p)
    if rx is None:
        rx = _REGEX_CACHE[p] = re.compile(p, re.S)
    return rx


_COMPILED: dict[str, Fn] = {}


def compile(expression: str) -> Fn:  # noqa: A001 - FHIRPath's own verb
    """Compile an expression once (cached); raises Unsupported for what is not covered."""
    fn = _COMPILED.get(expression)
    if fn is None:
        fn = _COMPILED[expression] = Compiler().compile(parse(expression))
    return fn


def evaluate(expression: str, node: Any, env: Env | None = None) -> Coll:
    """Evaluate an expression on one node (convenience for tests and one-off checks)."""
    env = env or Env()
    if env.this is None:
        env.this = node
    if env.context is None:
        env.context = node
    if env.resource is None:
        env.resource = node
    if env.root is None:
        env.root = env.resource
    return compile(expression)([node], env)


def truth(result: Coll) -> bool | None:
    """An invariant's verdict: True only for a single true; None for empty (Java: failure)."""
    if not result:
        return None
    return _to_bool(result)


# --- guards: when an invariant is certainly true without evaluating it ---------------------

_EMPTY_WHEN_ABSENT = frozenset({"where", "select", "first", "last", "tail", "distinct", "ofType", "as", "trace", "children", "descendants", "resolve", "extension"})


def _root_name(node) -> str | None:
    """The first element name of a path that starts at the focus (`a.b.where(..)` -> 'a')."""
    while True:
        kind = node[0]
        if kind == "member":
            if node[1] is None:
                return None if node[2][:1].isupper() else node[2]  # 'Appointment.x' names the context itself
            node = node[1]
        elif kind == "call" and node[1] is not None and node[2] in _EMPTY_WHEN_ABSENT:
            node = node[1]
        elif kind == "index":
            node = node[1]
        else:
            return None


def _true_when_absent(node) -> frozenset[str] | None:
    """Names N such that, when no element named in N is present, the expression is true."""
    kind = node[0]
    if kind == "call" and node[1] is not None:
        name = node[2]
        if name == "empty" and not node[3] or name == "all":
            root = _root_name(node[1])
            return frozenset({root}) if root else None
        if name == "not" and not node[3]:
            inner = node[1]
            if inner[0] == "call" and inner[2] in ("exists", "hasValue") and inner[1] is not None:
                root = _root_name(inner[1])
                return frozenset({root}) if root else None
        return None
    if kind == "bin":
        op, left, right = node[1], node[2], node[3]
        if op == "or":
            options = [g for g in (_true_when_absent(left), _true_when_absent(right)) if g is not None]
            return min(options, key=len) if options else None
        if op == "and":
            a, b = _true_when_absent(left), _true_when_absent(right)
            return a | b if a is not None and b is not None else None
        if op == "implies":
            return _false_when_absent(left)
    return None


def _false_when_absent(node) -> frozenset[str] | None:
    """Names N such that, when none is present, the expression is false (not empty)."""
    kind = node[0]
    if kind == "call" and node[1] is not None and node[2] in ("exists", "hasValue"):
        root = _root_name(node[1])
        return frozenset({root}) if root else None
    if kind == "bin" and node[1] == "and":
        options = [g for g in (_false_when_absent(node[2]), _false_when_absent(node[3])) if g is not None]
        return min(options, key=len) if options else None
    if kind == "bin" and node[1] == "or":
        a, b = _false_when_absent(node[2]), _false_when_absent(node[3])
        return a | b if a is not None and b is not None else None
    return None


def guard(expression: str) -> frozenset[str] | None:
    """Element names of the context of which at least one must be present for the expression
    to possibly be false; None when no such set is known (the expression is always evaluated)."""
    try:
        return _true_when_absent(parse(expression))
    except Unsupported:
        return None
