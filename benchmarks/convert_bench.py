"""Convert speed: batch `carebridge convert` of municipal and RIV documents to validated FHIR, against
merely parsing the produced Bundles with fhir.resources (R4B), in the same run.

    carebridge bench convert -- [--documents 2000] [--rounds 3] [--jobs 2] [--json out.json]
    .venv/bin/python benchmarks/convert_bench.py [--documents 2000] [--rounds 3]

Inputs (generated into a temporary folder, `--documents` in all, a third of each kind):
- `municipal`: municipal XML decisions (`<decision>`), made from `fixtures/decision/*.json` with
  fresh decision ids, case numbers, consent ids and valid personnummer (`with_check_digit`);
- `riv-services`: RIV-TA GetCareServicesResponse documents from `fixtures/riv/`, with fresh
  documentIds and persons;
- `riv-plans`: RIV-TA GetCarePlansResponse documents from `fixtures/riv/`, likewise.

Measured, per kind and for all documents together:
- carebridge: the batch path of `carebridge convert FILE... -o DIR` (`adapter.commands.convert.run`,
  in this process, warm: one small batch first): read each file, detect, read, map, validate
  (fail closed), write the FHIR JSON file;
- fhir.resources R4B: `Bundle.model_validate(bundle)` of every produced Bundle (the JSON already
  loaded, so only the model parse is timed).

Both are CPU seconds of this process (best of `--rounds`, the rounds interleaving the two
contenders); wall-clock figures are printed too. Files go to `--dir` (default
`.cache/convert-bench/`, on the repository's disk; a temporary folder is made and removed).
With `--jobs N` (N > 1) the batch is also run as `carebridge convert --jobs N` (N worker processes),
timed by wall clock only, as that is what parallelism changes. `--cli` also times the real command
in a fresh process (cold: interpreter start and imports included).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

KINDS = ("municipal", "riv-services", "riv-plans")
RIV_CORE = "urn:riv:clinicalprocess:logistics:logistics:3"


def personnummer(rng: random.Random, samordning: bool = False) -> str:
    from mappings.identifiers import with_check_digit

    year, month, day = rng.randint(1925, 1999), rng.randint(1, 12), rng.randint(1, 28)
    return with_check_digit(f"{year}{month:02d}{day + (60 if samordning else 0):02d}{rng.randint(0, 999):03d}")


def municipal_documents(n: int, rng: random.Random) -> list[bytes]:
    """`n` municipal XML decisions made from the decision fixtures in turn (fresh ids and persons)."""
    from mappings import municipal_xml
    from mappings.models import model_for

    templates = [json.loads(p.read_text("utf-8")) for p in sorted((REPO / "fixtures" / "decision").glob("*.json"))]
    given = ["Astrid", "Karl", "Maj", "Sven", "Ingrid", "Olof", "Birgitta", "Nils", "Gunnel", "Erik"]
    family = ["Berglund", "Ek", "Holmberg", "Lind", "Sjöberg", "Nyström", "Wallin", "Forsberg"]
    out = []
    for i in range(n):
        doc = copy.deepcopy(templates[i % len(templates)])
        doc["decision_id"] = f"BENCH-{i:06d}"
        if doc.get("case_number"):
            doc["case_number"] = f"SN-BENCH-{i:06d}"
        if doc.get("replaces"):
            doc["replaces"] = f"BENCH-{i:06d}-ORIG"
        person = doc["person"]
        person["personnummer"] = personnummer(rng, samordning=int(person["personnummer"][6:8]) > 60)
        if person.get("given_name"):
            person["given_name"] = rng.choice(given)
        if person.get("family_name"):
            person["family_name"] = rng.choice(family)
        if doc.get("samtycke"):
            doc["samtycke"]["consent_id"] = f"BENCH-{i:06d}-S1"
        out.append(municipal_xml.to_xml(model_for("decision").model_validate(doc)))
    return out


def riv_documents(n: int, rng: random.Random, fixture: str) -> list[bytes]:
    """`n` RIV-TA responses made from one fixture: fresh documentIds (per source system) and persons."""
    from lxml import etree

    template = etree.fromstring((REPO / "fixtures" / "riv" / fixture).read_bytes())
    out = []
    for i in range(n):
        root = copy.deepcopy(template)
        pnr = personnummer(rng)
        for doc_id in root.iter(f"{{{RIV_CORE}}}documentId"):
            doc_id.text = f"{doc_id.text}-B{i:06d}"
        for pid in root.iter(f"{{{RIV_CORE}}}patientId"):
            pid.find(f"{{{RIV_CORE}}}id").text = pnr
        out.append(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))
    return out


def generate(total: int, folder: Path, seed: int = 0) -> dict[str, list[Path]]:
    """Write the documents (a third of `total` of each kind) into `folder`; paths per kind."""
    rng = random.Random(seed)
    per = max(1, total // len(KINDS))
    docs = {
        "municipal": municipal_documents(per, rng),
        "riv-services": riv_documents(per, rng, "GetCareServicesResponse-haninge-sigvard-ek.xml"),
        "riv-plans": riv_documents(per, rng, "GetCarePlansResponse-haninge-margit-holmberg.xml"),
    }
    paths: dict[str, list[Path]] = {}
    for kind, items in docs.items():
        sub = folder / kind
        sub.mkdir(parents=True, exist_ok=True)
        paths[kind] = []
        for i, data in enumerate(items):
            p = sub / f"{kind}-{i:06d}.xml"
            p.write_bytes(data)
            paths[kind].append(p)
    return paths


def run_convert(files: list[Path], out: Path, jobs: int | None = None) -> int:
    """The batch path of `carebridge convert FILE... -o DIR` in this process."""
    from adapter.commands import convert

    ns = argparse.Namespace(inputs=[str(p) for p in files], to="fhir", output=str(out))
    if jobs is not None:
        ns.jobs = jobs
    return convert.run(ns)


def timed(fn) -> tuple[float, float]:
    c0, t0 = time.process_time(), time.perf_counter()
    fn()
    return time.process_time() - c0, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--documents", type=int, default=2000, help="documents in all (a third of each kind)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=0, help="also time `convert --jobs N` (wall clock)")
    ap.add_argument("--cli", action="store_true", help="also time the real command in a fresh process (cold)")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--dir", type=Path, default=REPO / ".cache" / "convert-bench",
                    help="where the inputs and outputs are written (default .cache/convert-bench)")
    args = ap.parse_args(argv)

    from fhir.resources.R4B.bundle import Bundle

    args.dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="run-", dir=args.dir))
    try:
        paths = generate(args.documents, tmp / "in")
        everything = [p for kind in KINDS for p in paths[kind]]
        # warm: imports, compiled rules and schemas, on a small batch of each kind
        warm = [p for kind in KINDS for p in paths[kind][:5]]
        if run_convert(warm, tmp / "warm") != 0:
            print("convert failed on the warm-up batch", file=sys.stderr)
            return 1
        results: dict[str, Any] = {"python": sys.version.split()[0], "documents": {k: len(v) for k, v in paths.items()}, "rates": {}}
        sets = {**{k: paths[k] for k in KINDS}, "all": everything}
        rounds: dict[str, dict[str, list[tuple[float, float]]]] = {name: {"convert": [], "r4b": []} for name in sets}
        bundles: dict[str, list[dict]] = {}
        # rounds interleave the contenders, so that each sees the same machine load
        for _ in range(args.rounds):
            for name, files in sets.items():
                out = tmp / "out" / name
                shutil.rmtree(out, ignore_errors=True)
                status = 0

                def go() -> None:
                    nonlocal status
                    status = run_convert(files, out)

                rounds[name]["convert"].append(timed(go))
                if status != 0 or len(list(out.iterdir())) != len(files):
                    print(f"convert failed for {name} (status {status})", file=sys.stderr)
                    return 1
                if name not in bundles:
                    bundles[name] = [json.loads(p.read_bytes()) for p in sorted(out.iterdir())]
                todo = bundles[name]
                rounds[name]["r4b"].append(timed(lambda: [Bundle.model_validate(b) for b in todo]))
        for name, files in sets.items():
            n = len(files)
            conv, r4b = rounds[name]["convert"], rounds[name]["r4b"]
            results["rates"][name] = {
                "documents": n,
                "entries_per_bundle": round(sum(len(b.get("entry", ())) for b in bundles[name]) / n, 1),
                "carebridge convert": {"cpu": n / min(c for c, _ in conv), "wall": n / min(w for _, w in conv)},
                "fhir.resources R4B parse": {"cpu": n / min(c for c, _ in r4b), "wall": n / min(w for _, w in r4b)},
            }
        if args.jobs and args.jobs > 1:
            out = tmp / "out" / "jobs"
            best = None
            for _ in range(args.rounds):
                shutil.rmtree(out, ignore_errors=True)
                _, wall = timed(lambda: run_convert(everything, out, jobs=args.jobs))
                best = wall if best is None else min(best, wall)
            results["jobs"] = {"jobs": args.jobs, "documents": len(everything), "wall": len(everything) / best}
        if args.cli:
            out = tmp / "out" / "cli"
            cmd = [sys.executable, "-m", "adapter.cli", "convert", *map(str, everything), "-o", str(out)]
            best = None
            for _ in range(args.rounds):
                shutil.rmtree(out, ignore_errors=True)
                t0 = time.perf_counter()
                done = subprocess.run(cmd, cwd=REPO, capture_output=True, env={**os.environ, "PYTHONPATH": str(REPO)})
                wall = time.perf_counter() - t0
                if done.returncode != 0:
                    print("CLI run failed:", done.stderr.decode()[-300:], file=sys.stderr)
                    return 1
                best = wall if best is None else min(best, wall)
            results["cli"] = {"documents": len(everything), "wall": len(everything) / best}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    try:
        load = os.getloadavg()[0]
    except OSError:
        load = float("nan")
    results["load_average_1min_after"] = round(load, 2)
    print(f"Python {results['python']}; documents: " + ", ".join(f"{k} {v}" for k, v in results["documents"].items()))
    print(f"{'input':<13} {'contender':<26} {'docs/CPU s':>11} {'docs/s wall':>12} {'carebridge ×':>13}")
    for name, r in results["rates"].items():
        base = r["carebridge convert"]["cpu"]
        for who in ("carebridge convert", "fhir.resources R4B parse"):
            x = r[who]
            print(f"{name:<13} {who:<26} {x['cpu']:>11.0f} {x['wall']:>12.0f} {base / x['cpu']:>13.2f}")
    if "jobs" in results:
        j = results["jobs"]
        print(f"all           carebridge convert --jobs {j['jobs']:<2}        (wall) {j['wall']:>12.0f}")
    if "cli" in results:
        print(f"all           carebridge convert CLI, cold   (wall) {results['cli']['wall']:>12.0f}")
    print(f"load average (1 min) after the run: {results['load_average_1min_after']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
