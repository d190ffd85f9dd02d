"""The registry of flows: which canonical kind maps to FHIR through which module.

A flow module exposes `to_fhir(model) -> Bundle` and `from_fhir(Bundle) -> model`.
`marker_profiles` are the profiles whose presence in a Bundle says "this is that flow",
and `riv` names the RIV-TA contract a flow's FHIR is exported to.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from types import ModuleType
from typing import Any

from mappings import systems


@dataclass(frozen=True)
class Flow:
    """One flow: its document kind, mapping module, marker profiles and RIV contract."""

    kind: str
    module: str
    marker_profiles: tuple[str, ...]
    riv: str  # "care-services" | "care-plans" | "" (no RIV-TA contract)
    #: How the flow's Bundle is delivered: "transaction" (POST [base]) or "message"
    #: (a message Bundle to POST [base]/$process-message, answered by an acknowledgement).
    delivery: str = "transaction"

    def mapping(self) -> ModuleType:
        return import_module(self.module)


FLOWS: dict[str, Flow] = {
    "decision": Flow("decision", "mappings.decision", (systems.PROFILE_DECISION_SERVICE_REQUEST,), "care-services"),
    "implementation-plan": Flow("implementation-plan", "mappings.implementation_plan", (systems.PROFILE_IMPLEMENTATION_PLAN_CAREPLAN,), "care-plans"),
    "rehab-plan": Flow("rehab-plan", "mappings.rehab_plan", (systems.PROFILE_REHAB_CAREPLAN,), "care-plans"),
    "sip": Flow("sip", "mappings.sip", (systems.PROFILE_SIP_CAREPLAN,), "care-plans"),
    "discharge": Flow("discharge", "mappings.discharge", (systems.PROFILE_DISCHARGE_MESSAGEHEADER,), "", delivery="message"),
}


class UnknownFlowError(ValueError):
    """A FHIR Bundle that carries no carebridge flow this version understands."""


def flow_of_bundle(bundle: dict[str, Any]) -> Flow:
    """The flow a FHIR Bundle carries, recognised by the profiles its resources claim."""
    claimed = set()
    for entry in bundle.get("entry", ()) or ():
        res = entry.get("resource") or {}
        claimed.update((res.get("meta") or {}).get("profile", ()) or ())
    for flow in FLOWS.values():
        if claimed.intersection(flow.marker_profiles):
            return flow
    raise UnknownFlowError(
        "the FHIR Bundle carries no carebridge document (no resource claims a carebridge profile of: "
        + ", ".join(FLOWS)
        + ")"
    )
