"""Property-based round trips: generated RIV documents → FHIR → RIV keep every element.

Each generated document is first checked against Inera's XSD (so the generator itself is honest),
then read into FHIR (every resource must parse with R4B, every entry a conditional create),
written back, checked against the XSD again and compared with the input as canonical trees.
Without `../shared` the XSD checks are left out and the round trip still runs.
RIV_EXAMPLES sets the number of generated documents per contract (default 300).
"""

from __future__ import annotations

import json
import os

from hypothesis import HealthCheck, given, settings

from mappings.riv import care_plans, care_services
from tests.riv import oracle
from tests.riv.riv_strategies import care_plans_responses, care_services_responses

EXAMPLES = int(os.environ.get("RIV_EXAMPLES", "300"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _round_trip(contract: str, module, xml: bytes) -> None:
    with_xsd = oracle.SHARED_RIV.is_dir()  # without ../shared the round trip still runs, unvalidated
    if with_xsd:
        assert not oracle.xsd_errors(contract, xml), "generator produced an invalid document: " + "; ".join(oracle.xsd_errors(contract, xml))
    bundle = module.to_fhir(xml)
    oracle.assert_r4b(bundle)
    oracle.assert_idempotent_entries(bundle)
    bundle = json.loads(json.dumps(bundle))  # plain JSON on the wire
    out = module.from_fhir(bundle)
    if with_xsd:
        oracle.assert_valid(contract, out)
    assert oracle.same_tree(xml, out), oracle.first_difference(xml, out)
    assert module.to_fhir(out) == bundle, "the Bundle of the written document differs (not idempotent)"


@SETTINGS
@given(care_services_responses())
def test_care_services_round_trip_keeps_every_element(xml: bytes) -> None:
    _round_trip("care-services", care_services, xml)


@SETTINGS
@given(care_plans_responses())
def test_care_plans_round_trip_keeps_every_element(xml: bytes) -> None:
    _round_trip("care-plans", care_plans, xml)
