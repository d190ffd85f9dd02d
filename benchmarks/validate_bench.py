"""Validation speed: `carebridge validate` (warm, batch) against fhir.resources R4B parsing and FHIR.js.

    .venv/bin/python benchmarks/validate_bench.py [--seconds 2] [--rounds 3] [--json out.json]

Inputs, all validated by every contender in the same run:
- `examples`: the official R4 examples of CarePlan, Goal, Task, ServiceRequest and Patient;
- `bundles10`: ten-entry collection Bundles made of the official examples of the 19 exchanged types;
- `flows`: the transaction/message Bundles the mappings produce from every fixture.

Throughput is items per CPU second of the measuring process (best of `--rounds`), so other load on
the machine disturbs it less than wall-clock time would; wall-clock rates are printed too.
FHIR.js (npm `fhir@4.12.0`, `errorOnUnexpected`) runs when node and npm are available: it is
installed into `.cache/fhirjs/` on first use. The run also reports coverage: payloads of the
negative corpus that a contender rejects but carebridge accepts (should be none).
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
const fs = require('fs');
const Fhir = require('fhir').Fhir;
const fhir = new Fhir();
const [inputs, seconds, rounds] = [JSON.parse(fs.readFileSync(process.argv[2], 'utf8')), +process.argv[3], +process.argv[4]];
const out = {};
for (const [name, items] of Object.entries(inputs)) {
  for (const r of items) fhir.validate(r, {errorOnUnexpected: true});
  let best = 0, bestWall = 0;
  for (let k = 0; k < rounds; k++) {
    let n = 0; const c0 = process.cpuUsage(); const t0 = process.hrtime.bigint();
    for (;;) {
      for (const r of items) fhir.validate(r, {errorOnUnexpected: true});
      n += items.length;
      const c = process.cpuUsage(c0);
      if ((c.user + c.system) / 1e6 >= seconds) {
        const cpu = (c.user + c.system) / 1e6, wall = Number(process.hrtime.bigint() - t0) / 1e9;
        best = Math.max(best, n / cpu); bestWall = Math.max(bestWall, n / wall); break;
      }
    }
  }
  out[name] = {cpu: best, wall: bestWall};
}
if (process.argv[5]) {
  const verdicts = JSON.parse(fs.readFileSync(process.argv[5], 'utf8')).map(r => !fhir.validate(r, {errorOnUnexpected: true}).valid);
  out.negative = verdicts;
}
console.log(JSON.stringify(out));
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


def measure(fn: Callable[[Any], Any], items: list, seconds: float, rounds: int) -> dict[str, float]:
    """Best items/s over `rounds` runs of at least `seconds` CPU seconds each (after one warm pass)."""
    for x in items:
        fn(x)
    best_cpu = best_wall = 0.0
    for _ in range(rounds):
        n, c0, t0 = 0, time.process_time(), time.perf_counter()
        while True:
            for x in items:
                fn(x)
            n += len(items)
            cpu = time.process_time() - c0
            if cpu >= seconds:
                break
        best_cpu = max(best_cpu, n / cpu)
        best_wall = max(best_wall, n / (time.perf_counter() - t0))
    return {"cpu": best_cpu, "wall": best_wall}


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


def fhirjs(inputs: dict[str, list[dict]], seconds: float, rounds: int, negatives: list[dict]) -> dict | None:
    """FHIR.js throughput (and verdicts on the negative corpus), or None when node/npm are missing."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        return None
    if not (FHIRJS_DIR / "node_modules" / "fhir").is_dir():
        FHIRJS_DIR.mkdir(parents=True, exist_ok=True)
        if not (FHIRJS_DIR / "package.json").exists():
            (FHIRJS_DIR / "package.json").write_text('{"name": "fhirjs-bench", "private": true}\n')
        done = subprocess.run([npm, "install", "fhir@4.12.0", "--no-audit", "--no-fund", "--silent"], cwd=FHIRJS_DIR, capture_output=True, text=True)
        if done.returncode != 0:
            print("FHIR.js not installed:", done.stderr.strip()[-200:], file=sys.stderr)
            return None
    with tempfile.TemporaryDirectory() as tmp:
        data, neg, script = Path(tmp, "in.json"), Path(tmp, "neg.json"), Path(tmp, "bench.js")
        data.write_text(json.dumps(inputs))
        neg.write_text(json.dumps(negatives))
        script.write_text(NODE_BENCH)
        env = {**os.environ, "NODE_PATH": str(FHIRJS_DIR / "node_modules")}
        done = subprocess.run([node, str(script), str(data), str(seconds), str(rounds), str(neg)], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        print("FHIR.js run failed:", done.stderr.strip()[-300:], file=sys.stderr)
        return None
    return json.loads(done.stdout)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=2.0, help="CPU seconds per measurement round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--no-fhirjs", action="store_true")
    args = ap.parse_args(argv)

    from adapter.compliance import has_errors, validate

    inputs = load_inputs()
    corpus = [json.loads(Path(p).read_text("utf-8")) for p in sorted(glob.glob(str(REPO / "tests" / "compliance" / "negative" / "*.json")))]
    negatives = [c["resource"] for c in corpus]
    results: dict[str, Any] = {"python": sys.version.split()[0], "inputs": {k: len(v) for k, v in inputs.items()}, "rates": {}}
    for name, items in inputs.items():
        results["rates"][name] = {
            "carebridge": measure(validate, items, args.seconds, args.rounds),
            "fhir.resources R4B parse": measure(r4b_rejects, items, args.seconds, args.rounds),
        }
    js = None if args.no_fhirjs else fhirjs(inputs, args.seconds, args.rounds, negatives)
    if js:
        for name in inputs:
            results["rates"][name]["FHIR.js 4.12.0"] = js[name]

    ours = [has_errors(validate(c["resource"], c.get("profile"), context=case_context(c))) for c in corpus]
    missed = {"fhir.resources R4B": [c["title"] for c, rej, mine in zip(corpus, map(r4b_rejects, negatives), ours) if rej and not mine]}
    if js:
        missed["FHIR.js"] = [c["title"] for c, rej, mine in zip(corpus, js["negative"], ours) if rej and not mine]
    caught = {"carebridge": sum(ours), "fhir.resources R4B": sum(map(r4b_rejects, negatives))}
    if js:
        caught["FHIR.js"] = sum(js["negative"])
    results["negative_corpus"] = {"size": len(corpus), "rejected": caught, "rejected_by_other_but_not_carebridge": missed}

    print(f"Python {results['python']}; inputs: " + ", ".join(f"{k} {v}" for k, v in results["inputs"].items()))
    print(f"{'input':<10} {'contender':<26} {'items/CPU s':>12} {'items/s wall':>13} {'carebridge ×':>13}")
    for name, rates in results["rates"].items():
        base = rates["carebridge"]["cpu"]
        for who, r in rates.items():
            print(f"{name:<10} {who:<26} {r['cpu']:>12.0f} {r['wall']:>13.0f} {base / r['cpu']:>13.2f}")
    print("negative corpus:", json.dumps(results["negative_corpus"], ensure_ascii=False))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
