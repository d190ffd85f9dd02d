"""The audit log finds every event about a person, also those about a Bundle naming several persons."""

from __future__ import annotations

from typing import Any

from adapter.api import principal as scopes
from adapter.outbox.intake import Prepared, dump
from tests.api.conftest import HANINGE, bearer
from tests.api.issuer import LocalIssuer
from tests.gateway.test_outbox import _about_two_persons


def test_a_transfer_about_two_persons_is_found_by_each_personnummer(client: Any, issuer: LocalIssuer) -> None:
    first, second, other = "191212121212", "194005051232", "193802142384"
    bundle = _about_two_persons(first, second)
    outbox = client.outbox
    destination = "http://127.0.0.1:9/fhir"
    mid = outbox.enqueue_prepared(Prepared("transaction", bundle, dump(bundle), {}), destination).message_id
    [message] = outbox.claim("w", destination)
    outbox.mark_delivered(message, "w", http_status=200, summary={"created": 2})
    headers = bearer(issuer.token(HANINGE, [scopes.AUDIT]))

    def transfers(person: str) -> list[str]:
        found = client.get("/audit/AuditEvent", params={"person": person, "action": "transfer"}, headers=headers)
        assert found.status_code == 200, found.text
        return [e["resource"]["entity"][-1]["what"]["identifier"]["value"] for e in found.json().get("entry", ())]

    assert transfers(first) == transfers(second) == [str(mid)]
    assert transfers(other) == []
