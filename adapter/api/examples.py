"""OpenAPI request examples taken from the fixtures (``fixtures/<kind>/*.json``, RIV-TA ``*.xml``), in every format.

Canonical JSON examples are the fixture files themselves; the FHIR Bundle and municipal XML
examples are the first fixture of each kind converted with ``adapter.conversion``. A fixture
that does not convert (a flow still being written) is left out rather than failing the docs.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
#: Canonical JSON examples per kind (the rest of the fixtures are left out to keep the document small).
PER_KIND = 2


def _convert(data: bytes, to: str) -> Any | None:
    from adapter.conversion import ConversionError, convert

    try:
        out = convert(data, to)  # type: ignore[arg-type]
    except (ConversionError, ValueError, KeyError, TypeError):
        return None
    return json.loads(out) if to == "fhir" else out.decode("utf-8")


@cache
def fixture_examples() -> dict[str, dict[str, dict[str, Any]]]:
    """media type -> example name -> OpenAPI example object, for document submission."""
    out: dict[str, dict[str, dict[str, Any]]] = {"application/json": {}, "application/fhir+json": {},
                                                  "application/xml": {}}
    if not FIXTURES.is_dir():
        return out
    for kind_dir in sorted(p for p in FIXTURES.iterdir() if p.is_dir()):
        files = sorted(kind_dir.glob("*.json"))[:PER_KIND]
        for n, path in enumerate(files):
            data = path.read_bytes()
            try:
                value = json.loads(data)
            except ValueError:
                continue
            if not isinstance(value, dict) or "kind" not in value:
                continue
            name = f"{kind_dir.name}-{path.stem}"
            summary = f"{kind_dir.name}: fixtures/{kind_dir.name}/{path.name}; POST to /documents/{value['kind']}"
            out["application/json"][name] = {"summary": summary, "value": value}
            if n == 0:
                bundle = _convert(data, "fhir")
                if bundle is not None:
                    out["application/fhir+json"][name] = {"summary": summary + " (as FHIR)", "value": bundle}
                xml = _convert(data, "xml")
                if xml is not None:
                    out["application/xml"][name] = {"summary": summary + " (as municipal XML)", "value": xml}
        for path in sorted(kind_dir.glob("*.xml"))[:PER_KIND]:  # RIV-TA responses, posted as their contract
            contract = _riv_contract(path.read_bytes())
            if contract:
                out["application/xml"][f"{kind_dir.name}-{path.stem}"] = {
                    "summary": f"RIV-TA: fixtures/{kind_dir.name}/{path.name}; POST to /documents/{contract}",
                    "value": path.read_text(encoding="utf-8")}
    return out


def _riv_contract(data: bytes) -> str | None:
    from mappings import formats

    try:
        detected = formats.detect(data)
    except Exception:  # noqa: BLE001 - an unreadable fixture is simply not an example
        return None
    return detected.detail if detected.format == "riv" else None


def notification_example(base_url: str = "https://region.example/fhir") -> dict[str, Any]:
    """An id-only R4B-style subscription notification about one Task."""
    return {
        "resourceType": "Bundle", "type": "history", "timestamp": "2026-03-10T09:30:00+01:00",
        "entry": [
            {"fullUrl": "urn:uuid:5a1f0d8e-4c2b-4d8e-9a51-0c2f7a3d9e11",
             "resource": {"resourceType": "SubscriptionStatus", "status": "active", "type": "event-notification",
                          "eventsSinceSubscriptionStart": "12",
                          "notificationEvent": [{"eventNumber": "12", "focus": {"reference": f"{base_url}/Task/123"}}],
                          "subscription": {"reference": f"{base_url}/Subscription/municipal-task-status"},
                          "topic": "http://carebridge.se/fhir/SubscriptionTopic/task-status"}},
            {"fullUrl": f"{base_url}/Task/123", "request": {"method": "PUT", "url": "Task/123"},
             "response": {"status": "200"}},
        ],
    }


def inject(schema: dict[str, Any]) -> None:
    """Put the fixture examples into the OpenAPI document's request bodies."""
    paths = schema.get("paths", {})
    submit = paths.get("/documents/{flow}", {}).get("post")
    if submit:
        content = submit.get("requestBody", {}).get("content", {})
        for media_type, examples in fixture_examples().items():
            if media_type in content and examples:
                content[media_type]["examples"] = examples
    validate = paths.get("/fhir/$validate", {}).get("post")
    bundles = fixture_examples()["application/fhir+json"]
    if validate and bundles:
        name, example = next(iter(bundles.items()))
        validate["requestBody"]["content"]["application/fhir+json"]["examples"] = {name: example}
    notify = paths.get("/fhir/subscription-notification", {}).get("post")
    if notify:
        for media_type in notify.get("requestBody", {}).get("content", {}).values():
            media_type["examples"] = {"task-status": {"summary": "id-only notification about a Task",
                                                      "value": notification_example()}}
    message = paths.get("/fhir/$process-message", {}).get("post")
    discharge = {k: v for k, v in bundles.items() if k.startswith("discharge-")}
    if message and discharge:
        for media_type in message.get("requestBody", {}).get("content", {}).values():
            media_type["examples"] = discharge
