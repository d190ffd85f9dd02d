"""Reading from the regional server: a search follows its `next` links (bounded, never off the server)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from adapter.inbound.regional import BudgetExceeded, RegionalError, RegionalReader
from adapter.standin import RunningServer


@pytest.mark.integration
def test_a_search_with_more_than_one_page_of_matches_reads_them_all(sekmet_server: RunningServer) -> None:
    request = f"ServiceRequest/{uuid.uuid4()}"
    entries = [{"fullUrl": f"urn:uuid:{uuid.uuid4()}", "request": {"method": "POST", "url": "Observation"},
                "resource": {"resourceType": "Observation", "status": "final", "code": {"text": f"uppföljning {n}"},
                             "basedOn": [{"reference": request}]}} for n in range(130)]
    created = httpx.post(sekmet_server.base_url, json={"resourceType": "Bundle", "type": "transaction", "entry": entries},
                         headers={"Content-Type": "application/fhir+json"}, timeout=60)
    assert created.status_code == 200, created.text
    with RegionalReader(sekmet_server.base_url) as reader:
        found = reader.search("Observation", {"based-on": request})
        assert reader.reads == 2  # 100 + 30, one read per page
    assert len({o["id"] for o in found}) == len(found) == 130
    assert {o["code"]["text"] for o in found} == {f"uppföljning {n}" for n in range(130)}
    with RegionalReader(sekmet_server.base_url) as reader, pytest.raises(RegionalError, match="more than 1 pages"):
        reader.search("Observation", {"based-on": request}, max_pages=1)


BASE = "https://region.example/fhir"


def _reader(pages: dict[str, dict[str, Any]], budget: int = 200) -> tuple[RegionalReader, list[str]]:
    asked: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(str(request.url))
        offset = request.url.params.get("_offset", "0")
        return httpx.Response(200, json=pages[offset])

    client = httpx.Client(base_url=BASE, transport=httpx.MockTransport(answer))
    return RegionalReader(BASE, client=client, budget=budget), asked


def _page(n: int, next_url: str | None) -> dict[str, Any]:
    links = [{"relation": "next", "url": next_url}] if next_url else []
    return {"resourceType": "Bundle", "type": "searchset", "link": links,
            "entry": [{"resource": {"resourceType": "CarePlan", "id": f"p{n}"}},
                      {"resource": {"resourceType": "Patient", "id": "included"}, "search": {"mode": "include"}}]}


def test_next_links_are_followed_only_on_the_regional_server() -> None:
    reader, asked = _reader({"0": _page(0, f"{BASE}/CarePlan?goal=Goal/1&_offset=1"),
                             "1": _page(1, "CarePlan?goal=Goal/1&_offset=2"), "2": _page(2, None)})
    assert [p["id"] for p in reader.search("CarePlan", {"goal": "Goal/1"})] == ["p0", "p1", "p2"]
    assert len(asked) == 3 and all(url.startswith(BASE + "/CarePlan?") for url in asked)
    elsewhere, asked = _reader({"0": _page(0, "https://attacker.example/fhir/CarePlan?_offset=1")})
    with pytest.raises(RegionalError, match="outside the regional server"):
        elsewhere.search("CarePlan", {"goal": "Goal/1"})
    assert len(asked) == 1
    sibling, _ = _reader({"0": _page(0, BASE + "-other/CarePlan?_offset=1")})
    with pytest.raises(RegionalError, match="outside the regional server"):
        sibling.search("CarePlan", {"goal": "Goal/1"})


def test_a_search_never_loops_and_its_pages_count_against_the_budget() -> None:
    looping, _ = _reader({"0": _page(0, f"{BASE}/CarePlan?_offset=1"), "1": _page(1, f"{BASE}/CarePlan?_offset=1")})
    with pytest.raises(RegionalError, match="links back"):
        looping.search("CarePlan", {})
    endless = {str(n): _page(n, f"{BASE}/CarePlan?_offset={n + 1}") for n in range(50)}
    bounded, asked = _reader(endless)
    with pytest.raises(RegionalError, match="more than 20 pages"):
        bounded.search("CarePlan", {})
    assert len(asked) == 20
    small, _ = _reader(endless, budget=3)
    with pytest.raises(BudgetExceeded):
        small.search("CarePlan", {})
