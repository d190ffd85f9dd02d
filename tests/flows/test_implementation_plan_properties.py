"""Property: genomförandeplan → FHIR → genomförandeplan is exact; so is → municipal XML → back.

What is lossy, precisely: for a person with skyddad folkbokföring, address and phone never leave
(mappings.fhir.patient strips them from the Patient); nothing else of the canonical model is lost. Date-times keep their UTC offset (the
JSON of the decoded model is compared, not only the instants). Carriage returns in free text
would become line feeds in municipal XML (XML normalises line ends), so the strategies generate
no control characters; FHIR strings forbid most of them anyway. In the other direction FHIR
carries more than the model reads back: derived data (Encounter class and period, CareTeam
members, resource statuses) is rebuilt from the model, and elements no mapping writes are
ignored (see docs/flows/implementation-plan.md).
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings

from mappings import implementation_plan, municipal_xml
from mappings.models.implementation_plan import ImplementationPlan
from tests.strategies_plans import as_read_back, implementation_plans, without_protected_contact_data

SETTINGS = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@SETTINGS
@given(implementation_plans())
def test_fhir_round_trip_is_exact(plan: ImplementationPlan) -> None:
    back = implementation_plan.from_fhir(implementation_plan.to_fhir(plan))
    expected = without_protected_contact_data(plan)
    assert back == expected
    assert back.model_dump_json() == expected.model_dump_json()


@SETTINGS
@given(implementation_plans())
def test_fhir_round_trip_through_a_server_shaped_bundle_is_exact(plan: ImplementationPlan) -> None:
    back = implementation_plan.from_fhir(as_read_back(implementation_plan.to_fhir(plan), seed=len(plan.deliveries)))
    assert back.model_dump_json() == without_protected_contact_data(plan).model_dump_json()


@SETTINGS
@given(implementation_plans())
def test_municipal_xml_round_trip_is_exact(plan: ImplementationPlan) -> None:
    back = municipal_xml.from_xml(municipal_xml.to_xml(plan))
    assert back.model_dump_json() == plan.model_dump_json()


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(implementation_plans())
def test_json_round_trip_is_exact(plan: ImplementationPlan) -> None:
    assert ImplementationPlan.model_validate_json(plan.model_dump_json(exclude_none=True)) == plan


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(implementation_plans())
def test_every_produced_resource_parses_with_fhir_resources(plan: ImplementationPlan) -> None:
    from fhir.resources.R4B.bundle import Bundle

    Bundle.model_validate(implementation_plan.to_fhir(plan))
