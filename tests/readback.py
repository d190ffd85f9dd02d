"""Reading back what a transaction created, for tests: follow each entry's `response.location`."""

from __future__ import annotations


def read_back_created(client, response_bundle: dict) -> dict:  # type: ignore[no-untyped-def]
    """A collection Bundle of every resource the transaction created or matched, read from the server."""
    entries = []
    for entry in response_bundle["entry"]:
        location = entry["response"]["location"].split("/_history")[0]
        resource = client.get(location).raise_for_status().json()
        path = f"{resource['resourceType']}/{resource['id']}"
        entries.append({"fullUrl": f"{str(client.base_url).rstrip('/')}/{path}", "resource": resource})
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}
