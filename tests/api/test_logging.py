"""Personnummer never reach the API's log lines: paths, queries, bodies and errors are masked or left out."""

from __future__ import annotations

import io
import logging
import json
from typing import Any

from adapter import logs
from tests.api.conftest import ALL, HANINGE, bearer, fixture_bytes, with_new_id
from tests.api.issuer import LocalIssuer

PNR = "193802142384"


def test_no_personnummer_in_log_lines(client: Any, issuer: LocalIssuer) -> None:
    stream = io.StringIO()
    handler = logs.configure("DEBUG", stream)
    try:
        headers = bearer(issuer.token(HANINGE, ALL))
        client.post("/documents/decision", content=with_new_id(fixture_bytes("decision", "hemtjanst-timmar.json")),
                    headers={**headers, "Content-Type": "application/json"})
        client.get("/audit/AuditEvent", params={"person": PNR}, headers=headers)
        client.get(f"/documents/{PNR}", headers=headers)  # a personnummer where an id belongs
        client.get(f"/no/such/{PNR}", headers=headers)
        client.post("/fhir/$validate", content=json.dumps({"resourceType": "Patient", "identifier": [
            {"system": "http://electronichealth.se/identifier/personnummer", "value": PNR}], "birthDate": "x"}),
            headers={**headers, "Content-Type": "application/fhir+json"})
    finally:
        logging.getLogger(logs.ROOT).removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    requests = [line for line in lines if line["msg"] == "request"]
    assert len(requests) == 5
    assert all("request_id" in line and "status" in line for line in requests)
    assert PNR not in stream.getvalue()
