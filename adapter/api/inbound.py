"""The work behind the inbound routes: notifications to municipal deliveries, messages to the receiver.

Each changed resource named by a notification is read from the regional server, translated
(``adapter.inbound.changes``) and queued once per resource version for the municipal endpoint or
folder. A resource that cannot be read makes the answer 502 so the region sends the notification
again; what was already queued is not queued twice.
"""

from __future__ import annotations

from typing import Any

from adapter.api import store
from adapter.api.errors import ApiError
from adapter.api.principal import Principal
from adapter.api.services import Services
from adapter.logs import get_logger

log = get_logger("inbound")


def _issue(severity: str, code: str, text: str, where: str | None = None) -> dict[str, Any]:
    from mappings.identifiers import mask_text

    issue: dict[str, Any] = {"severity": severity, "code": code, "details": {"text": mask_text(text)}}
    if where:
        issue["expression"] = [where]
    return issue


def take_in(svc: Services, notification: Any, principal: Principal) -> dict[str, Any]:
    """Translate and queue every change of an event notification; the NotificationResult body (plus status)."""
    from adapter.api import metrics
    from adapter.inbound import municipal
    from adapter.inbound.changes import translate
    from adapter.inbound.regional import RegionalError, RegionalReader

    result: dict[str, Any] = {"subscription": notification.subscription, "event_type": notification.event_type,
                              "changes": [], "_person_keys": [], "_status": 200}
    issues: list[dict[str, Any]] = []
    if notification.event_type != "event-notification":
        issues.append(_issue("information", "informational", f"{notification.event_type} acknowledged"))
        result["outcome"] = {"resourceType": "OperationOutcome", "issue": issues}
        return result
    settings = svc.settings
    destination = settings.municipal.destination
    if not settings.server or not destination:
        raise ApiError(503, "no regional server or municipal destination is configured", code="transient")
    fmt = settings.municipal.format
    limits = settings.limits
    with RegionalReader(settings.server, auth=svc.regional_auth, timeout=limits.fetch_timeout,
                        budget=limits.max_fetches_per_notification) as reader:
        for n, reference in enumerate(notification.focus):
            where = f"notificationEvent[{n}].focus"
            try:
                change = translate(reader, reference)
            except RegionalError as exc:
                transient = "unreachable" in str(exc) or "HTTP 5" in str(exc)
                issues.append(_issue("error", "transient" if transient else "security" if "refused" in str(exc)
                                     else "not-found", f"{reference}: {exc}", where))
                result["changes"].append({"reference": reference, "result": "failed", "detail": str(exc)})
                metrics.INBOUND.labels(reference.split("/")[0][:40] or "?", "failed").inc()
                if transient:
                    result["_status"] = 502
                continue
            rtype = change.reference.split("/")[0]
            entry: dict[str, Any] = {"reference": change.reference, "detail": change.note}
            if change.person:
                result["_person_keys"].append(svc.person_key(change.person))
            if change.document is None:
                entry["result"] = "skipped"
            elif settings.municipal.organisation and not change.parties.involves(settings.municipal.organisation):
                entry.update(result="skipped", detail=f"not for municipality {settings.municipal.organisation}")
            elif not store.claim_change(svc.engine, change.key):
                entry["result"] = "duplicate"
            else:
                try:
                    message_id = municipal.enqueue(
                        svc.outbox, change.document, destination=destination, fmt=fmt,
                        filename=change.filename(fmt), person=change.person, organisation=change.organisation,
                        source=f"notification {reference} from {principal.actor}", actor=principal.actor)
                except Exception:
                    store.release_change(svc.engine, change.key)
                    raise
                store.attach_change(svc.engine, change.key, message_id)
                entry.update(result="queued", message_id=message_id, document=change.document.kind)  # type: ignore[attr-defined]
            metrics.INBOUND.labels(rtype, entry["result"]).inc()
            issues.append(_issue("information", "informational", f"{change.reference}: {entry['result']}"
                                 + (f" ({entry['detail']})" if entry.get("detail") else ""), where))
            result["changes"].append(entry)
    result["outcome"] = {"resourceType": "OperationOutcome", "issue": issues or [
        _issue("information", "informational", "nothing to do")]}
    return result


def process_message(request: Any, svc: Services, principal: Principal, bundle: dict[str, Any]) -> Any:
    """Hand a FHIR message to ``adapter.messaging`` and answer its acknowledgement."""
    from fastapi.responses import Response

    from adapter.api.authorisation import require_submitter
    from adapter.api.errors import FHIR_JSON, body
    from adapter.api.parties import parties_of

    try:
        from adapter import messaging
    except ImportError:
        raise ApiError(501, "receiving FHIR messages is not available in this version", code="not-supported") from None
    if bundle.get("resourceType") != "Bundle" or bundle.get("type") != "message":
        raise ApiError(400, "$process-message takes a Bundle of type message", code="structure", expression="Bundle.type")
    parties = parties_of(bundle)
    from adapter.api.access import note

    note(request).person_keys = [svc.person_key(p) for p in sorted(parties.persons)]
    require_submitter(request, principal, parties)
    status, answer = messaging.receive(bundle, svc.outbox)  # type: ignore[attr-defined]
    return Response(body(answer), status_code=status, media_type=FHIR_JSON)
