"""Validation speed: `carebridge validate` (warm, batch) against fhir.resources R4B parsing and FHIR.js.

    .venv/bin/python benchmarks/validate_bench.py [--seconds 2] [--rounds 3] [--json out.json]

Inputs, all validated by every contender in the same run:
- `examples`: the official R4 examples of CarePlan, Goal, Task, ServiceRequest and Patient;
- `bundles10`: ten-entry collection Bundles made of the official examples of the 19 exchanged types;
- `flows`: the transaction/message Bundles the mappings produce from every fixture.

Throughput is items per CPU second of the measuring process (best of `--rounds`), so other load on
the machine disturbs it less than wall-clock time would; wall-clock rates are printed too. The
rounds interleave the contenders (carebridge, R4B, FHIR.js, then again), so that a change in the
machine's load affects all of them alike. FHIR.js (npm `fhir@4.12.0`, `errorOnUnexpected`) runs
in a node process when node and npm are available: it is installed into `.cache/fhirjs/` on first
use. The run also reports coverage: payloads of the negative corpus that a contender rejects but
carebridge accepts (should be none).
"""

from __future__ import annotations

import argparse
import glob
import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

EXAMPLE_TYPES = ("CarePlan", "Goal", "Task", "ServiceRequest", "Patient")
EXCHANGED = (
    "CarePlan Goal Task ServiceRequest Patient Organization Practitioner PractitionerRole CareTeam Consent "
    "Provenance AuditEvent Encounter Communication MessageHeader Condition Observation RelatedPerson OperationOutcome"
).split()
FHIRJS_DIR = REPO / ".cache" / "fhirjs"

NODE_BENCH = r"""
// Serves measurement rounds on request, so that they interleave with the Python contenders'
// rounds (same machine load for both): each stdin line "NAME SECONDS" runs one round over the
// input set NAME (after one warm pass the first time) and answers one JSON line {cpu, wall}.
// "negative" answers the verdicts on the negative corpus.
const fs = require('fs');
const readline = require('readline');
const Fhir = require('fhir').Fhir;
const fhir = new Fhir();
const inputs = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const negatives = JSON.parse(fs.readFileSync(process.argv[3], 'utf8'));
const warmed = {};
const rl = readline.createInterface({input: process.stdin});
rl.on('line', (line) => {
  const [name, secs] = line.trim().split(' ');
  if (name === 'negative') {
    console.log(JSON.stringify(negatives.map(r => !fhir.validate(r, {errorOnUnexpected: true}).valid)));
    return;
  }
  const items = inputs[name], seconds = +secs;
  if (!warmed[name]) { for (const r of items) fhir.validate(r, {errorOnUnexpected: true}); warmed[name] = true; }
  let n = 0; const c0 = process.cpuUsage(); const t0 = process.hrtime.bigint();
  for (;;) {
    for (const r of items) fhir.validate(r, {errorOnUnexpected: true});
    n += items.length;
    const c = process.cpuUsage(c0);
    if ((c.user + c.system) / 1e6 >= seconds) {
      const cpu = (c.user + c.system) / 1e6, wall = Number(process.hrtime.bigint() - t0) / 1e9;
      console.log(JSON.stringify({cpu: n / cpu, wall: n / wall}));
      break;
    }
  }
});
"""


def load_inputs() -> dict[str, list[dict]]:
    """The three input sets (see the module docstring)."""
    from adapter.compliance.r4package import package_dir

    pkg = package_dir()
    examples, exchanged = [], []
    for path in sorted(pkg.glob("*.json")):
        prefix = path.name.split("-")[0]
        if prefix not in EXCHANGED:
            continue
        res = json.loads(path.read_text("utf-8"))
        if isinstance(res, dict) and res.get("resourceType") in EXCHANGED:
            exchanged.append(res)
            if res["resourceType"] in EXAMPLE_TYPES:
                examples.append(res)
    bundles10 = [
        {"resourceType": "Bundle", "type": "collection", "entry": [{"fullUrl": f"urn:uuid:00000000-0000-4000-8000-{i * 10 + j:012d}", "resource": r} for j, r in enumerate(exchanged[i * 10 : i * 10 + 10])]}
        for i in range(len(exchanged) // 10)
    ]
    return {"examples": examples, "bundles10": bundles10, "flows": flow_bundles()}


def flow_bundles() -> list[dict]:
    """The Bundles the mappings produce from every fixture document."""
    from mappings import flows

    out = []
    for kind, flow in flows.FLOWS.items():
        models = importlib.import_module("mappings.models." + kind.replace("-", "_"))
        classes = [getattr(models, n) for n in dir(models)]
        for path in sorted((REPO / "fixtures" / kind).glob("*.json")):
            raw = json.loads(path.read_text("utf-8"))
            cls = next(c for c in classes if isinstance(c, type) and hasattr(c, "model_fields") and "kind" in c.model_fields and c.model_fields["kind"].default == raw.get("kind"))
            out.append(flow.mapping().to_fhir(cls.model_validate(raw)))
    return out


def measure_round(fn: Callable[[Any], Any], items: list, seconds: float) -> dict[str, float]:
    """Items per CPU second (and per wall second) over one round of at least `seconds` CPU seconds."""
    n, c0, t0 = 0, time.process_time(), time.perf_counter()
    while True:
        for x in items:
            fn(x)
        n += len(items)
        cpu = time.process_time() - c0
        if cpu >= seconds:
            break
    return {"cpu": n / cpu, "wall": n / (time.perf_counter() - t0)}


def _worker(fn: Callable[[Any], Any], items: list, seconds: float, start: Any, done: Any) -> None:
    start.wait()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for x in items:
            fn(x)
        n += len(items)
    done.put(n)


def parallel(fn: Callable[[Any], Any], items: list, seconds: float, rounds: int, jobs: int) -> dict[str, float]:
    """Items per wall second of `jobs` forked processes running `fn` over `items` at once (best of
    `rounds`; the processes inherit the warm state). Not per CPU second: this is what parallelism changes."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    best_wall = 0.0
    for _ in range(rounds):
        start, done = ctx.Event(), ctx.Queue()
        procs = [ctx.Process(target=_worker, args=(fn, items, seconds, start, done)) for _ in range(jobs)]
        for p in procs:
            p.start()
        t0 = time.perf_counter()
        start.set()
        total = sum(done.get() for _ in procs)
        wall = time.perf_counter() - t0
        for p in procs:
            p.join()
        best_wall = max(best_wall, total / wall)
    return {"cpu": float("nan"), "wall": best_wall}


def best(rounds: list[dict[str, float]]) -> dict[str, float]:
    return {"cpu": max(r["cpu"] for r in rounds), "wall": max(r["wall"] for r in rounds)}


def case_context(case: dict) -> Any:
    """The ValidationContext a negative-corpus case asks for (None for the defaults)."""
    import datetime as dt

    from adapter.compliance import ValidationContext

    raw = dict(case.get("context") or {})
    if "today" in raw:
        raw["today"] = dt.date.fromisoformat(raw["today"])
    return ValidationContext(**raw) if raw else None


def r4b_parse(resource: dict) -> Any:
    """Parse (validate) a resource with the fhir.resources R4B model, as the tests do."""
    from fhir.resources.R4B import get_fhir_model_class

    return get_fhir_model_class(resource["resourceType"]).model_validate(resource)


def r4b_rejects(resource: dict) -> bool:
    try:
        r4b_parse(resource)
        return False
    except Exception:  # noqa: BLE001 - any parse failure is a rejection
        return True


class FhirJs:
    """FHIR.js in a node process that measures one round at a time on request (None if unavailable)."""

    def __init__(self, inputs: dict[str, list[dict]], negatives: list[dict]) -> None:
        self.proc: subprocess.Popen | None = None
        node, npm = shutil.which("node"), shutil.which("npm")
        if not node or not npm:
            return
        if not (FHIRJS_DIR / "node_modules" / "fhir").is_dir():
            FHIRJS_DIR.mkdir(parents=True, exist_ok=True)
            if not (FHIRJS_DIR / "package.json").exists():
                (FHIRJS_DIR / "package.json").write_text('{"name": "fhirjs-bench", "private": true}\n')
            done = subprocess.run([npm, "install", "fhir@4.12.0", "--no-audit", "--no-fund", "--silent"], cwd=FHIRJS_DIR, capture_output=True, text=True)
            if done.returncode != 0:
                print("FHIR.js not installed:", done.stderr.strip()[-200:], file=sys.stderr)
                return
        self.tmp = tempfile.TemporaryDirectory()
        data, neg, script = Path(self.tmp.name, "in.json"), Path(self.tmp.name, "neg.json"), Path(self.tmp.name, "bench.js")
        data.write_text(json.dumps(inputs))
        neg.write_text(json.dumps(negatives))
        script.write_text(NODE_BENCH)
        env = {**os.environ, "NODE_PATH": str(FHIRJS_DIR / "node_modules")}
        self.proc = subprocess.Popen([node, str(script), str(data), str(neg)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)

    def ask(self, line: str) -> Any:
        assert self.proc is not None and self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline()
        if not answer:
            raise RuntimeError("the FHIR.js process stopped")
        return json.loads(answer)

    def close(self) -> None:
        if self.proc is not None:
            self.proc.stdin.close()  # type: ignore[union-attr]
            self.proc.wait(timeout=30)
            self.tmp.cleanup()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=2.0, help="CPU seconds per measurement round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--no-fhirjs", action="store_true")
    ap.add_argument("--jobs", type=int, default=0,
                    help="also measure carebridge in N processes at once (items per wall second, all processes together)")
    args = ap.parse_args(argv)

    from adapter.compliance import has_errors, validate

    inputs = load_inputs()
    corpus = [json.loads(Path(p).read_text("utf-8")) for p in sorted(glob.glob(str(REPO / "tests" / "compliance" / "negative" / "*.json")))]
    negatives = [c["resource"] for c in corpus]
    results: dict[str, Any] = {"python": sys.version.split()[0], "inputs": {k: len(v) for k, v in inputs.items()}, "rates": {}}
    js = None if args.no_fhirjs else FhirJs(inputs, negatives)
    if js is not None and js.proc is None:
        js = None
    rounds: dict[str, dict[str, list]] = {name: {} for name in inputs}
    for items in inputs.values():  # warm: rules, generated walkers, compiled profile tests
        for x in items:
            validate(x)
            r4b_rejects(x)
    try:
        # rounds interleave the contenders, so that each sees the same machine load
        for _ in range(args.rounds):
            for name, items in inputs.items():
                rounds[name].setdefault("carebridge", []).append(measure_round(validate, items, args.seconds))
                rounds[name].setdefault("fhir.resources R4B parse", []).append(measure_round(r4b_rejects, items, args.seconds))
                if js is not None:
                    rounds[name].setdefault("FHIR.js 4.12.0", []).append(js.ask(f"{name} {args.seconds}"))
        js_negative = js.ask("negative") if js is not None else None
    finally:
        if js is not None:
            js.close()
    for name in inputs:
        results["rates"][name] = {who: best(r) for who, r in rounds[name].items()}
    if args.jobs > 1:
        for name, items in inputs.items():
            results["rates"][name][f"carebridge, {args.jobs} processes"] = parallel(validate, items, args.seconds, args.rounds, args.jobs)

    ours = [has_errors(validate(c["resource"], c.get("profile"), context=case_context(c))) for c in corpus]
    missed = {"fhir.resources R4B": [c["title"] for c, rej, mine in zip(corpus, map(r4b_rejects, negatives), ours) if rej and not mine]}
    if js_negative is not None:
        missed["FHIR.js"] = [c["title"] for c, rej, mine in zip(corpus, js_negative, ours) if rej and not mine]
    caught = {"carebridge": sum(ours), "fhir.resources R4B": sum(map(r4b_rejects, negatives))}
    if js_negative is not None:
        caught["FHIR.js"] = sum(js_negative)
    results["negative_corpus"] = {"size": len(corpus), "rejected": caught, "rejected_by_other_but_not_carebridge": missed}
    try:
        results["load_average_1min_after"] = round(os.getloadavg()[0], 2)
    except OSError:
        pass

    print(f"Python {results['python']}; inputs: " + ", ".join(f"{k} {v}" for k, v in results["inputs"].items()))
    print(f"{'input':<10} {'contender':<26} {'items/CPU s':>12} {'items/s wall':>13} {'carebridge ×':>13}")
    for name, rates in results["rates"].items():
        base = rates["carebridge"]["cpu"]
        for who, r in rates.items():
            if r["cpu"] != r["cpu"]:  # several processes: only the wall-clock rate means something
                js = rates.get("FHIR.js 4.12.0")
                versus = f"{r['wall'] / js['wall']:>13.2f}" if js else ""
                print(f"{name:<10} {who:<26} {'-':>12} {r['wall']:>13.0f} {versus}  (wall; ÷ FHIR.js wall)")
                continue
            print(f"{name:<10} {who:<26} {r['cpu']:>12.0f} {r['wall']:>13.0f} {base / r['cpu']:>13.2f}")
    print("negative corpus:", json.dumps(results["negative_corpus"], ensure_ascii=False))
    if "load_average_1min_after" in results:
        print(f"load average (1 min) after the run: {results['load_average_1min_after']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
