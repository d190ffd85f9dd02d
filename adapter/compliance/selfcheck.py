"""Checks that the fast paths change nothing: `python -m adapter.compliance.selfcheck [--mutants N]`.

The engine's speed comes from code generated or compiled from the rules (fastwalk.py,
profile_fast.py, native.py). Each fast path is meant to give exactly what the interpreter gives.
This compares the two on:

- every file of the R4 examples package (`hl7.fhir.r4.examples`, see r4package.py),
- the negative corpus (`tests/compliance/negative/*.json`, with each case's profile and context),
- seeded random mutants of both (`--mutants` per payload): deleted, nulled, emptied, wrapped,
  retyped or renamed elements, broken codes, references, dates and URLs, duplicated choices,
  `_element` companions,

and reports every payload whose OperationOutcome differs in any way (issues, order, text,
paths). It also checks every acceptor (native.py) that answered yes, in the walker and in the
compiled profile tests, against the FHIRPath it stands for. Exit status 1 on any difference.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import random
import sys
from typing import Any, Iterator

from adapter.compliance import engine, fhirpath, narrative
from adapter.compliance.base import ReferenceWalker
from adapter.compliance.context import ValidationContext
from adapter.compliance.r4package import REPO_ROOT, package_dir

NEGATIVE = REPO_ROOT / "tests" / "compliance" / "negative"


def payloads(mutants: int, seed: int) -> Iterator[tuple[str, Any, str | None, ValidationContext | None]]:
    """(name, payload, profile, context) of everything compared."""
    rng = random.Random(seed)
    for path in sorted(package_dir().glob("*.json")):
        try:
            res = json.loads(path.read_text("utf-8"))
        except ValueError:
            continue
        yield path.name, res, None, None
        if isinstance(res, dict) and res.get("resourceType") not in ("Bundle", "CodeSystem", "ValueSet", "StructureDefinition"):
            for k in range(mutants):
                yield f"{path.name}~{k}", mutate(res, rng), None, None
    for path in sorted(NEGATIVE.glob("*.json")):
        case = json.loads(path.read_text("utf-8"))
        ctx = _context(case.get("context"))
        yield path.name, case["resource"], case.get("profile"), ctx
        for k in range(mutants * 4):
            yield f"{path.name}~{k}", mutate(case["resource"], rng), case.get("profile"), ctx


def _context(raw: dict | None) -> ValidationContext | None:
    if not raw:
        return None
    raw = dict(raw)
    if "today" in raw:
        raw["today"] = dt.date.fromisoformat(raw["today"])
    for key in ("layers", "skip_rules"):
        if key in raw:
            raw[key] = frozenset(raw[key])
    if "extension_domains" in raw:
        raw["extension_domains"] = tuple(raw["extension_domains"])
    return ValidationContext(**raw)


def _places(node: Any, trail: tuple = ()) -> Iterator[tuple]:
    yield trail
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _places(v, trail + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _places(v, trail + (i,))


def mutate(payload: Any, rng: random.Random) -> Any:
    """A copy of `payload` with one to three random changes."""
    out = copy.deepcopy(payload)
    for _ in range(rng.randint(1, 3)):
        places = [p for p in _places(out) if p]
        if not places:
            break
        trail = rng.choice(places)
        parent = out
        for step in trail[:-1]:
            parent = parent[step]
        key = trail[-1]
        value = parent[key]
        change = rng.randrange(16)
        if change == 0:
            parent.pop(key)
        elif change == 1:
            parent[key] = None
        elif change == 2:
            parent[key] = "" if isinstance(value, str) else [] if isinstance(value, list) else {}
        elif change == 3:
            parent[key] = [value]
        elif change == 4 and isinstance(value, list) and value:
            parent[key] = value[0]
        elif change == 5:
            parent[key] = 12 if not isinstance(value, int) else -1
        elif change == 6 and isinstance(value, dict):
            value["fooBar"] = "x"
        elif change == 7 and isinstance(value, str):
            parent[key] = rng.choice(["zz-not-a-code", "2020-02-30", "2020-13-01T10:00:00Z", "http://example.org/x",
                                      "urn:uuid:ABC", value + " x\x01", value + " <b>x</b>", "urn:oid:1.2.3"])
        elif change == 8 and isinstance(value, dict) and "reference" in value:
            value["reference"] = rng.choice(["#nope", "Patient/nope", "urn:uuid:11111111-2222-4333-8444-555555555555", "Foo/1"])
        elif change == 9 and isinstance(parent, dict) and isinstance(key, str):
            parent["_" + key] = {"extension": [{"url": "http://example.org/x", "valueString": "y"}]}
        elif change == 10 and isinstance(value, dict):
            value["valueString"], value["valueBoolean"] = "a", True
        elif change == 11 and isinstance(value, dict) and "system" in value:
            value["code"] = "no-such-code"
        elif change == 12 and isinstance(value, list) and value:
            value.append(copy.deepcopy(value[0]))
        elif change == 13 and isinstance(value, bool):
            parent[key] = "true"
        elif change == 14 and isinstance(value, dict):
            value.pop(next(iter(value)), None) if value else None
        elif change == 15 and isinstance(value, str) and len(value) >= 10 and value[:4].isdigit():
            parent[key] = value[:8] + "31" + value[10:]
    return out


class _AcceptorCheck(ReferenceWalker):
    """The reference walker that also asks each acceptor, and records where it says yes wrongly."""

    wrong: list[tuple[str, str]] = []
    said_yes = 0

    def eval_invariant(self, inv: Any, node: Any, path: str) -> None:
        if inv.accept is not None and type(node) is dict and inv.accept(node):
            _AcceptorCheck.said_yes += 1
            env = fhirpath.Env(self.res, self.root, node, node, 0, self.resolve, narrative.html_ok)
            try:
                verdict = fhirpath.truth(inv.fn([node], env))
            except fhirpath.EvalError as exc:
                verdict = f"error: {exc}"
            if verdict is not True:
                _AcceptorCheck.wrong.append((inv.key, f"{path}: {verdict}"))
        self.fhirpath_invariant(inv, node, path)


class _ProfileAcceptorCheck:
    """Makes the compiled profile tests also evaluate every invariant an acceptor said yes to."""

    wrong: list[tuple[str, str]] = []
    said_yes = 0

    def __enter__(self) -> "_ProfileAcceptorCheck":
        from adapter.compliance import profile_fast
        from adapter.compliance.registry import registry

        self.module, self.original = profile_fast, profile_fast._invariant

        def checked(inv: Any) -> Any:
            fn, accept = inv.fn, inv.accept

            def holds(v: Any, cx: Any) -> bool:
                env = fhirpath.Env(cx.resource, cx.resource, v, v, 0, cx.resolver, narrative.html_ok)
                try:
                    verdict = fhirpath.truth(fn([v], env)) is True
                except fhirpath.EvalError:
                    verdict = False
                if accept is not None and type(v) is dict and accept(v):
                    _ProfileAcceptorCheck.said_yes += 1
                    if not verdict:
                        _ProfileAcceptorCheck.wrong.append((inv.key, json.dumps(v, ensure_ascii=False)[:200]))
                return verdict
            return holds

        profile_fast._invariant = checked
        self.profiles = list(registry().profiles.values())
        for p in self.profiles:
            p.conforms = None  # recompiled with the checking invariants
        return self

    def __exit__(self, *exc: Any) -> None:
        self.module._invariant = self.original
        for p in self.profiles:
            p.conforms = None


def _outcome(payload: Any, profile: str | None, ctx: ValidationContext | None, reference: bool) -> Any:
    """The OperationOutcome, or the exception a (malformed) payload raised: both must agree."""
    try:
        return engine.validate(payload, profile, context=ctx, reference=reference)
    except Exception as exc:  # noqa: BLE001 - compared, not hidden
        return {"exception": f"{type(exc).__name__}: {exc}"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mutants", type=int, default=2, help="random mutants per payload (default 2)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--show", type=int, default=5, help="differences to print")
    args = ap.parse_args(argv)

    compared = 0
    differ: list[tuple[str, dict, dict]] = []
    for name, payload, profile, ctx in payloads(args.mutants, args.seed):
        fast = _outcome(payload, profile, ctx, False)
        slow = _outcome(payload, profile, ctx, True)
        compared += 1
        if fast != slow:
            differ.append((name, fast, slow))
        walker = engine.ReferenceWalker
        engine.ReferenceWalker = _AcceptorCheck  # type: ignore[misc]
        try:
            _outcome(payload, profile, ctx, True)
        finally:
            engine.ReferenceWalker = walker  # type: ignore[misc]
    with _ProfileAcceptorCheck():
        for name, payload, profile, ctx in payloads(args.mutants, args.seed):
            _outcome(payload, profile, ctx, False)
    print(f"compared {compared} payloads: {len(differ)} differ; acceptors said yes {_AcceptorCheck.said_yes} times "
          f"({len(_AcceptorCheck.wrong)} wrongly), profile acceptors {_ProfileAcceptorCheck.said_yes} times "
          f"({len(_ProfileAcceptorCheck.wrong)} wrongly)")
    for name, fast, slow in differ[: args.show]:
        print(f"== {name}\n   fast: {json.dumps(fast, ensure_ascii=False)[:600]}\n   reference: {json.dumps(slow, ensure_ascii=False)[:600]}")
    for key, where in [*_AcceptorCheck.wrong, *_ProfileAcceptorCheck.wrong][: args.show]:
        print(f"== acceptor {key} at {where}")
    return 1 if differ or _AcceptorCheck.wrong or _ProfileAcceptorCheck.wrong else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
