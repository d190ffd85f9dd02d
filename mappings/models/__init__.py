"""Canonical municipal document models (pydantic v2), one module per flow.

`DOCUMENT_KINDS` maps the `kind` tag every canonical JSON document carries to its model,
so readers can pick the model without guessing.
"""

from __future__ import annotations

from importlib import import_module

#: kind tag -> "module:Class"; new flows add one line.
DOCUMENT_KINDS: dict[str, str] = {
    "decision": "mappings.models.decision:CareDecision",
    "implementation-plan": "mappings.models.implementation_plan:ImplementationPlan",
    "rehab-plan": "mappings.models.rehab_plan:RehabPlan",
    "sip": "mappings.models.sip:CoordinatedPlan",
    "discharge": "mappings.models.discharge:DischargeEvent",
}


def model_for(kind: str):
    """The model class for a canonical document kind."""
    try:
        module, cls = DOCUMENT_KINDS[kind].split(":")
    except KeyError:
        raise ValueError(f"unknown document kind {kind!r}; known: {', '.join(DOCUMENT_KINDS)}") from None
    return getattr(import_module(module), cls)
