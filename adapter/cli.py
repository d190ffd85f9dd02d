"""The `carebridge` command line.

Each subcommand lives in its own module and is imported only when it runs, so
`carebridge --help` stays fast. A new command is one line in COMMANDS plus a module
exposing `add_arguments(parser)` and `run(args) -> int`.
"""

from __future__ import annotations

import argparse
import importlib
import sys

#: name -> (module, one-line help). Modules are imported lazily.
COMMANDS: dict[str, tuple[str, str]] = {
    "convert": ("adapter.commands.convert", "convert documents between canonical JSON, municipal XML, RIV-TA XML and FHIR"),
    "validate": ("adapter.commands.validate", "check FHIR payloads: base R4, carebridge profiles, Swedish rules"),
    "demo": ("adapter.commands.demo", "the main job on embedded defaults: convert, send, read back, summarise"),
    "send": ("adapter.commands.send", "convert, validate, enqueue and deliver documents to a regional FHIR server"),
    "worker": ("adapter.commands.worker", "deliver queued messages to a regional FHIR server (many may share one outbox)"),
    "outbox": ("adapter.commands.outbox", "list messages and dead letters; replay (optionally edited) or discard"),
    "bench": ("adapter.commands.bench", "run the benchmarks under benchmarks/ (e.g. `bench gateway`)"),
    "serve": ("adapter.commands.serve", "the API: submit documents, status, $validate, dead letters, audit log, inbound from the region"),
}


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    parser = argparse.ArgumentParser(
        prog="carebridge",
        description="FHIR R4 adapter between Swedish municipal social care and regional health care.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers = {}
    for name, (_module, help_text) in COMMANDS.items():
        subparsers[name] = sub.add_parser(name, help=help_text, description=help_text)
    return parser, subparsers


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser, subparsers = build_parser()
    # Only the chosen command's module is imported (and only it adds its arguments).
    command = next((a for a in argv if not a.startswith("-")), None)
    if command in COMMANDS:
        module = importlib.import_module(COMMANDS[command][0])
        module.add_arguments(subparsers[command])
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `carebridge validate ... | head`
        sys.stderr.close()
        return 141


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
