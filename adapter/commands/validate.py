"""`carebridge validate FILE... [--profile URL] [--jobs N]`: check FHIR payloads, one JSON line per file.

Each line is `{"file": <path as given>, "valid": true|false, "outcome": <OperationOutcome>}`.
Exit 0 when every file is valid, 1 when any is invalid, 2 when any cannot be read or parsed
as JSON (that file still gets its line, and a one-line error goes to stderr). With `--jobs N`
the files are validated in N worker processes; the lines come out in the same order.
"""

from __future__ import annotations

import argparse

UNREADABLE, INVALID, VALID = 2, 1, 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of the validate subcommand."""
    parser.add_argument("files", nargs="+", metavar="FILE", help="FHIR R4 JSON resource or Bundle")
    parser.add_argument("--profile", metavar="URL", help="also check against this carebridge profile (canonical URL)")
    parser.add_argument("-j", "--jobs", type=int, default=1, metavar="N",
                        help="validate in N worker processes (default 1; 0: one per CPU)")


def _unreadable(name: str, problem: str) -> dict:
    from adapter.compliance.outcome import issue, outcome

    return outcome([issue("fatal", "structure", "", f"cannot read {name}: {problem}", "json-shape")])


def _check(names: list[str], profile: str | None) -> list[tuple[str, str | None, int]]:
    """(verdict line, stderr line or None, status) of each file, in order."""
    import json

    from adapter.compliance import has_errors, validate

    done: list[tuple[str, str | None, int]] = []
    for name in names:
        try:
            with open(name, encoding="utf-8-sig") as fh:
                doc = json.load(fh)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            problem = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            line = json.dumps({"file": name, "valid": False, "outcome": _unreadable(name, problem)}, ensure_ascii=False)
            done.append((line, f"carebridge validate: {name}: {problem}", UNREADABLE))
            continue
        outcome = validate(doc, profile)
        valid = not has_errors(outcome)
        done.append((json.dumps({"file": name, "valid": valid, "outcome": outcome}, ensure_ascii=False), None, VALID if valid else INVALID))
    return done


def run(args: argparse.Namespace) -> int:
    """Validate each file and print its verdict line; returns the exit status."""
    import os
    import sys

    jobs = getattr(args, "jobs", 1)
    jobs = (os.cpu_count() or 1) if jobs == 0 else jobs
    unreadable = invalid = False
    if jobs > 1 and len(args.files) > 1:
        results = _parallel(args.files, args.profile, jobs)
    else:
        results = ([item] for item in _each(args.files, args.profile))
    for batch in results:
        for line, err, status in batch:
            if err is not None:
                print(err, file=sys.stderr)
            print(line)
            unreadable = unreadable or status == UNREADABLE
            invalid = invalid or status == INVALID
    sys.stdout.flush()
    return 2 if unreadable else 1 if invalid else 0


def _each(names: list[str], profile: str | None):
    for name in names:
        yield from _check([name], profile)


def _parallel(names: list[str], profile: str | None, jobs: int) -> list[list[tuple[str, str | None, int]]]:
    """`_check` over contiguous chunks of the files in `jobs` processes, results in file order."""
    import multiprocessing

    # the first file here: what it needs (rules, generated checkers) is built once, before the
    # workers are forked (they inherit it)
    results = [_check(names[:1], profile)]
    rest = names[1:]
    size = max(1, -(-len(rest) // (jobs * 4)))
    chunks = [rest[i : i + size] for i in range(0, len(rest), size)]
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    with multiprocessing.get_context(method).Pool(min(jobs, len(chunks))) as pool:
        return results + pool.starmap(_check, [(chunk, profile) for chunk in chunks])
