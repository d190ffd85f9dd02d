"""Subscription notifications (FHIR R4B rest-hook, and the R4 Subscriptions Backport's Parameters form).

A notification is a ``history`` Bundle whose first entry is the status: an R4B
``SubscriptionStatus`` or, from an R4 server using the backport IG, a ``Parameters`` resource.
With id-only payloads the other entries carry only a ``fullUrl`` (and request/response), so
the focus of each event is what carebridge must read from the server.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

EVENT_TYPES = ("handshake", "heartbeat", "event-notification", "query-status", "query-event")


class NotificationError(ValueError):
    """A body that is not a subscription notification; the message says what is wrong."""


@dataclass(frozen=True)
class Notification:
    """What a notification says: its type, subscription, and the references of the changed resources."""

    event_type: str
    subscription: str | None
    topic: str | None
    focus: tuple[str, ...]


def _reference(value: Any) -> str | None:
    if isinstance(value, dict) and isinstance(value.get("reference"), str):
        return value["reference"]
    return None


def _from_status(status: dict[str, Any]) -> tuple[str, str | None, str | None, list[str]]:
    focus = [r for event in status.get("notificationEvent") or () if isinstance(event, dict)
             for r in [_reference(event.get("focus"))] if r]
    topic = status.get("topic") if isinstance(status.get("topic"), str) else None
    return str(status.get("type", "")), _reference(status.get("subscription")), topic, focus


def _from_parameters(params: dict[str, Any]) -> tuple[str, str | None, str | None, list[str]]:
    event_type, subscription, topic, focus = "", None, None, []
    for p in params.get("parameter") or ():
        if not isinstance(p, dict):
            continue
        name = p.get("name")
        if name == "type":
            event_type = str(p.get("valueCode", ""))
        elif name == "subscription":
            subscription = _reference(p.get("valueReference"))
        elif name == "topic":
            topic = p.get("valueCanonical") if isinstance(p.get("valueCanonical"), str) else None
        elif name == "notification-event":
            for part in p.get("part") or ():
                if isinstance(part, dict) and part.get("name") == "focus":
                    ref = _reference(part.get("valueReference"))
                    if ref:
                        focus.append(ref)
    return event_type, subscription, topic, focus


def parse(bundle: Any, *, max_events: int = 100) -> Notification:
    """The Notification a Bundle carries, or NotificationError."""
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise NotificationError("a notification is a Bundle")
    if bundle.get("type") not in ("history", "subscription-notification"):
        raise NotificationError("a notification Bundle has type history (R4B) or subscription-notification (R5)")
    entries = bundle.get("entry") or []
    if not isinstance(entries, list) or not entries or not isinstance(entries[0], dict):
        raise NotificationError("a notification starts with its SubscriptionStatus entry")
    status = entries[0].get("resource")
    if not isinstance(status, dict):
        raise NotificationError("the first entry must carry a SubscriptionStatus or Parameters resource")
    if status.get("resourceType") == "SubscriptionStatus":
        event_type, subscription, topic, focus = _from_status(status)
    elif status.get("resourceType") == "Parameters":
        event_type, subscription, topic, focus = _from_parameters(status)
    else:
        raise NotificationError("the first entry must be a SubscriptionStatus or Parameters resource")
    if event_type not in EVENT_TYPES:
        raise NotificationError(f"unknown notification type {event_type!r}")
    if event_type == "event-notification" and not focus:
        # id-only payloads without notificationEvent: the entries' fullUrls name the changed resources
        focus = [e["fullUrl"] for e in entries[1:] if isinstance(e, dict) and isinstance(e.get("fullUrl"), str)
                 and not e["fullUrl"].startswith("urn:")]
    if len(focus) > max_events:
        raise NotificationError(f"more than {max_events} events in one notification")
    return Notification(event_type, subscription, topic, tuple(dict.fromkeys(focus)))
