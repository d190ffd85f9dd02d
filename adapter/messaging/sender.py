"""The sending side of a FHIR message: `POST [base]/$process-message`, and reading the answer.

SEKMET (and any R4 server with the messaging operation) takes a message Bundle at
`[base]/$process-message` (SEKMET also at `POST [base]` when the Bundle's type is `message`),
stores its resources with the sender's ids and the Bundle itself (under an id of its own, with
our `Bundle.identifier`), and answers with an acknowledgement message. It does not dedupe: that is
the receiver's job (`receiver.Receiver`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from mappings import discharge

FHIR_JSON = "application/fhir+json"
PROCESS_MESSAGE = "$process-message"


class MessageNotAcceptedError(RuntimeError):
    """The server did not answer a message with an acknowledgement message."""


def send_message(client: httpx.Client, bundle: dict[str, Any]) -> discharge.Acknowledgement:
    """Post a message Bundle to `$process-message` on the client's base URL; the acknowledgement it got."""
    response = client.post(PROCESS_MESSAGE, json=bundle, headers={"Content-Type": FHIR_JSON, "Accept": FHIR_JSON})
    if response.status_code != 200:
        raise MessageNotAcceptedError(f"$process-message answered HTTP {response.status_code}: {response.text[:300]}")
    try:
        return discharge.read_acknowledgement(response.json())
    except (ValueError, discharge.NotADischargeMessageError) as exc:
        raise MessageNotAcceptedError(f"$process-message did not answer with an acknowledgement: {exc}") from None


def read_back_message(client: httpx.Client, bundle: dict[str, Any]) -> dict[str, Any]:
    """The message Bundle as the server stored it, found by its `Bundle.identifier` (the newest copy)."""
    ident = bundle.get("identifier") or discharge.bundle_identifier(bundle["id"])
    token = quote(f"{ident['system']}|{ident['value']}", safe=":/|")
    response = client.get(f"Bundle?identifier={token}&_sort=-_lastUpdated", headers={"Accept": FHIR_JSON})
    response.raise_for_status()
    found = [e["resource"] for e in response.json().get("entry", ()) if (e.get("search") or {}).get("mode", "match") == "match"]
    if not found:
        raise MessageNotAcceptedError(f"the server holds no Bundle with identifier {ident['value']}")
    return found[0]
