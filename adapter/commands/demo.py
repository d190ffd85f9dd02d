"""`carebridge demo`: the main job on embedded defaults.

Starts a local stand-in regional FHIR server (SEKMET, simulator off) unless `--server` is
given, and for every fixture: converts it to FHIR, validates it (fail closed), sends the
transaction Bundle, sends it again (which must create nothing), reads every resource back
from the server, decodes them into the canonical model and compares with the source.
Prints a summary table; exits 1 if anything failed.
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
    problem: str = ""
    issues: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.valid and self.round_trip and self.resend_created == 0 and not self.problem


def run(args: argparse.Namespace) -> int:
    fixtures = sorted(p for p in Path(args.fixtures).glob("*/*.json"))
    if not fixtures:
        print(f"carebridge demo: no fixtures under {args.fixtures}", file=sys.stderr)
        return 2
    if args.server:
        return _report(_run_all(args.server.rstrip("/"), fixtures, args.receiver_huvudman), args.server)
    from adapter.standin import StandinError, start_sekmet

    with tempfile.TemporaryDirectory(prefix="carebridge-demo-") as tmp:
        try:
            server = start_sekmet(Path(tmp))
        except StandinError as exc:
            print(f"carebridge demo: {exc}", file=sys.stderr)
            return 2
        with server:
            print(f"stand-in regional FHIR server (SEKMET) at {server.base_url}")
            return _report(_run_all(server.base_url, fixtures, args.receiver_huvudman), server.base_url)


def _run_all(base_url: str, fixtures: list[Path], receiver_huvudman: str) -> list[Outcome]:
    import httpx

    from adapter.compliance import ValidationContext

    context = ValidationContext(receiver_huvudman=receiver_huvudman)
    with httpx.Client(base_url=base_url, timeout=30.0, headers={"Accept": "application/fhir+json"}) as client:
        return [_run_one(client, path, context) for path in fixtures]


def _run_one(client, path: Path, context) -> Outcome:
    from adapter import conversion
    from adapter.compliance import has_errors, validate

    out = Outcome(fixture=f"{path.parent.name}/{path.name}")
    try:
        doc = conversion.read(path.read_bytes())
        model = conversion.model_of(doc)
        out.kind = model.kind
        bundle = conversion.bundle_of(doc)
        out.entries = len(bundle["entry"])
        outcome = validate(bundle, context=context)
        out.valid = not has_errors(outcome)
        if not out.valid:
            out.issues = [f"{i.get('expression', [''])[0]}: {i['details']['text']}" for i in outcome["issue"] if i["severity"] in ("error", "fatal")]
            out.problem = "invalid: not sent"
            return out
        first = _post(client, bundle)
        out.created = sum(e["response"]["status"].startswith("201") for e in first["entry"])
        second = _post(client, bundle)
        out.resend_created = sum(e["response"]["status"].startswith("201") for e in second["entry"])
        stored = read_back(client, first)
        out.round_trip = conversion.model_of(conversion.Document("fhir", bundle=stored)) == model
        if not out.round_trip:
            out.problem = "read back differs from the source"
    except conversion.ConversionError as exc:
        out.problem = str(exc)
    except Exception as exc:  # noqa: BLE001 - the demo reports every failure in its table
        out.problem = conversion.one_line(f"{type(exc).__name__}: {exc}")
    return out


def _post(client, bundle: dict) -> dict:
    response = client.post("", json=bundle, headers={"Content-Type": "application/fhir+json"})
    if response.status_code != 200:
        raise RuntimeError(f"server answered {response.status_code}: {response.text[:300]}")
    return response.json()


def read_back(client, response_bundle: dict) -> dict:
    """A collection Bundle of every resource the transaction created, read from the server."""
    entries = []
    for entry in response_bundle["entry"]:
        location = entry["response"]["location"].split("/_history")[0]
        resource = client.get(location).raise_for_status().json()
        entries.append({"fullUrl": f"{client.base_url}/{location}".replace("//", "/").replace(":/", "://"), "resource": resource})
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


def _report(outcomes: list[Outcome], server: str) -> int:
    header = f"{'fixture':44} {'kind':9} {'entries':>7} {'created':>7} {'resend':>6} {'valid':>5} {'round trip':>10}  result"
    print(header)
    print("-" * len(header))
    for o in outcomes:
        print(
            f"{o.fixture:44} {o.kind:9} {o.entries:7} {o.created:7} {max(o.resend_created, 0) if o.resend_created >= 0 else '-':>6} "
            f"{'yes' if o.valid else 'no':>5} {'exact' if o.round_trip else 'no':>10}  {'ok' if o.ok else 'FAILED: ' + o.problem}"
        )
        for issue in o.issues[:5]:
            print(f"    {issue}")
    failed = [o for o in outcomes if not o.ok]
    print("-" * len(header))
    print(f"{len(outcomes) - len(failed)} of {len(outcomes)} fixtures converted, validated, sent to {server}, resent without duplicates and read back exactly.")
    return 1 if failed else 0
