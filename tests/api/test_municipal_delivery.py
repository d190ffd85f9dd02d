"""Municipal delivery: documents rendered as canonical JSON or municipal XML, written to a folder or POSTed."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from adapter.gateway.errors import Permanent, Transient
from adapter.inbound.models import AssignmentStatus
from adapter.inbound.municipal import KIND, MunicipalGateway, envelope, render, safe_filename
from mappings import safexml

STATUS = AssignmentStatus.model_validate({
    "decision_id": "HAN-2026-0412", "insats_id": "1", "status": "on-hold", "status_reason": "inlagd på sjukhus",
    "personnummer": "193802142384",
    "performer": {"name": "Omsorgshuset Södertörn AB", "hsa_id": "SE5566778899-HTJ1"},
    "source": {"server": "https://region.example/fhir", "reference": "Task/7/_history/3"},
})


def test_json_and_xml_forms() -> None:
    as_json = json.loads(render(STATUS, "json"))
    assert as_json["kind"] == "assignment-status" and as_json["status"] == "on-hold"
    root = safexml.parse(render(STATUS, "xml").encode())
    assert root.tag == "{urn:carebridge:municipal:1}assignment-status"
    assert root.findtext("{urn:carebridge:municipal:1}status") == "on-hold"


def test_the_outbox_orders_municipal_documents_by_the_person_given_as_their_subject(tmp_path: Path) -> None:
    from adapter.inbound.municipal import enqueue
    from adapter.outbox import Outbox
    from adapter.outbox.subjects import Subject

    outbox = Outbox.open(f"sqlite:///{tmp_path / 'o.db'}")
    try:
        ids = [enqueue(outbox, STATUS, destination=f"folder:{tmp_path}", fmt="json", filename=f"{n}.json",
                       person="193802142384", organisation="2120000134", source="test", actor="test")
               for n in range(2)]
        other = enqueue(outbox, STATUS, destination=f"folder:{tmp_path}", fmt="json", filename="x.json",
                        person=None, organisation=None, source="test", actor="test")
        first, second, anonymous = (outbox.get(i) for i in (*ids, other))
        assert first.person_key == second.person_key == outbox.key_of(Subject("193802142384", None, ""))
        assert (first.seq, second.seq, first.person_label, first.organisation) == (1, 2, "193802******", "2120000134")
        assert anonymous.seq == 1 and anonymous.person_key != first.person_key
        assert set(first.payload) == {"delivery", "filename", "media_type", "content"}  # no FHIR-style for/owner
    finally:
        outbox.close()


def test_file_names_never_leave_the_folder() -> None:
    assert "/" not in safe_filename("../../etc/passwd")
    assert not safe_filename("../../etc/passwd").startswith(".")
    assert safe_filename("") == "document"


def test_folder_delivery_is_atomic_and_idempotent(tmp_path: Path) -> None:
    gateway = MunicipalGateway(f"folder:{tmp_path}")
    payload = envelope(STATUS, "xml", "assignment-status-Task-7-v3.xml")
    for _ in range(2):
        delivered = gateway.deliver(KIND, payload, "cid", gateway.new_round())
        assert delivered.summary == {"file": "assignment-status-Task-7-v3.xml"}
    assert [p.name for p in tmp_path.iterdir()] == ["assignment-status-Task-7-v3.xml"]
    with pytest.raises(Permanent):
        gateway.deliver("transaction", payload, "cid")


class Endpoint:
    """A municipal HTTP endpoint on 127.0.0.1 answering the statuses it is given, recording what it got."""

    def __init__(self) -> None:
        self.answers: list[tuple[int, dict[str, str]]] = []
        self.received: list[tuple[dict[str, str], bytes]] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server API
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.received.append((dict(self.headers), body))
                status, headers = outer.answers.pop(0) if outer.answers else (201, {})
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/inbound"


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    server = Endpoint()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


def test_endpoint_delivery(endpoint: Endpoint) -> None:
    gateway = MunicipalGateway(endpoint.url)
    payload = envelope(STATUS, "json", "assignment-status-Task-7-v3.json")
    endpoint.answers = [(503, {"Retry-After": "7"}), (201, {}), (400, {})]
    with pytest.raises(Transient) as transient:
        gateway.deliver(KIND, payload, "cid-1")
    assert transient.value.retry_after == 7
    assert gateway.deliver(KIND, payload, "cid-1").http_status == 201
    headers, body = endpoint.received[-1]
    assert headers["Content-Type"] == "application/json"
    assert headers["Idempotency-Key"] == "assignment-status-Task-7-v3.json"
    assert json.loads(body)["decision_id"] == "HAN-2026-0412"
    with pytest.raises(Permanent):
        gateway.deliver(KIND, payload, "cid-1")
    gateway.close()
