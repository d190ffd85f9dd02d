"""Canonical municipal documents that only the region produces: the status of an assignment (uppdrag).

The provider Task of a decision carries the assignment loop (requested -> accepted ->
in-progress; on-hold while the person is in hospital; completed / cancelled). When the region's
server changes it, the municipality gets this document, in canonical JSON or municipal XML.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field

from mappings.models.common import BusinessId, Model, NonEmpty, Organisation, Personnummer

TaskStatus = Literal["draft", "requested", "received", "accepted", "rejected", "ready", "cancelled", "in-progress",
                     "on-hold", "failed", "completed", "entered-in-error"]


class Source(Model):
    """Where a regional change was read: the server and the resource version."""

    server: NonEmpty
    reference: NonEmpty = Field(description="Type/id/_history/version on the regional server")
    last_updated: dt.datetime | None = None


class AssignmentStatus(Model):
    """Uppdragsstatus: the regional status of one insats' assignment to its utförare."""

    kind: Literal["assignment-status"] = "assignment-status"
    decision_id: BusinessId
    insats_id: BusinessId
    status: TaskStatus
    status_reason: NonEmpty | None = None
    business_status: NonEmpty | None = None
    personnummer: Personnummer
    performer: Organisation | None = Field(default=None, description="utförare (Task.owner)")
    municipality: Organisation | None = Field(default=None, description="the deciding municipality (Task.requester)")
    source: Source
