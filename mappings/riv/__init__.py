"""RIV-TA clinicalprocess:logistics:logistics 3 ⇄ FHIR R4.

Two national service contracts, each with `to_fhir(xml) -> Bundle` and `from_fhir(Bundle) -> xml`:

- `mappings.riv.care_services`: GetCareServices 2.0 (kommunala insatser: HSJV, HTJ, LSS, SVTJ, SÄBO),
- `mappings.riv.care_plans`: GetCarePlans 2.0 (plans as documents: SIP, SPU, VP, HP, RP, GP, SVP, …).

The mapping, element by element, and what is lossy: docs/riv.md.
"""

from __future__ import annotations

from typing import Any

CORE_NS = "urn:riv:clinicalprocess:logistics:logistics:3"
CARE_SERVICES_NS = "urn:riv:clinicalprocess:logistics:logistics:GetCareServicesResponder:2"
CARE_PLANS_NS = "urn:riv:clinicalprocess:logistics:logistics:GetCarePlansResponder:2"

_ROOTS = {
    f"{{{CARE_SERVICES_NS}}}GetCareServicesResponse": "care-services",
    f"{{{CARE_PLANS_NS}}}GetCarePlansResponse": "care-plans",
}


class RivError(ValueError):
    """A RIV document or a FHIR Bundle that carebridge cannot translate (one-line message)."""


class RivFormatError(RivError):
    """RIV XML that does not follow its service contract (wrong element, order or value)."""


class RivWriteError(RivError):
    """A FHIR Bundle that cannot be written as RIV XML (something required is missing)."""


def detect(root_element: Any) -> str | None:
    """'care-services' or 'care-plans' for a parsed GetCareServicesResponse / GetCarePlansResponse root."""
    tag = getattr(root_element, "tag", None)
    return _ROOTS.get(tag) if isinstance(tag, str) else None
