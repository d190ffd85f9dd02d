"""Versioned updates by business identifier: read, set our elements, ``PUT`` with ``If-Match``.

An ``update`` payload is a FHIR resource with a business identifier. Its top-level elements are set
on the server's resource with that identifier; ``id``, ``meta``, ``text``, ``identifier`` and logical
references (a Reference with only an ``identifier``, which route the message) are not written.

- Nothing to change (a resend, or a retry after the server committed): no write at all.
- 412 Precondition Failed: re-read. If someone else changed one of *our* elements to a different
  value since our read, that is a ``Conflict`` (dead letter, the operator decides). Otherwise our
  elements are applied again on the fresh version (at most ``REAPPLY_LIMIT`` times).
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from adapter.gateway.errors import Conflict, Permanent, Transient, error_for

if TYPE_CHECKING:
    from adapter.gateway.client import Delivered, Gateway, Round

#: Elements an update never writes.
NOT_WRITTEN = frozenset({"resourceType", "id", "meta", "text", "identifier"})
#: How many times a 412 leads to re-read and re-apply before it becomes a conflict.
REAPPLY_LIMIT = 3


def _is_logical_reference(value: Any) -> bool:
    return isinstance(value, dict) and "identifier" in value and "reference" not in value


def changes_of(resource: dict[str, Any]) -> dict[str, Any]:
    """The elements an update payload sets."""
    return {k: v for k, v in resource.items() if k not in NOT_WRITTEN and not _is_logical_reference(v)}


def merged(current: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """The server's resource with our elements set."""
    out = copy.deepcopy(current)
    out.update(copy.deepcopy(changes))
    return out


def conflicts(base: dict[str, Any], fresh: dict[str, Any], changes: dict[str, Any]) -> list[str]:
    """Our elements that someone else changed to something else between ``base`` and ``fresh``."""
    return sorted(k for k, ours in changes.items() if fresh.get(k) != base.get(k) and fresh.get(k) != ours)


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return {k: v for k, v in a.items() if k not in ("meta", "text")} == \
        {k: v for k, v in b.items() if k not in ("meta", "text")}


def _version(resource: dict[str, Any]) -> str:
    version = (resource.get("meta") or {}).get("versionId")
    if not version:
        raise Permanent(f"{resource.get('resourceType')}/{resource.get('id')} has no meta.versionId: "
                        "the server does not support versioned updates")
    return str(version)


def _read(gw: Gateway, rnd: Round, rtype: str, rid: str, headers: dict[str, str]) -> dict[str, Any]:
    response = gw.request(rnd, "GET", f"/{rtype}/{rid}", "read", headers=headers)
    if response.status_code != 200:
        raise error_for(response, f"GET {rtype}/{rid}")
    return response.json()


def _find(gw: Gateway, rnd: Round, rtype: str, identifier: dict[str, str], headers: dict[str, str]) -> dict[str, Any]:
    token = quote(f"{identifier['system']}|{identifier['value']}", safe=":/|")
    response = gw.request(rnd, "GET", f"/{rtype}?identifier={token}", "search", headers=headers)
    if response.status_code != 200:
        raise error_for(response, f"GET {rtype}?identifier")
    try:
        found = [e["resource"] for e in response.json().get("entry", ())
                 if (e.get("search") or {}).get("mode", "match") == "match" and e.get("resource")]
    except (ValueError, KeyError, AttributeError):
        raise Transient(f"GET {rtype}?identifier: the answer is not a searchset") from None
    if not found:
        raise Permanent(f"no {rtype} with identifier {identifier['system']}|{identifier['value']} on the server",
                        status=404, outcome={"resourceType": "OperationOutcome", "issue": [{
                            "severity": "error", "code": "not-found",
                            "diagnostics": f"no {rtype} with this identifier to update"}]})
    if len(found) > 1:
        raise Permanent(f"{len(found)} {rtype} resources share identifier {identifier['value']}", status=412)
    return found[0]


def apply_update(gw: Gateway, rnd: Round, resource: dict[str, Any], headers: dict[str, str]) -> Delivered:
    """Set the payload's elements on the server's resource with its identifier, versioned and idempotent."""
    from adapter.gateway.client import FHIR_JSON, Delivered

    rtype = resource["resourceType"]
    identifier = next(i for i in resource.get("identifier", ()) if i.get("system") and i.get("value"))
    changes = changes_of(resource)
    base = _find(gw, rnd, rtype, identifier, headers)
    current = base
    for _ in range(REAPPLY_LIMIT + 1):
        target = merged(current, changes)
        if _same(target, current):
            return Delivered(200, {"status": 200, "updated": False, "version": _version(current),
                                   "attempts": rnd.attempts}, rnd.attempts)
        response = gw.request(rnd, "PUT", f"/{rtype}/{current['id']}", "update", json=target,
                              headers={**headers, "Content-Type": FHIR_JSON, "If-Match": f'W/"{_version(current)}"'})
        if 200 <= response.status_code < 300:
            version = (response.headers.get("ETag") or "").removeprefix("W/").strip('"')
            return Delivered(response.status_code, {"status": response.status_code, "updated": True,
                                                    "version": version, "attempts": rnd.attempts}, rnd.attempts)
        if response.status_code != 412:
            raise error_for(response, f"PUT {rtype}/{current['id']}")
        fresh = _read(gw, rnd, rtype, current["id"], headers)
        clash = conflicts(base, fresh, changes)
        if clash:
            raise Conflict(
                f"{rtype}/{current['id']}: {', '.join(clash)} changed on the server since it was read",
                status=412, outcome={"resourceType": "OperationOutcome", "issue": [{
                    "severity": "error", "code": "conflict",
                    "diagnostics": f"the server's {', '.join(clash)} changed to another value since it was read; "
                                   "replay to apply ours anyway, or discard",
                    "expression": [f"{rtype}.{k}" for k in clash]}]})
        current = fresh
    raise Conflict(f"{rtype}/{current['id']}: still 412 after {REAPPLY_LIMIT} re-reads", status=412)
