"""Property: rehabiliteringsplan → FHIR → rehabiliteringsplan is exact; so is → municipal XML → back.

What is lossy, precisely: for a person with skyddad folkbokföring, address and phone never leave
(mappings.fhir.patient strips them from the Patient); nothing else of the canonical model is lost. The plan's status, the Goals'
lifecycleStatus, the follow-up ServiceRequests' status and the CareTeam are derived from the
model when encoding and not read back. Free text carries no control characters (see
test_implementation_plan_properties.py).
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings

from mappings import municipal_xml, rehab_plan
from mappings.models.rehab_plan import RehabPlan
from tests.strategies_plans import as_read_back, rehab_plans, without_protected_contact_data

SETTINGS = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@SETTINGS
@given(rehab_plans())
def test_fhir_round_trip_is_exact(plan: RehabPlan) -> None:
    back = rehab_plan.from_fhir(rehab_plan.to_fhir(plan))
    expected = without_protected_contact_data(plan)
    assert back == expected
    assert back.model_dump_json() == expected.model_dump_json()


@SETTINGS
@given(rehab_plans())
def test_fhir_round_trip_through_a_server_shaped_bundle_is_exact(plan: RehabPlan) -> None:
    back = rehab_plan.from_fhir(as_read_back(rehab_plan.to_fhir(plan), seed=len(plan.events)))
    assert back.model_dump_json() == without_protected_contact_data(plan).model_dump_json()


@SETTINGS
@given(rehab_plans())
def test_municipal_xml_round_trip_is_exact(plan: RehabPlan) -> None:
    back = municipal_xml.from_xml(municipal_xml.to_xml(plan))
    assert back.model_dump_json() == plan.model_dump_json()


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rehab_plans())
def test_json_round_trip_is_exact(plan: RehabPlan) -> None:
    assert RehabPlan.model_validate_json(plan.model_dump_json(exclude_none=True)) == plan


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rehab_plans())
def test_every_produced_resource_parses_with_fhir_resources(plan: RehabPlan) -> None:
    from fhir.resources.R4B.bundle import Bundle

    Bundle.model_validate(rehab_plan.to_fhir(plan))
