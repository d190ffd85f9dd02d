"""`carebridge validate FILE... [--profile URL]`: check FHIR payloads, one JSON line per file.

Each line is `{"file": <path as given>, "valid": true|false, "outcome": <OperationOutcome>}`.
Exit 0 when every file is valid, 1 when any is invalid, 2 when any cannot be read or parsed
as JSON (that file still gets its line, and a one-line error goes to stderr).
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of the validate subcommand."""
    parser.add_argument("files", nargs="+", metavar="FILE", help="FHIR R4 JSON resource or Bundle")
    parser.add_argument("--profile", metavar="URL", help="also check against this carebridge profile (canonical URL)")


def _unreadable(name: str, problem: str) -> dict:
    from adapter.compliance.outcome import issue, outcome

    return outcome([issue("fatal", "structure", "", f"cannot read {name}: {problem}", "json-shape")])


def run(args: argparse.Namespace) -> int:
    """Validate each file and print its verdict line; returns the exit status."""
    import json
    import sys

    from adapter.compliance import has_errors, validate

    unreadable = invalid = False
    for name in args.files:
        try:
            with open(name, encoding="utf-8-sig") as fh:
                doc = json.load(fh)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            problem = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            print(f"carebridge validate: {name}: {problem}", file=sys.stderr)
            print(json.dumps({"file": name, "valid": False, "outcome": _unreadable(name, problem)}, ensure_ascii=False))
            unreadable = True
            continue
        outcome = validate(doc, args.profile)
        valid = not has_errors(outcome)
        invalid = invalid or not valid
        print(json.dumps({"file": name, "valid": valid, "outcome": outcome}, ensure_ascii=False))
    sys.stdout.flush()
    return 2 if unreadable else 1 if invalid else 0
