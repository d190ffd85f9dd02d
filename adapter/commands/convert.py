"""`carebridge convert INPUT... [--to fhir|json|xml|riv] [-o FILE|DIR] [--jobs N]`.

The input format is detected. One input writes to stdout or `-o FILE`; many inputs with a
folder as `-o` is batch mode (one output per input, named after it). A file that cannot be
converted gets a one-line error on stderr naming it and the problem, is not written, and
the command exits 2 once every other file is done. In batch mode `--jobs N` converts in N
worker processes (same outputs, same error lines in input order, same exit status).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="canonical JSON, municipal XML, RIV-TA XML or FHIR Bundle JSON")
    parser.add_argument("--to", choices=("fhir", "json", "xml", "riv"), default="fhir", help="output format (default: fhir)")
    parser.add_argument("-o", "--output", metavar="FILE|DIR", help="output file, or folder for batch mode (default: stdout)")
    parser.add_argument("-j", "--jobs", type=int, default=1, metavar="N",
                        help="batch mode: convert in N worker processes (default 1; 0: one per CPU)")


def run(args: argparse.Namespace) -> int:
    from adapter import conversion

    out = Path(args.output) if args.output else None
    batch = out is not None and (out.is_dir() or len(args.inputs) > 1)
    if batch:
        out.mkdir(parents=True, exist_ok=True)  # type: ignore[union-attr]
    names = _output_names(args.inputs, conversion.SUFFIX[args.to])
    jobs = getattr(args, "jobs", 1)
    jobs = (os.cpu_count() or 1) if jobs == 0 else jobs
    if batch and jobs > 1 and len(args.inputs) > 1:
        return _run_parallel(args.inputs, args.to, out, names, jobs)  # type: ignore[arg-type]
    # each output's path worked out once, written with the built-in open (no pathlib work per file)
    targets = {source: os.path.join(out, name) for source, name in names.items()} if batch else {}
    failures = 0
    for source in args.inputs:
        try:
            data = Path(source).read_bytes()
        except OSError as exc:
            failures += _fail(source, f"cannot read: {exc.strerror or exc}")
            continue
        try:
            result = conversion.convert(data, args.to)
        except conversion.ConversionError as exc:
            folder = out if batch else (out.parent if out is not None else None)
            kept = _keep_outcome(source, exc.outcome, folder) if exc.outcome else ""
            failures += _fail(source, str(exc) + kept)
            continue
        if batch:
            _write(targets[source], result)
        elif out is not None:
            out.write_bytes(result)
        else:
            sys.stdout.buffer.write(result)
            sys.stdout.flush()
    return 2 if failures else 0


def _convert_chunk(chunk: list[tuple[str, str]], to: str) -> list[tuple[str, str, dict | None]]:
    """Convert (source, output path) pairs, writing each output; (source, problem, outcome) of failures."""
    from adapter import conversion

    failed: list[tuple[str, str, dict | None]] = []
    for source, target in chunk:
        try:
            data = Path(source).read_bytes()
        except OSError as exc:
            failed.append((source, f"cannot read: {exc.strerror or exc}", None))
            continue
        try:
            result = conversion.convert(data, to)  # type: ignore[arg-type]
        except conversion.ConversionError as exc:
            failed.append((source, str(exc), exc.outcome))
            continue
        _write(target, result)
    return failed


def _write(path: str, data: bytes) -> None:
    """Write one output file whole."""
    with open(path, "wb") as fh:
        fh.write(data)


def _run_parallel(inputs: list[str], to: str, out: Path, names: dict[str, str], jobs: int) -> int:
    """Batch mode over `jobs` processes: contiguous chunks of the inputs, outputs written by the
    workers; the one-line errors are printed afterwards in input order, as the serial loop would."""
    import multiprocessing

    pairs = [(source, str(out / names[source])) for source in inputs]
    # the first input here: the rules, schemas and generated checkers it needs are then built
    # once, before the workers are forked (they inherit them)
    results = [_convert_chunk(pairs[:1], to)]
    rest = pairs[1:]
    size = max(1, -(-len(rest) // (jobs * 4)))  # a few chunks per worker, for balance
    chunks = [rest[i : i + size] for i in range(0, len(rest), size)]
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    with multiprocessing.get_context(method).Pool(min(jobs, len(chunks))) as pool:
        results += pool.starmap(_convert_chunk, [(chunk, to) for chunk in chunks])
    failures = 0
    for failed in results:
        for source, problem, outcome in failed:
            kept = _keep_outcome(source, outcome, out) if outcome else ""
            failures += _fail(source, problem + kept)
    return 2 if failures else 0


def _keep_outcome(source: str, outcome: dict, folder: Path | None) -> str:
    """Keep a refused payload's OperationOutcome with the outputs (-o folder or file's folder, else the
    current directory, never beside the input); say where."""
    from adapter.conversion import dump_json

    target = (folder or Path.cwd()) / (Path(source).name + ".outcome.json")
    try:
        target.write_bytes(dump_json(outcome))
    except OSError:
        return ""
    return f" (OperationOutcome kept in {target})"


def _fail(source: str, problem: str) -> int:
    print(f"carebridge convert: {source}: {problem}", file=sys.stderr)
    return 1


def _output_names(inputs: list[str], suffix: str) -> dict[str, str]:
    """Output file name per input: its stem plus the target suffix, made unique if stems collide."""
    names: dict[str, str] = {}
    taken: set[str] = set()
    for source in inputs:
        stem = Path(source).name
        for ext in (".fhir.json", ".riv.xml", ".json", ".xml"):
            if stem.endswith(ext):
                stem = stem[: -len(ext)]
                break
        name, n = stem + suffix, 2
        while name in taken:
            name, n = f"{stem}-{n}{suffix}", n + 1
        taken.add(name)
        names[source] = name
    return names
