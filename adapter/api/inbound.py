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
                _remember(svc, message_id, change.document, principal, change.parties)
                entry.update(result="queued", message_id=message_id, document=change.document.kind)  # type: ignore[attr-defined]
            metrics.INBOUND.labels(rtype, entry["result"]).inc()
            issues.append(_issue("information", "informational", f"{change.reference}: {entry['result']}"
                                 + (f" ({entry['detail']})" if entry.get("detail") else ""), where))
            result["changes"].append(entry)
    result["outcome"] = {"resourceType": "OperationOutcome", "issue": issues or [
        _issue("information", "informational", "nothing to do")]}
    return result


def _remember(svc: Services, message_id: int, document: Any, principal: Principal, parties: Any) -> None:
    """Record a municipal delivery like a submitted document (who caused it, whom it involves, whether its
    person is protected), so its status and dead letter are shown only to whom the document may be shown."""
    store.remember_document(svc.engine, message_id, flow=f"municipal {document.kind}", submitter=principal.organisation,
                            submitted_by=principal.actor, parties=parties)


class OutboxInbox:
    """The municipal side of received messages: each accepted event is queued for the municipal destination."""

    def __init__(self, svc: Services, destination: str, principal: Principal, parties: Any) -> None:
        self.svc = svc
        self.destination = destination
        self.principal = principal
        self.actor = principal.actor
        self.parties = parties

    def deliver(self, event: Any) -> None:
        """Queue the canonical event (JSON or municipal XML) in the outbox; a resend overwrites the same file."""
        from adapter.inbound import municipal

        fmt = self.svc.settings.municipal.format
        receiver = event.receiver.hsa_id or event.receiver.organisationsnummer if getattr(event, "receiver", None) else None
        message_id = municipal.enqueue(self.svc.outbox, event, destination=self.destination, fmt=fmt,
                                       filename=municipal.safe_filename(f"discharge-{event.message_id}") + f".{fmt}",
                                       person=event.person.personnummer, organisation=receiver,
                                       source=f"$process-message {event.message_id}", actor=self.actor)
        _remember(self.svc, message_id, event, self.principal, self.parties)


def process_message(request: Any, svc: Services, principal: Principal, bundle: dict[str, Any]) -> Any:
    """Hand a FHIR message to the discharge receiver (``adapter.messaging``) and answer its acknowledgement.

    The receiver dedupes, validates (as a transfer to the municipal destination's huvudman), pauses or resumes the person's provider Tasks on the regional
    server, and gives the event to the municipality through the outbox; its acknowledgement
    message is the answer (200 whatever its response code, as $process-message defines).
    """
    from fastapi.responses import Response

    from adapter.api.access import note
    from adapter.api.authorisation import require_submitter
    from adapter.api.errors import FHIR_JSON
    from adapter.api.parties import parties_of
    from adapter.compliance import validate
    from adapter.compliance.context import ValidationContext
    from adapter.messaging import NotAMessageError, Receiver, SqlReceiptStore, TaskEffects

    if bundle.get("resourceType") != "Bundle" or bundle.get("type") != "message":
        raise ApiError(400, "$process-message takes a Bundle of type message", code="structure", expression="Bundle.type")
    parties = parties_of(bundle)
    note(request).person_keys = [svc.person_key(p) for p in sorted(parties.persons)]
    require_submitter(request, principal, parties)
    destination = svc.settings.municipal.destination
    if not destination or not svc.settings.server:
        raise ApiError(503, "no municipal destination or regional server is configured", code="transient")
    organisation = svc.settings.municipal.organisation
    context = ValidationContext(receiver_huvudman=svc.settings.municipal.huvudman)
    receiver = Receiver(SqlReceiptStore(svc.engine), effects=TaskEffects(svc.effects_gateway()),
                        inbox=OutboxInbox(svc, destination, principal, parties),
                        serves=[organisation] if organisation else None,
                        validator=lambda message: validate(message, context=context))
    try:
        processed = receiver.process(bundle)
    except NotAMessageError as exc:
        raise ApiError(400, f"not a FHIR message: {exc}", code="structure") from None
    except (ValueError, KeyError, TypeError, AttributeError) as exc:  # a receiver crash on odd input: 4xx, logged
        log.exception("message could not be processed")
        raise ApiError(400, f"the message could not be processed ({type(exc).__name__})", code="structure") from None
    return Response(processed.acknowledgement, media_type=FHIR_JSON)
