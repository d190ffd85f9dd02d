"""Mottagningspunkt: the municipality's end of the discharge-process messages.

`Receiver.process(bundle)` takes one message Bundle from slutenvården and returns the
acknowledgement message that answers it:

1. Dedupe on (Bundle.id, MessageHeader.id), MedCom's four cases:
   both new → process; both seen → the stored acknowledgement, byte for byte, nothing else
   happens; MessageHeader.id seen in another Bundle → fatal-error `dubblett-meddelandehuvud`
   (a resubmission is not processed twice); Bundle.id seen with another MessageHeader.id →
   fatal-error `bundle-id-ateranvant`.
2. Check it: an event this receiver takes, addressed to an organisation it serves, valid
   against base R4, the project's profiles and the Swedish rules (data minimisation included),
   and readable as a canonical `DischargeEvent`. Any failure → fatal-error with an OperationOutcome.
3. Apply it: pause or resume the person's provider Tasks on the regional server
   (`effects.TaskEffects`), then hand the canonical event to the municipal system (`Inbox`).
   A network or server problem on the way → transient-error: nothing is stored, so the
   sender's resend is processed afresh (every step is idempotent).
4. Store the receipt (ok and fatal-error acknowledgements) and answer.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pydantic import ValidationError

from adapter.gateway import CircuitOpen, DeliveryError, Permanent, Transient
from adapter.gateway.errors import Interrupted
from adapter.logs import get_logger
from adapter.messaging.effects import TaskChange, TaskEffects, task_effect
from adapter.messaging.receipts import Receipt, ReceiptStore
from mappings import discharge, systems, terminology
from mappings.identifiers import mask_text
from mappings.models.discharge import DischargeEvent

log = get_logger("messaging.receiver")
Validator = Callable[[dict[str, Any]], dict[str, Any]]


class NotAMessageError(ValueError):
    """Input that is not a FHIR message Bundle with a MessageHeader first: there is nothing to acknowledge."""


class Inbox(Protocol):
    """The municipal system's side: receives each accepted event as its canonical model."""

    def deliver(self, event: DischargeEvent) -> None:
        """Take one event (called again with the same event after a transient failure)."""
        ...


class DirectoryInbox:
    """Writes each accepted event as canonical JSON and municipal XML, `<message_id>.json/.xml`."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def deliver(self, event: DischargeEvent) -> None:
        from mappings import municipal_xml

        body = (json.dumps(event.model_dump(mode="json", exclude_none=True), ensure_ascii=False, indent=2) + "\n").encode("utf-8")
        self._write(f"{event.message_id}.json", body)
        self._write(f"{event.message_id}.xml", municipal_xml.to_xml(event))

    def _write(self, name: str, data: bytes) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".incoming-")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, self.directory / name)


@dataclass
class Processed:
    """What the receiver did with one message."""

    acknowledgement: bytes
    code: str
    duplicate: bool = False
    event: DischargeEvent | None = None
    changes: list[TaskChange] = field(default_factory=list)

    @property
    def ack(self) -> dict[str, Any]:
        return json.loads(self.acknowledgement)


def encode(bundle: dict[str, Any]) -> bytes:
    """The bytes an acknowledgement is sent (and stored) as."""
    return json.dumps(bundle, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def issue(code: str, text: str, expression: str | None = None) -> dict[str, Any]:
    """An OperationOutcome issue for an acknowledgement, coded from the acknowledgement-error table."""
    row = terminology.row("acknowledgement-error", code)
    out: dict[str, Any] = {
        "severity": "fatal" if row["response"] == "fatal-error" else "error",
        "code": row["issue_type"],
        "details": {"coding": [terminology.coding("acknowledgement-error", code)], "text": mask_text(text)},
    }
    if expression:
        out["expression"] = [expression]
    return out


def _default_validator(bundle: dict[str, Any]) -> dict[str, Any]:
    from adapter.compliance import validate

    return validate(bundle)


class _Refused(Exception):
    """Processing stops with a not-ok acknowledgement (`code`, `issues`)."""

    def __init__(self, error: str, text: str, expression: str | None = None, extra: Iterable[dict] = ()) -> None:
        super().__init__(text)
        self.response = terminology.row("acknowledgement-error", error)["response"]
        self.issues = [issue(error, text, expression), *extra]


class Receiver:
    """Processes discharge-process messages and answers each with an acknowledgement."""

    def __init__(
        self,
        store: ReceiptStore,
        *,
        effects: TaskEffects | None = None,
        inbox: Inbox | None = None,
        serves: Iterable[str] | None = None,
        validator: Validator | None = _default_validator,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.timezone.utc),
    ) -> None:
        """`serves`: HSA-ids / organisationsnummer this endpoint receives for (None: any)."""
        self.store = store
        self.effects = effects
        self.inbox = inbox
        self.serves = set(serves) if serves is not None else None
        self.validator = validator
        self.clock = clock

    def receive(self, body: bytes) -> bytes:
        """Process a message given as bytes; the acknowledgement's bytes."""
        try:
            bundle = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise NotAMessageError(f"not JSON: {exc}") from None
        return self.process(bundle).acknowledgement

    def process(self, bundle: Any) -> Processed:
        """Process one message Bundle: dedupe, check, apply, store, answer."""
        if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle" or bundle.get("type") != "message":
            raise NotAMessageError("a FHIR message is a Bundle of type 'message'")
        bundle_id, header_id = discharge.message_ids(bundle)
        if header_id is None:
            raise NotAMessageError("the first entry of a message Bundle is a MessageHeader with an id")
        now = self.clock()
        if not bundle_id:
            return self._answer(bundle, "fatal-error", [issue("ogiltigt-meddelande", "Bundle.id is missing: it is the message's dedupe key", "Bundle.id")], now, store=False)
        seen = self.store.seen(bundle_id, header_id)
        if seen.same is not None:
            log.info("duplicate message answered with the stored acknowledgement", extra={"bundle_id": bundle_id, "header_id": header_id})
            return Processed(seen.same.acknowledgement, seen.same.response_code, duplicate=True)
        try:
            if seen.header_elsewhere:
                raise _Refused("dubblett-meddelandehuvud", f"MessageHeader.id {header_id} was received before in another Bundle; a resubmission is not processed twice", "Bundle.entry[0].resource.id")
            if seen.bundle_elsewhere:
                raise _Refused("bundle-id-ateranvant", f"Bundle.id {bundle_id} was used before for another message; Bundle ids are never reused", "Bundle.id")
            event = self._check(bundle)
            changes = self._apply(event, now)
        except _Refused as refused:
            return self._answer(bundle, refused.response, refused.issues, now, store=refused.response == "fatal-error")
        return self._answer(bundle, "ok", [], now, store=True, event=event, changes=changes)

    # --- steps --------------------------------------------------------------------------

    def _check(self, bundle: dict[str, Any]) -> DischargeEvent:
        header = bundle["entry"][0]["resource"]
        coding = header.get("eventCoding") or {}
        if coding.get("system") != systems.CS_DISCHARGE_EVENT or coding.get("code") not in terminology.table("discharge-event"):
            raise _Refused("meddelandetyp-stods-ej", f"event {coding.get('system')}|{coding.get('code')} is not a discharge-process event this receiver takes", "Bundle.entry[0].resource.eventCoding")
        if self.serves is not None:
            receiver = discharge.addressee(bundle)
            if not receiver & self.serves:
                raise _Refused("okand-mottagare", "MessageHeader.destination.receiver is not an organisation this endpoint receives for", "Bundle.entry[0].resource.destination[0].receiver")
        if self.validator is not None:
            outcome = self.validator(bundle)
            errors = [i for i in outcome.get("issue", ()) if i.get("severity") in ("error", "fatal")]
            if errors:
                first = errors[0]
                text = f"{len(errors)} error(s); first: {', '.join(first.get('expression', ()))}: {(first.get('details') or {}).get('text', '')}"
                raise _Refused("ogiltigt-meddelande", text, None, errors[:20])
        try:
            return discharge.from_fhir(bundle)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            raise _Refused("ogiltigt-meddelande", f"cannot read the message as a discharge event: {where}: {err['msg']}") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise _Refused("ogiltigt-meddelande", f"cannot read the message as a discharge event: {exc}") from None

    def _apply(self, event: DischargeEvent, now: dt.datetime) -> list[TaskChange]:
        effect = task_effect(event)
        if effect == "pause" and self._discharged_already(event):
            log.info("admission older than a discharge already processed: tasks not paused", extra={"header_id": event.message_id})
            effect = None
        changes: list[TaskChange] = []
        try:
            if self.effects is not None:
                changes = self.effects.apply(event, effect, at=now)
            if self.inbox is not None:
                self.inbox.deliver(event)
        except (Transient, CircuitOpen, Interrupted, OSError) as exc:
            raise _Refused("tillfalligt-fel", f"the receiver could not complete the message now ({type(exc).__name__}: {exc}); send it again later") from None
        except (Permanent, DeliveryError) as exc:
            raise _Refused("bearbetning-misslyckades", f"the receiver could not apply the message ({type(exc).__name__}: {exc}); it needs manual handling") from None
        return changes

    def _discharged_already(self, event: DischargeEvent) -> bool:
        for earlier in self.store.stay_events(stay_key(event)):
            if earlier.event and terminology.row("discharge-event", earlier.event)["task_effect"] == "resume" and earlier.sent_at and earlier.sent_at >= event.sent_at:
                return True
        return False

    def _answer(self, bundle: dict, code: str, issues: list[dict], now: dt.datetime, *, store: bool,
                event: DischargeEvent | None = None, changes: list[TaskChange] | None = None) -> Processed:
        ack = encode(discharge.acknowledgement(bundle, code, issues, at=now))
        bundle_id, header_id = discharge.message_ids(bundle)
        if store and bundle_id and header_id:
            kept = self.store.record(Receipt(
                bundle_id=bundle_id, header_id=header_id, response_code=code, acknowledgement=ack, received_at=now,
                event=event.event if event else None, stay_key=stay_key(event) if event else None,
                sent_at=event.sent_at if event else None,
            ))
            if kept.acknowledgement != ack:  # a concurrent copy of the same message was answered first
                return Processed(kept.acknowledgement, kept.response_code, duplicate=True)
        log.info("message acknowledged", extra={"bundle_id": bundle_id, "header_id": header_id, "code": code,
                                               "event": event.event if event else None, "tasks_changed": len(changes or ())})
        return Processed(ack, code, event=event, changes=list(changes or ()))


def stay_key(event: DischargeEvent) -> str:
    """The hospital stay an event belongs to: sending organisation and vårdtillfälle id."""
    sender = event.sender.hsa_id or event.sender.organisationsnummer or event.sender.name
    return f"{sender}|{event.stay.encounter_id}"
