"""Layer 1, specialised: per type, generated Python that does exactly what `Walker.generic_obj` does.

`Walker.generic_obj` interprets a type's table for every JSON object: it looks each key up, picks
a mode, calls the field's acceptance check, loops over the required elements and so on. Here each
type's table becomes the source of one function, `exec`'d once per process when the type is first
met (`compile_type`) and kept on `TypeRule.walk`:

- keys are dispatched by a balanced tree of integer comparisons (key -> index, one dict lookup);
- a primitive field's fast acceptance check (`model.fast_expr`, the same expression the
  interpreter evaluates) is inlined, as are the Coding/CodeableConcept/Reference follow-ups,
  the cardinality, required-element and ele-1 checks, the type hook and the invariant guards;
- a child object is walked by calling the child type's generated function directly.

Anything unusual (a value that fails its fast check, an unknown key, a choice element, a
resource, an extension, a wrong JSON shape) goes to the same `Walker` method the interpreter
uses, with the same arguments, in the same order, so the issues, their order and everything the
walker records for layers 2 and 3 are identical to the interpreter's. `python -m
adapter.compliance.selfcheck` compares the two on the R4 package, the negative corpus and seeded
mutants of them.
"""

from __future__ import annotations

import re
from typing import Any, Callable

from adapter.compliance import base, fhirpath, narrative
from adapter.compliance.model import (
    COMPLEX, EXTENSION, LIST_COMPLEX, LIST_FAST, POST_CODING, POST_CONCEPT, POST_REFERENCE, RESOURCE, SINGLE_COMPLEX,
    SINGLE_FAST,
    Field, TypeRule, rules,
)

#: Globals of the generated functions: helpers, and `W_<type>` for every type compiled (or stubbed).
_G: dict[str, Any] = {
    "_GENERIC": base.Walker._generic,
    "_ODD_KEY": base.Walker._odd_key,
    "_SLOW_ITEMS": base.Walker._slow_items,
    "_COUNT_MIN": base.Walker._count_min,
    "_GENERIC_OBJ": base.Walker.generic_obj,
    "_FHIRPATH_INV": base.Walker.fhirpath_invariant,
    "_HAS_CHOICE": fhirpath.has_choice,
    "_CHOICE_REST": base.Walker._choice_rest,
    "_NARRATIVE_PROBLEMS": narrative.problems,
    "_UNSET": base._UNSET,
}
_NAMES: dict[str, str] = {}  # type key -> generated function name
_ENV_NAMES = re.compile(r"\b(_CONTROL_SEARCH|_RX|_CODES|_SEEN|_MEMO|_REAL_DATE|_URN|_B64)\b")
ELE_1 = "Constraint failed: ele-1: 'All FHIR elements must have a @value or children'"
#: Types with at most this many keys dispatch by comparing the key in turn (else: index and tree).
_CHAIN_MAX = 7
_RARE_KEYS = frozenset({"id", "extension", "modifierExtension"})
#: `_HAS_CHOICE(n, 'name')` in an acceptor's source.
_HAS_CHOICE_N = re.compile(r"_HAS_CHOICE\(n, '(\w+)'\)")
#: List items whose path suffix (`.name[i]`) is made once per field rather than for every item.
_SUFFIXES = 8


def compile_type(t: TypeRule) -> Callable:
    """The generated walker of a type (compiled once, kept on `t.walk`)."""
    if t.walk is None:
        name = _function_name(t.name)
        source, consts = _source(t, name)
        factory_ns: dict[str, Any] = {}
        exec(compile(source, f"<carebridge walker {t.name}>", "exec"), _G, factory_ns)  # noqa: S102 - generated here
        fn = factory_ns["make"](*consts)
        fn.source = source  # for reading and debugging
        t.walk = fn
        _G[name] = fn
    return t.walk


def _function_name(type_key: str) -> str:
    name = _NAMES.get(type_key)
    if name is None:
        name = _NAMES[type_key] = f"W{len(_NAMES)}_" + re.sub(r"\W", "_", type_key)
    return name


def _child(tkey: str) -> str | None:
    """The global name of a child type's walker, with a stub that compiles it on first call."""
    t = rules().type(tkey)
    if t is None:
        return None
    name = _function_name(t.name)
    if name not in _G:
        def stub(w: Any, node: Any, path: str, _t: TypeRule = t) -> None:
            compile_type(_t)(w, node, path)
        _G[name] = stub
    return name


class _Consts:
    """Objects the generated source refers to by name (passed to its factory)."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.values: list[Any] = []

    def add(self, value: Any, hint: str = "c") -> str:
        name = f"_{hint}{len(self.names)}"
        self.names.append(name)
        self.values.append(value)
        return name


def _fast_inline(f: Field, var: str, consts: _Consts) -> str | None:
    """The field's fast acceptance expression over `var`, its helpers registered as constants."""
    fast = f.fast
    expr = getattr(fast, "expr", None)
    if expr is None:
        return None
    env = fast.env  # type: ignore[union-attr]
    renamed = {k: consts.add(v, k.strip("_").lower()) for k, v in env.items() if not k.startswith("__")}
    expr = _ENV_NAMES.sub(lambda m: renamed[m.group(1)], expr)
    return re.sub(r"\bv\b", var, expr)


def _post(f: Field, item: str, path: str, consts: _Consts, ind: str) -> list[str]:
    """`Walker._post` for a Reference, Coding or CodeableConcept value, inlined."""
    if f.post == POST_REFERENCE:
        # `Walker.reference` for a urn:uuid: reference (the usual one inside a Bundle): it is
        # neither local nor Type/id, so it is only noted for resolution when the Bundle closes;
        # and for a `Type/id` reference already parsed once (`base.ref_parts`) naming a type
        # allowed here: no issue, only noted for resolution with its parts
        F = consts.add(f, "f")
        types = rules().resource_types
        ok = consts.add(types & f.targets if f.targets else types, "ok")
        parts = consts.add(base._REF_PARTS.get, "parts")
        return [
            f"{ind}_r = {item}.get('reference')",
            f"{ind}if type(_r) is str and _r[:9] == 'urn:uuid:':",
            f"{ind}    if w.scopes:",
            f"{ind}        _sc = w.scopes[-1]",
            f"{ind}        if _sc.kind != 'Parameters' or w.res is not _sc.owner:",
            f"{ind}            _sc.refs.append(({path}, _r, {F}, w.entry_url))",
            f"{ind}elif type(_r) is str and (_pt := {parts}(_r)) is not None and _pt[1] in {ok}:",
            f"{ind}    if w.scopes:",
            f"{ind}        _sc = w.scopes[-1]",
            f"{ind}        if _sc.kind != 'Parameters' or w.res is not _sc.owner:",
            f"{ind}            _sc.refs.append(({path}, _r, {F}, w.entry_url, _pt))",
            f"{ind}elif _r is not None:  # (no reference text: nothing to check)",
            f"{ind}    w.reference({item}, {F}, {path})",
        ]
    required = f.binding is not None and f.strength == "required"
    if f.post == POST_CODING:
        # `Walker.coding` when the system is known and has the code (or is external and already
        # reported): nothing to report, only the (system, code) to note
        out = [
            f"{ind}_s = {item}.get('system')",
            f"{ind}_c = {item}.get('code')",
            f"{ind}if type(_s) is str and type(_c) is str:",
            f"{ind}    w.seen_codes.add((_s, _c))",
            f"{ind}    _k = w.known_cs.get(_s, _UNSET)",
            f"{ind}    if _k is None:",
            f"{ind}        if _s not in w.external_seen:",
            f"{ind}            w.coding({item}, {path})",
            f"{ind}    elif _k is _UNSET or (_c if _k[0] else _c.lower()) not in _k[1]:",
            f"{ind}        w.coding({item}, {path})",
            f"{ind}else:",
            f"{ind}    w.coding({item}, {path})",
        ]
        if required:
            out.append(f"{ind}w.coding_binding([{item}], {f.binding!r}, {path}, is_concept=False)")
        return out
    if f.post == POST_CONCEPT and required:
        return [f"{ind}_cs = {item}.get('coding')",
                f"{ind}w.coding_binding(_cs if type(_cs) is list else [], {f.binding!r}, {path}, is_concept=True)"]
    return []


def _choice_test(t: TypeRule, g: str) -> str:
    """`has_choice(node, g)` after the key loop of the type's walker: a choice variant of `g`
    the type knows is in `choices` (its handler put `g` there), another known key of that shape
    is tested by name, and only when the loop met an unknown key (`odd`) are the keys scanned."""
    n = len(g)
    keys = [k for k, (_mode, f) in t.dispatch.items() if not (f.choice and f.name == g)]
    if t.kind == "resource":
        keys.append("resourceType")
    tests = [f"(choices is not None and {g!r} in choices)"]
    tests += [f"{k!r} in node" for k in keys if len(k) > n and k.startswith(g) and k[n].isupper()]
    tests.append(f"(odd and _HAS_CHOICE(node, {g!r}))")
    return " or ".join(tests)


def _invariants(invs: tuple, node: str, path: str, consts: _Consts, ind: str, t: TypeRule | None = None) -> list[str]:
    """`Walker.invariant` for each invariant: its guard (elements of which one must be present)
    and its acceptor (native.py) inlined, then the FHIRPath when neither settles it. With `t`:
    the invariants of the type itself, after its key loop (see `_choice_test`)."""
    out = []
    choice_names = rules().choice_names
    for inv in invs:
        name = consts.add(inv, "inv")
        body = [f"_FHIRPATH_INV(w, {name}, {node}, {path})"]
        accept = inv.accept
        if accept is not None:
            for k, v in accept.env.items():
                if not k.startswith("__"):
                    _G.setdefault(k, v)
            src = accept.src
            if t is not None:  # (`n` is the type's node here)
                src = _HAS_CHOICE_N.sub(lambda m: f"({_choice_test(t, m.group(1))})", src)
            body = [f"n = {node}", f"if type(n) is not dict or not ({src}):", "    " + body[0]]
        if inv.guard is not None:
            tests = []
            for g in inv.guard:
                tests += [f"{g!r} in {node}", f"{'_' + g!r} in {node}"]
                if g in choice_names:
                    tests.append(_choice_test(t, g) if t is not None else f"_HAS_CHOICE({node}, {g!r})")
            out.append(f"{ind}if type({node}) is not dict or {' or '.join(tests)}:")
            out += [f"{ind}    {line}" for line in body]
        else:
            out += [f"{ind}{line}" for line in body]
    return out


def _items(f: Field, consts: _Consts, ind: str) -> list[str]:
    """The head of a loop over the items `_it` of a list field, each with its path `p` (the first
    paths are ready-made suffixes); the loop body ends with `_i += 1`."""
    sfx = consts.add(tuple(f".{f.name}[{i}]" for i in range(_SUFFIXES)), "sfx")
    return [
        f"{ind}_i = 0",
        f"{ind}for _it in val:",
        f"{ind}    p = path + {sfx}[_i] if _i < {_SUFFIXES} else f'{{path}}.{f.name}[{{_i}}]'",
    ]


def _handler(t: TypeRule, key: str, mode: int, f: Field, T: str, consts: _Consts, ind: str) -> list[str]:
    """The code for one JSON key of the type (the body of the interpreter's mode branch)."""
    F = consts.add(f, "f")
    generic = [f"{ind}choices = _GENERIC(w, node, key, val, {F}, {T}, path, choices)"]
    too_many = []
    if f.max > 1:
        msg = f"{t.name}.{f.name}: max allowed = {f.max}, but found "
        too_many = [f"{ind}    if len(val) > {f.max}:",
                    f"{ind}        w.error(path + {'.' + f.name!r}, {msg!r} + str(len(val)), 'structure', 'cardinality')"]
    if mode == SINGLE_FAST:
        test = _fast_inline(f, "val", consts)
        if test is None:
            return [f"{ind}if not {F}.fast(val):", *["    " + line for line in generic]]
        return [f"{ind}if not {test}:", *["    " + line for line in generic]]
    if mode == LIST_FAST:
        test = _fast_inline(f, "_it", consts) or f"{F}.fast(_it)"
        return [
            f"{ind}if type(val) is list and val:",
            *too_many,
            f"{ind}    for _it in val:",
            f"{ind}        if _it is not None and not {test}:",
            f"{ind}            _SLOW_ITEMS(w, val, {F}, path)",
            f"{ind}            break",
            f"{ind}else:",
            *["    " + line for line in generic],
        ]
    if f.choice and f.max != 0:
        return _choice(f, F, T, consts, ind, generic)
    if f.kind == EXTENSION and f.is_list and not f.choice and f.max != 0:
        # `_generic` -> `value` -> `extension` for each item of a (modifier)extension array
        return [
            f"{ind}if type(val) is list and val:",
            *too_many,
            *_items(f, consts, ind + "    "),
            f"{ind}        w.extension(_it, p, modifier={f.name == 'modifierExtension'})",
            *_invariants(f.invariants, "_it", "p", consts, ind + "        "),
            f"{ind}        _i += 1",
            f"{ind}else:",
            *["    " + line for line in generic],
        ]
    if f.kind == RESOURCE and not f.is_list and f.max != 0 and not f.invariants:
        # `_generic` -> `value` -> `resource` for a resource in a Bundle entry or a parameter
        return [f"{ind}if type(val) is dict:",
                f"{ind}    w.resource(val, path + {'.' + f.name!r}, contained={f.name == 'contained'})",
                f"{ind}else:", *["    " + line for line in generic]]
    if f.type == "xhtml" and not f.is_list and f.max != 0 and not f.invariants and f.binding is None:
        # `_generic` -> `value` -> `primitive` for a narrative div that has no problem
        return [f"{ind}if not (type(val) is str and val != '' and not _NARRATIVE_PROBLEMS(val)):", *["    " + line for line in generic]]
    if mode in (SINGLE_COMPLEX, LIST_COMPLEX) and f.kind == COMPLEX:
        child = _child(f.tkey)
        if child is not None:
            if mode == SINGLE_COMPLEX:
                return [
                    f"{ind}if type(val) is dict:",
                    f"{ind}    p = path + {'.' + f.name!r}",
                    f"{ind}    {child}(w, val, p)",
                    *_post(f, "val", "p", consts, ind + "    "),
                    *_invariants(f.invariants, "val", "p", consts, ind + "    "),
                    f"{ind}else:",
                    *["    " + line for line in generic],
                ]
            return [
                f"{ind}if type(val) is list and val:",
                *too_many,
                *_items(f, consts, ind + "    "),
                f"{ind}        if type(_it) is dict:",
                f"{ind}            {child}(w, _it, p)",
                *_post(f, "_it", "p", consts, ind + "            "),
                *_invariants(f.invariants, "_it", "p", consts, ind + "            "),
                f"{ind}        else:",
                f"{ind}            w.value(_it, {F}, p)",
                f"{ind}        _i += 1",
                f"{ind}else:",
                *["    " + line for line in generic],
            ]
    return generic


def _choice(f: Field, F: str, T: str, consts: _Consts, ind: str, generic: list[str]) -> list[str]:
    """`_generic` for one type of a choice element (`valueString`...): the "only one type"
    bookkeeping, then the fast check or the child walker, else `Walker._choice_rest`."""
    name = f.name
    rest = [f"{ind}    _CHOICE_REST(w, val, {F}, {T}, path)"]
    body: list[str]
    test = _fast_inline(f, "val", consts) if not f.invariants else None
    if test is not None:
        body = [f"{ind}    if not {test}:", "    " + rest[0]]
    elif f.kind == COMPLEX and (child := _child(f.tkey)) is not None:
        p = f"path + {'.' + name + '.ofType(' + f.type + ')'!r}"
        body = [
            f"{ind}    if type(val) is dict:",
            f"{ind}        p = {p}",
            f"{ind}        {child}(w, val, p)",
            *_post(f, "val", "p", consts, ind + "        "),
            *_invariants(f.invariants, "val", "p", consts, ind + "        "),
            f"{ind}    else:",
            "    " + rest[0],
        ]
    else:
        body = rest
    return [
        f"{ind}if choices is not None and {name!r} in choices:",
        *["    " + line for line in generic],
        f"{ind}else:",
        f"{ind}    if choices is None:",
        f"{ind}        choices = {{{name!r}}}",
        f"{ind}    else:",
        f"{ind}        choices.add({name!r})",
        *body,
    ]


def _tree(handlers: list[list[str]], lo: int, hi: int, ind: str) -> list[str]:
    """A balanced if/else tree over the key index `c` choosing one handler."""
    if hi - lo == 1:
        body = [line for line in handlers[lo]]
        return [ind + line for line in body] or [ind + "pass"]
    mid = (lo + hi) // 2
    return [f"{ind}if c < {mid}:", *_tree(handlers, lo, mid, ind + "    "), f"{ind}else:", *_tree(handlers, mid, hi, ind + "    ")]


def _source(t: TypeRule, fname: str) -> tuple[str, list[Any]]:
    consts = _Consts()
    T = consts.add(t, "T")
    keys: list[str] = []
    handlers: list[list[str]] = []
    for key, (mode, f) in t.dispatch.items():
        keys.append(key)
        handlers.append(_handler(t, key, mode, f, T, consts, ""))
    if t.kind == "resource" and "resourceType" not in t.dispatch:
        keys.append("resourceType")
        handlers.append(["pass"])
    body: list[str] = [
        "if type(node) is not dict:",
        f"    return _GENERIC_OBJ(w, node, {T}, path)",
        "choices = None",
        "odd = False",  # an unknown key met (see `_choice_test`)
    ]
    if t.is_entry:
        body += ["entry_saved = w.entry_url", "fu = node.get('fullUrl')", "w.entry_url = fu if isinstance(fu, str) else None"]
    body.append("for key, val in node.items():")
    if len(keys) <= _CHAIN_MAX:
        # a few keys: compare them in turn, the type's own elements before id and extensions
        order = sorted(range(len(keys)), key=lambda i: (keys[i] in _RARE_KEYS, i))
        for n, i in enumerate(order):
            body.append(f"    {'if' if n == 0 else 'elif'} key == {keys[i]!r}:")
            body += ["        " + line for line in handlers[i]] or ["        pass"]
        body += ["    else:" if order else "    if True:", f"        _ODD_KEY(w, node, key, val, {T}, path)", "        odd = True"]
    else:
        index = consts.add({k: i for i, k in enumerate(keys)}.get, "idx")
        body += [
            f"    c = {index}(key)",
            "    if c is None:",
            f"        _ODD_KEY(w, node, key, val, {T}, path)",
            "        odd = True",
            "        continue",
        ]
        body += _tree(handlers, 0, len(handlers), "    ")
    if t.is_entry:
        body.append("w.entry_url = entry_saved")
    if t.kind != "resource":
        body += ["if not node or (len(node) == 1 and 'id' in node):",
                 f"    w.error(path, {ELE_1!r}, 'invariant', 'ele-1')"]
    for name, mn, rkeys in t.required_keys:
        test = " or ".join(f"{k!r} in node" for k in rkeys) or "False"
        body.append(f"if {test}:")
        if mn > 1:
            body.append(f"    _COUNT_MIN(w, node, {rkeys!r}, {name!r}, {mn}, {T}, path)")
        else:
            body.append("    pass")
        msg = f"{t.name}.{name}: minimum required = {mn}, but only found 0"
        body += ["else:", f"    w.error(path, {msg!r}, 'required', 'cardinality')"]
    if t.hook is not None:
        body.append(f"{consts.add(t.hook, 'hook')}(w, node, path)")
    body += _invariants(t.invariants, "node", "path", consts, "", t)
    src = [f"def make({', '.join(consts.names)}):", f"    def {fname}(w, node, path):"]
    src += ["        " + line for line in body]
    src.append(f"    return {fname}")
    return "\n".join(src) + "\n", consts.values
