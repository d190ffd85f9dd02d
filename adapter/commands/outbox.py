"""`carebridge outbox list|dead|show|replay|discard`: look into the outbox and act on dead letters.

`replay ID [--edit FILE]` queues a message again at its place in its person's order; with
`--edit` the new document is converted and validated first (as a transfer to the destination's
huvudman, `--receiver-huvudman`; refused when invalid) and the original payload is kept in the
edit trail. Every replay, edit and discard is audited.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from adapter.gateway.options import add_receiver_argument

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", metavar="URL", help="outbox database (default: $CAREBRIDGE_DB or ./carebridge.db)")
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_text, description=help_text, parents=[common])

    listing = add("list", "messages, oldest first")
    listing.add_argument("--status", choices=("pending", "delivered", "dead", "rejected", "discarded"))
    listing.add_argument("--server", metavar="URL", help="only this destination")
    listing.add_argument("--limit", type=int, default=100)
    listing.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    dead = add("dead", "dead letters with the server's (or validator's) answer")
    dead.add_argument("--all", action="store_true", help="include resolved ones")
    dead.add_argument("--limit", type=int, default=100)
    dead.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    show = add("show", "one message: state, dead letters, edit trail, AuditEvents")
    show.add_argument("id", type=int)
    replay = add("replay", "queue a dead, rejected or delivered message again")
    replay.add_argument("id", type=int)
    replay.add_argument("--edit", metavar="FILE", help="replace the payload with this document (validated first)")
    replay.add_argument("--reason", help="why (kept in the audit trail)")
    replay.add_argument("--actor", default=None, help="who (default: the login name)")
    add_receiver_argument(replay, what="the message's destination (validating --edit)")
    discard = add("discard", "give up on a dead or rejected message (releases its person's queue)")
    discard.add_argument("id", type=int)
    discard.add_argument("--reason", help="why (kept in the audit trail)")
    discard.add_argument("--actor", default=None, help="who (default: the login name)")


def run(args: argparse.Namespace) -> int:
    from adapter.config import database_url
    from adapter.outbox import NotReplayable, Outbox

    outbox = Outbox.open(database_url(args.db))
    try:
        return {"list": _list, "dead": _dead, "show": _show, "replay": _replay, "discard": _discard}[args.action](outbox, args)
    except NotReplayable as exc:
        print(f"carebridge outbox: {exc}", file=sys.stderr)
        return 1
    finally:
        outbox.close()


def _short(text: str | None, width: int = 70) -> str:
    from mappings.identifiers import mask_text

    text = " ".join(mask_text(text or "").split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _list(outbox, args: argparse.Namespace) -> int:  # type: ignore[no-untyped-def]
    rows = outbox.list(status=args.status, destination=args.server, limit=args.limit)
    if args.json:
        for m in rows:
            print(json.dumps({"id": m.id, "status": m.status, "kind": m.kind, "destination": m.destination,
                              "person": m.person_label, "seq": m.seq, "attempts": m.attempts, "source": m.source,
                              "created": m.created_at.isoformat(), "next_attempt": m.next_attempt_at.isoformat(),
                              "error": _short(m.last_error, 500)}, ensure_ascii=False))
        return 0
    print(f"{'id':>6} {'status':9} {'kind':11} {'person':14} {'seq':>4} {'tries':>5} {'source':28} problem")
    for m in rows:
        print(f"{m.id:>6} {m.status:9} {m.kind:11} {(m.person_label or '')[:14]:14} {m.seq:>4} {m.attempts:>5} "
              f"{(m.source or '')[:28]:28} {_short(m.last_error)}")
    return 0


def _dead(outbox, args: argparse.Namespace) -> int:  # type: ignore[no-untyped-def]
    rows = outbox.dead(include_resolved=args.all, limit=args.limit)
    if args.json:
        for d in rows:
            print(json.dumps({k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in d.items()
                              if k != "payload"}, ensure_ascii=False, default=str))
        return 0
    print(f"{'message':>7} {'stage':10} {'http':>4} {'person':14} {'source':26} {'resolved':9} error")
    for d in rows:
        print(f"{d['message_id']:>7} {d['stage']:10} {d['http_status'] or '':>4} {(d['person_label'] or '')[:14]:14} "
              f"{(d['source'] or '')[:26]:26} {d['resolution'] or '':9} {_short(d['error'])}")
    return 0


def _show(outbox, args: argparse.Namespace) -> int:  # type: ignore[no-untyped-def]
    from adapter import audit
    from mappings.identifiers import mask_text

    m = outbox.get(args.id)
    print(f"message {m.id}: {m.status}, {m.kind} to {m.destination}, person {m.person_label} (seq {m.seq}), "
          f"{m.attempts} rounds, correlation {m.correlation_id}")
    if m.last_error:
        print(f"last error: {mask_text(m.last_error)}")
    for d in [d for d in outbox.dead(include_resolved=True, limit=1000) if d["message_id"] == m.id]:
        print(f"dead letter ({d['stage']}, HTTP {d['http_status']}, {d['resolution'] or 'open'}): "
              f"{json.dumps(d['outcome'], ensure_ascii=False) if d['outcome'] else d['error']}")
    for e in outbox.edits(m.id):
        print(f"{e['created_at']:%Y-%m-%d %H:%M:%S} {e['action']} by {e['actor']}" + (f": {e['reason']}" if e['reason'] else ""))
    from adapter.outbox.db import reader

    with reader(outbox.engine) as conn:
        for event in reversed(audit.events(conn, message_id=m.id)):
            print(f"audit {event['recorded']} outcome {event['outcome']}: {event['outcomeDesc']}")
    return 0


def _actor(args: argparse.Namespace) -> str:
    try:
        return args.actor or getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _replay(outbox, args: argparse.Namespace) -> int:  # type: ignore[no-untyped-def]
    data = None
    if args.edit:
        try:
            data = Path(args.edit).read_bytes()
        except OSError as exc:
            print(f"carebridge outbox: {args.edit}: cannot read: {exc.strerror or exc}", file=sys.stderr)
            return 2
    huvudman = None
    if data is not None:
        from adapter.gateway.options import receiver_huvudman

        huvudman = receiver_huvudman(args)
        if huvudman is None:
            return 2
    result = outbox.replay(args.id, actor=_actor(args), new_data=data, reason=args.reason,
                           receiver_huvudman=huvudman)
    if result.status == "refused":
        print(f"carebridge outbox: the edited document is not valid, nothing changed: {_short(result.problem, 300)}",
              file=sys.stderr)
        return 1
    print(f"message {args.id} queued again" + (" with the edited payload" if data else "")
          + "; `carebridge worker` (or the next send) delivers it")
    return 0


def _discard(outbox, args: argparse.Namespace) -> int:  # type: ignore[no-untyped-def]
    outbox.discard(args.id, actor=_actor(args), reason=args.reason)
    print(f"message {args.id} discarded")
    return 0
