"""Händelser vid utskrivning (lag 2017:612): the events slutenvården sends the kommun, one per message.

This is what the municipality's system receives: which person, which event, when, from which
hospital unit, the hospital stay (vårdtillfälle) with its times, and for planning information
what the hospital has assessed. Which fields each event must and may carry is data (the
`discharge-event` table), so an admission notice can never carry more than it needs.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, model_validator

from mappings import terminology
from mappings.models.common import BusinessId, Model, NonEmpty, Organisation, Person, Staff, table_code

EventType = table_code("discharge-event")
DischargeDestination = table_code("discharge-destination")
#: A message's Bundle.id or MessageHeader.id: a UUID in lower case (MedCom style).
FhirId = Annotated[str, Field(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]
Endpoint = Annotated[str, Field(pattern=r"^(https?://|urn:)\S+$", max_length=512)]


def _aware(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None:
        raise ValueError("a time needs its UTC offset (e.g. 2026-06-02T08:15:00+02:00)")
    return value


#: A point in time with its UTC offset (FHIR instant / dateTime with time).
Instant = Annotated[dt.datetime, AfterValidator(_aware)]


class HospitalStay(Model):
    """Vårdtillfälle: the inpatient stay the event is about (the message's Encounter)."""

    encounter_id: BusinessId
    admitted_at: Instant
    expected_discharge: dt.date | None = Field(default=None, description="beräknat utskrivningsdatum")
    ready_for_discharge_at: Instant | None = Field(default=None, description="when the physician judged the person utskrivningsklar")
    discharged_at: Instant | None = None
    discharge_destination: DischargeDestination | None = None

    @model_validator(mode="after")
    def _in_order(self) -> "HospitalStay":
        for name in ("ready_for_discharge_at", "discharged_at"):
            value = getattr(self, name)
            if value is not None and value < self.admitted_at:
                raise ValueError(f"stay {self.encounter_id}: {name} is before admitted_at")
        return self


class PlanningInformation(Model):
    """Planeringsinformation: what slutenvården has assessed the person will need after discharge."""

    summary: NonEmpty
    needs: list[NonEmpty] = Field(default_factory=list, description="bedömda behov av insatser efter utskrivning", json_schema_extra={"xml_item": "need"})
    spu_needed: bool = Field(default=False, description="a samordnad plan vid utskrivning (SPU) is needed")
    contact: Staff | None = Field(default=None, description="ansvarig sjuksköterska or fast vårdkontakt at the ward")


class DischargeEvent(Model):
    """One discharge-process message: inskrivning, planeringsinformation, utskrivningsklar (or its recall), utskrivning."""

    kind: Literal["discharge"] = "discharge"
    message_id: FhirId = Field(description="MessageHeader.id")
    bundle_id: FhirId | None = Field(default=None, description="Bundle.id, when not the one derived from message_id")
    event: EventType
    sent_at: Instant
    previous_message_id: FhirId | None = Field(default=None, description="the message this one follows in the thread (Provenance)")
    sender: Organisation = Field(description="the sending hospital unit (avdelning)")
    receiver: Organisation = Field(description="the receiving kommun (or vårdcentral)")
    source_endpoint: Endpoint = Field(description="where the acknowledgement goes")
    destination_endpoint: Endpoint
    person: Person
    stay: HospitalStay
    planning: PlanningInformation | None = None
    cancellation_reason: NonEmpty | None = None

    @model_validator(mode="after")
    def _fits_the_event(self) -> "DischargeEvent":
        row = terminology.row("discharge-event", self.event)
        present = {path for path in _OPTIONAL_PATHS if _get(self, path) is not None}
        missing = [p for p in row["required"] if p not in present]
        if missing:
            raise ValueError(f"a {self.event} message needs {', '.join(missing)}")
        extra = sorted(present - set(row["allowed"]))
        if extra:
            raise ValueError(f"a {self.event} message carries no {', '.join(extra)} (data minimisation)")
        if self.person.address is not None or self.person.phone is not None:
            raise ValueError("a discharge message carries no address or phone of the person (data minimisation)")
        if self.previous_message_id == self.message_id:
            raise ValueError("a message cannot follow itself (previous_message_id)")
        return self


#: Canonical fields whose presence the `discharge-event` table governs.
_OPTIONAL_PATHS = (
    "stay.expected_discharge",
    "stay.ready_for_discharge_at",
    "stay.discharged_at",
    "stay.discharge_destination",
    "planning",
    "cancellation_reason",
)


def _get(model: Any, path: str) -> Any:
    for part in path.split("."):
        model = getattr(model, part)
    return model
