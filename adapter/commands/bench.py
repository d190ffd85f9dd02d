"""`carebridge bench [NAME...]`: run the benchmarks in benchmarks/ (each `NAME_bench.py` with `main(argv)`).

Without names every benchmark runs. Options after `--` go to the benchmarks, e.g.
`carebridge bench gateway -- --resources 5000`.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys

from adapter.standin import REPO_ROOT

BENCH_DIR = REPO_ROOT / "benchmarks"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="*", metavar="NAME", help="benchmarks to run (default: all), e.g. gateway")
    parser.add_argument("bench_args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)


def available() -> dict[str, str]:
    """Benchmark name -> file, from benchmarks/*_bench.py."""
    return {p.name.removesuffix("_bench.py"): str(p) for p in sorted(BENCH_DIR.glob("*_bench.py"))}


def run(args: argparse.Namespace) -> int:
    found = available()
    words = [a for a in [*args.names, *args.bench_args] if a != "--"]
    names: list[str] = []
    while words and not words[0].startswith("-") and (words[0] in found or not names):
        names.append(words.pop(0))  # leading words are benchmark names; the rest are their options
    extra = words
    unknown = [n for n in names if n not in found]
    if unknown or not found:
        print(f"carebridge bench: unknown {', '.join(unknown) or 'benchmarks'}; available: {', '.join(found) or 'none'}",
              file=sys.stderr)
        return 2
    worst = 0
    for name in names or list(found):
        spec = importlib.util.spec_from_file_location(f"benchmarks.{name}_bench", found[name])
        module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        spec.loader.exec_module(module)  # type: ignore[union-attr]
        print(f"== benchmark {name} ==", flush=True)
        worst = max(worst, int(module.main(extra) or 0))
    return worst
