"""`carebridge convert INPUT... [--to fhir|json|xml|riv] [-o FILE|DIR]`.

The input format is detected. One input writes to stdout or `-o FILE`; many inputs with a
folder as `-o` is batch mode (one output per input, named after it). A file that cannot be
converted gets a one-line error on stderr naming it and the problem, is not written, and
the command exits 2 once every other file is done.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="canonical JSON, municipal XML, RIV-TA XML or FHIR Bundle JSON")
    parser.add_argument("--to", choices=("fhir", "json", "xml", "riv"), default="fhir", help="output format (default: fhir)")
    parser.add_argument("-o", "--output", metavar="FILE|DIR", help="output file, or folder for batch mode (default: stdout)")


def run(args: argparse.Namespace) -> int:
    from adapter import conversion

    out = Path(args.output) if args.output else None
    batch = out is not None and (out.is_dir() or len(args.inputs) > 1)
    if batch:
        out.mkdir(parents=True, exist_ok=True)  # type: ignore[union-attr]
    names = _output_names(args.inputs, conversion.SUFFIX[args.to])
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
            (out / names[source]).write_bytes(result)  # type: ignore[operator]
        elif out is not None:
            out.write_bytes(result)
        else:
            sys.stdout.buffer.write(result)
            sys.stdout.flush()
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
