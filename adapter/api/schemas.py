"""Response bodies of the API (pydantic models, so /openapi.json describes them)."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, Field

Status = Literal["accepted", "validated", "queued", "delivered", "dead-lettered", "discarded"]


class OperationOutcome(BaseModel):
    """A FHIR R4 OperationOutcome (only the shape is described here)."""

    model_config = {"extra": "allow"}
    resourceType: Literal["OperationOutcome"] = "OperationOutcome"
    issue: list[dict[str, Any]] = Field(default_factory=list)


class HistoryEntry(BaseModel):
    """One step a document went through."""

    status: str
    at: dt.datetime | None = None
    detail: str | None = None


class DocumentStatus(BaseModel):
    """Where a submitted document is: queued, delivered or dead-lettered, with its OperationOutcome."""

    message_id: int
    flow: str | None = None
    status: Status
    stage: str | None = Field(default=None, description="for a dead letter: validation, delivery, conflict or exhausted")
    destination: str
    person: str | None = Field(default=None, description="the person, masked (YYYYMMDD****)")
    attempts: int
    last_error: str | None = None
    result: dict[str, Any] | None = Field(default=None, description="the server's answer on delivery, summarised")
    outcome: OperationOutcome
    history: list[HistoryEntry]
    links: dict[str, str]


class DeadLetter(BaseModel):
    """A document that could not be delivered, with the server's or validator's answer."""

    dead_letter_id: int
    message_id: int
    stage: str
    http_status: int | None = None
    error: str
    outcome: OperationOutcome | None = None
    destination: str
    person: str | None = None
    created_at: dt.datetime
    links: dict[str, str]


class DeadLetters(BaseModel):
    """Dead letters the caller may see, newest first."""

    total: int
    items: list[DeadLetter]


class NotificationResult(BaseModel):
    """What a subscription notification led to, per focus resource."""

    subscription: str | None = None
    event_type: str
    changes: list[dict[str, Any]]
    outcome: OperationOutcome
