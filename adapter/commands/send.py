"""`carebridge send FILE... --server URL [--db URL]`: convert, validate, enqueue and deliver.

Every file is converted and validated as a transfer to the server's huvudman
(``--receiver-huvudman``, default region: a document another huvudman authored needs the
person's consent), then all are accepted into the outbox in one transaction (a file that fails
validation is kept there as rejected, with its OperationOutcome, and never queued), then
delivered in per-person order. Exit 0 when every file was delivered; 1 with a report when any
was rejected, dead-lettered or is still waiting for a retry (``carebridge worker`` continues it);
2 when nothing could start.
"""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from adapter.gateway.options import add_receiver_argument, add_server_arguments

    parser.add_argument("files", nargs="+", metavar="FILE",
                        help="documents in any format `convert` reads, or a FHIR resource (a versioned update)")
    add_server_arguments(parser)
    add_receiver_argument(parser)
    parser.add_argument("--no-deliver", action="store_true", help="only enqueue; leave delivery to `carebridge worker`")
    parser.add_argument("--quiet", "-q", action="store_true", help="print only problems")


class Progress:
    """A one-line progress bar on stderr, drawn only when stderr is a terminal."""

    def __init__(self, total: int, label: str) -> None:
        self.total, self.label, self.done = total, label, 0
        self.counts: dict[str, int] = {}
        self.enabled = sys.stderr.isatty() and total > 1
        self._lock = threading.Lock()

    def step(self, outcome: str | None = None) -> None:
        with self._lock:
            if outcome in (None, "delivered", "dead", "rejected"):
                self.done += 1
            if outcome:
                self.counts[outcome] = self.counts.get(outcome, 0) + 1
            if self.enabled:
                width = 30
                filled = int(width * self.done / max(1, self.total))
                extra = " ".join(f"{k} {v}" for k, v in sorted(self.counts.items()))
                sys.stderr.write(f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} {extra}\033[K")
                sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")
            sys.stderr.flush()


def run(args: argparse.Namespace) -> int:
    from adapter.gateway.options import configure_logging, open_gateway, open_outbox, receiver_huvudman

    configure_logging(args, "WARNING")
    huvudman = receiver_huvudman(args)
    if huvudman is None:
        return 2
    gateway = open_gateway(args)
    if gateway is None:
        return 2
    outbox = open_outbox(args)
    try:
        accepted = _accept_all(outbox, gateway.base_url, args.files, huvudman)
        queued = [a.message_id for _, a in accepted if a is not None and a.status == "pending"]
        if queued and not args.no_deliver:
            _deliver(outbox, gateway, queued, args.concurrency)
        return _report(outbox, accepted, args.quiet, delivered_expected=not args.no_deliver)
    finally:
        gateway.close()
        outbox.close()


def _accept_all(outbox, destination: str, files: list[str], huvudman: str):  # type: ignore[no-untyped-def]
    """Convert and validate every file (as a transfer to ``huvudman``), then accept them all in one
    transaction; unreadable files are reported."""
    from adapter.outbox.intake import prepare

    progress = Progress(len(files), "checking")
    prepared, names = [], []
    accepted: list = []
    for name in files:
        try:
            data = Path(name).read_bytes()
        except OSError as exc:
            print(f"carebridge send: {name}: cannot read: {exc.strerror or exc}", file=sys.stderr)
            accepted.append((name, None))
            continue
        p = prepare(data, receiver_huvudman=huvudman)
        prepared.append(p)
        names.append(name)
        accepted.append((name, p))
        progress.step("rejected" if not p.ok else None)
    progress.close()
    results = iter(outbox.enqueue_many(prepared, destination, sources=[Path(n).name for n in names]) if prepared else [])
    return [(name, next(results) if p is not None else None) for name, p in accepted]


def _deliver(outbox, gateway, ids: list[int], concurrency: int) -> None:  # type: ignore[no-untyped-def]
    import signal

    from adapter.outbox.worker import Worker

    progress = Progress(len(ids), "sending")
    worker = Worker(outbox, gateway, concurrency=concurrency, on_outcome=lambda m, o: progress.step(o))
    previous = signal.signal(signal.SIGTERM, lambda *_: worker.stop())
    try:
        worker.run(only=ids)
    except KeyboardInterrupt:
        worker.stop()
    finally:
        signal.signal(signal.SIGTERM, previous)
        progress.close()


def _report(outbox, accepted, quiet: bool, *, delivered_expected: bool) -> int:  # type: ignore[no-untyped-def]
    import json

    from mappings.identifiers import mask_text

    ids = [a.message_id for _, a in accepted if a is not None]
    messages = {m.id: m for m in outbox.list(ids=ids, limit=len(ids) + 1)} if ids else {}
    failed = 0
    for name, result in accepted:
        if result is None:
            failed += 1
            continue
        m = messages[result.message_id]
        if m.status == "delivered":
            summary = json.loads(m.result or "{}")
            detail = (f"{summary.get('created', 0)} created, {summary.get('existing', 0)} already there"
                      if "created" in summary else ("updated" if summary.get("updated") else "unchanged"))
            line = f"delivered  #{m.id} {name}: {detail}"
        elif m.status == "pending" and not delivered_expected:
            line = f"queued     #{m.id} {name}"
        else:
            failed += 1
            what = {"pending": "waiting", "dead": "dead", "rejected": "rejected"}.get(m.status, m.status)
            why = m.last_error or ""
            if m.status == "pending":
                why = f"retry at {m.next_attempt_at:%H:%M:%S} UTC (`carebridge worker` continues)" + (f": {why}" if why else "")
            line = f"{what:10} #{m.id} {name}: {mask_text(why)}"
        if not quiet or not line.startswith(("delivered", "queued")):
            print(line)
    total = len(accepted)
    if not quiet:
        print(f"{total - failed} of {total} documents {'delivered' if delivered_expected else 'queued'}"
              + (f"; {failed} not (see `carebridge outbox dead` / `outbox list`)" if failed else ""))
    return 1 if failed else 0
