"""`carebridge demo`: the main job on embedded defaults.

Starts a local stand-in regional FHIR server (SEKMET, simulator off) unless `--server` is
given, opens an outbox in a temporary SQLite database, and for every fixture:

- documents (decisions, plans, SIPs): convert to FHIR, validate as a transfer to the region
  (fail closed), enqueue, deliver through the retrying gateway, enqueue and deliver again
  (which must create nothing), then find every resource on the server by its business key
  (exactly one each), decode them into the canonical model and compare with the source;
- discharge-process messages: play the hospital and hand each message to carebridge's own
  receiver (the municipality's end): it must answer ok, pause or resume the person's provider
  Tasks on the regional server, and answer a resend with the same acknowledgement, changing
  nothing.

Prints a summary table; exits 1 if anything failed, 2 if nothing could start.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from adapter.standin import REPO_ROOT


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--server", metavar="URL", help="use this FHIR base URL instead of starting SEKMET")
    parser.add_argument("--fixtures", metavar="DIR", default=str(REPO_ROOT / "fixtures"), help="fixture root (default: the repo's fixtures/)")
    parser.add_argument(
        "--receiver-huvudman", default="region", choices=("kommun", "region", "annan"),
        help="the huvudman of the receiving server (default: region); a transfer to another huvudman needs consent or a legal basis",
    )


@dataclass
class Outcome:
    """What happened to one fixture."""

    fixture: str
    kind: str = ""
    entries: int = 0
    created: int = 0
    resend_created: int = -1
    valid: bool = False
    round_trip: bool = False
    note: str = ""
    problem: str = ""
    issues: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.valid and self.round_trip and self.resend_created == 0 and not self.problem


def run(args: argparse.Namespace) -> int:
    fixtures = sorted(Path(args.fixtures).glob("*/*.json"))
    if not fixtures:
        print(f"carebridge demo: no fixtures under {args.fixtures}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="carebridge-demo-") as tmp:
        if args.server:
            return _run(args.server.rstrip("/"), Path(tmp), fixtures, args.receiver_huvudman)
        from adapter.standin import StandinError, start_sekmet

        try:
            server = start_sekmet(Path(tmp) / "sekmet")
        except StandinError as exc:
            print(f"carebridge demo: {exc}", file=sys.stderr)
            return 2
        with server:
            print(f"stand-in regional FHIR server (SEKMET) at {server.base_url}")
            return _run(server.base_url, Path(tmp), fixtures, args.receiver_huvudman)


def _run(base_url: str, workdir: Path, fixtures: list[Path], receiver_huvudman: str) -> int:
    from adapter.gateway import Gateway, UnsuitableServer
    from adapter.outbox import Outbox

    from adapter import logs

    logs.configure("WARNING")  # structured JSON on stderr, personnummer masked
    gateway = Gateway(base_url)
    try:
        gateway.check_server()
    except UnsuitableServer as exc:
        print(f"carebridge demo: {exc}", file=sys.stderr)
        return 2
    db_url = f"sqlite:///{workdir / 'carebridge.sqlite'}"
    outbox = Outbox.open(db_url)
    print(f"outbox (SQLite) at {workdir / 'carebridge.sqlite'}")
    demo = _Demo(outbox, gateway, db_url, receiver_huvudman)
    try:
        # Documents first, so the provider Tasks exist when the discharge messages pause them.
        ordered = sorted(fixtures, key=lambda p: (demo.is_message(p), str(p)))
        return _report([demo.one(path) for path in ordered], base_url)
    finally:
        demo.close()
        gateway.close()
        outbox.close()


class _Demo:
    """Runs fixtures through the outbox and gateway (documents) or the receiver (messages)."""

    def __init__(self, outbox, gateway, db_url: str, receiver_huvudman: str) -> None:  # type: ignore[no-untyped-def]
        self.outbox, self.gateway, self.db_url, self.receiver_huvudman = outbox, gateway, db_url, receiver_huvudman
        self._receiver = None

    def is_message(self, path: Path) -> bool:
        from mappings.flows import FLOWS

        flow = FLOWS.get(path.parent.name)
        return bool(flow and flow.delivery == "message")

    def one(self, path: Path) -> Outcome:
        from adapter import conversion

        out = Outcome(fixture=f"{path.parent.name}/{path.name}")
        try:
            data = path.read_bytes()
            doc = conversion.read(data)
            model = conversion.model_of(doc)
            out.kind = model.kind
            bundle = conversion.bundle_of(doc)
            out.entries = len(bundle["entry"])
            if self.is_message(path):
                self._message(out, bundle, model)
            else:
                self._document(out, data, bundle, model)
        except conversion.ConversionError as exc:
            out.problem = str(exc)
        except Exception as exc:  # noqa: BLE001 - the demo reports every failure in its table
            out.problem = conversion.one_line(f"{type(exc).__name__}: {exc}")
        return out

    def _document(self, out: Outcome, data: bytes, bundle: dict, model) -> None:  # type: ignore[no-untyped-def]
        import json

        from adapter import conversion
        from adapter.outbox.intake import prepare

        prepared = prepare(data, receiver_huvudman=self.receiver_huvudman)
        out.valid = prepared.ok
        if not out.valid:
            out.issues = [f"{(i.get('expression') or [''])[0]}: {i['details']['text']}" for i in prepared.outcome["issue"] if i["severity"] in ("error", "fatal")]
            out.problem = "invalid: not sent"
            return
        first = self._deliver(prepared, out.fixture)
        second = self._deliver(prepare(data, receiver_huvudman=self.receiver_huvudman), out.fixture + " (resend)")
        if first.status != "delivered" or second.status != "delivered":
            bad = first if first.status != "delivered" else second
            out.problem = f"{bad.status}: {bad.last_error or ''}"
            return
        out.created = json.loads(first.result or "{}").get("created", 0)
        out.resend_created = json.loads(second.result or "{}").get("created", 0)
        stored = read_back(self.gateway.client, bundle)
        out.round_trip = conversion.model_of(conversion.Document("fhir", bundle=stored)) == model
        if not out.round_trip:
            out.problem = "read back differs from the source"

    def _deliver(self, prepared, source: str):  # type: ignore[no-untyped-def]
        from adapter.outbox.worker import Worker

        accepted = self.outbox.enqueue_many([prepared], self.gateway.base_url, sources=[source])[0]
        if accepted.status == "pending":
            Worker(self.outbox, self.gateway, concurrency=1).run(only=[accepted.message_id])
        return self.outbox.list(ids=[accepted.message_id], limit=1)[0]

    def _message(self, out: Outcome, bundle: dict, model) -> None:  # type: ignore[no-untyped-def]
        first = self.receiver().process(bundle)
        again = self.receiver().process(bundle)
        out.valid = first.code == "ok"
        if not out.valid:
            out.issues = [i["details"]["text"] for e in first.ack.get("entry", ()) for i in e["resource"].get("issue", ())]
            out.problem = f"acknowledged {first.code}"
            return
        out.created = 0
        out.resend_created = 0 if (again.duplicate and again.acknowledgement == first.acknowledgement and not again.changes) else 1
        out.round_trip = first.event == model
        paused = [c for c in first.changes if c.after == "on-hold"]
        out.note = f"ack ok; {len(paused)} task(s) paused" if paused else f"ack ok; {len(first.changes)} task(s) resumed" if first.changes else "ack ok"
        if not out.round_trip:
            out.problem = "the received event differs from the source"

    def receiver(self):  # type: ignore[no-untyped-def]
        if self._receiver is None:
            from adapter.messaging.effects import TaskEffects
            from adapter.messaging.receipts import SqlReceiptStore
            from adapter.messaging.receiver import Receiver

            self._store = SqlReceiptStore.open(self.db_url)
            self._receiver = Receiver(self._store, effects=TaskEffects(self.gateway))
        return self._receiver

    def close(self) -> None:
        if self._receiver is not None:
            self._store.close()


def read_back(client, bundle: dict) -> dict:  # type: ignore[no-untyped-def]
    """A collection Bundle of the server's copy of every conditional-create entry, found by its
    business key (`ifNoneExist`); more than one match is a duplicate and an error."""
    entries = []
    for entry in bundle["entry"]:
        resource_type = entry["resource"]["resourceType"]
        found = client.get(f"{resource_type}?{entry['request']['ifNoneExist']}").raise_for_status().json()
        matches = [e for e in found.get("entry", ()) if (e.get("search") or {}).get("mode", "match") == "match"]
        if len(matches) != 1:
            raise RuntimeError(f"{resource_type}?{entry['request']['ifNoneExist']} matched {len(matches)} resources on the server")
        resource = matches[0]["resource"]
        entries.append({"fullUrl": f"{client.base_url}/{resource_type}/{resource['id']}", "resource": resource})
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


def _report(outcomes: list[Outcome], server: str) -> int:
    width = max(len(o.fixture) for o in outcomes)
    header = f"{'fixture':{width}} {'kind':19} {'entries':>7} {'created':>7} {'resend':>6} {'valid':>5} {'round trip':>10}  result"
    print(header)
    print("-" * len(header))
    for o in outcomes:
        resend = str(o.resend_created) if o.resend_created >= 0 else "-"
        result = ("ok" + (f" ({o.note})" if o.note else "")) if o.ok else "FAILED: " + o.problem
        print(f"{o.fixture:{width}} {o.kind:19} {o.entries:7} {o.created:7} {resend:>6} {'yes' if o.valid else 'no':>5} {'exact' if o.round_trip else 'no':>10}  {result}")
        for issue in o.issues[:5]:
            print(f"    {issue}")
    failed = [o for o in outcomes if not o.ok]
    print("-" * len(header))
    print(
        f"{len(outcomes) - len(failed)} of {len(outcomes)} fixtures ok: documents validated, delivered through the outbox to {server}, "
        "resent without duplicates and read back exactly; messages acknowledged, deduplicated and applied."
    )
    return 1 if failed else 0
