"""Malformed payloads get an OperationOutcome with errors, never an exception (fail closed).

A check meeting an element of a shape it does not expect (an object where a list belongs, an
impossible calendar date inside an invariant) is caught per layer and per Swedish rule: what the
other checks found is kept, and an error `malformed` says the payload could not be checked to the
end, naming the exception's type only (its text may quote the payload).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapter.compliance import validate
from adapter.conversion import convert

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
BUNDLES = [json.loads(convert(path.read_bytes(), "fhir")) for path in sorted(FIXTURES.glob("*/*.json"))]


def errors(outcome: dict[str, Any]) -> list[dict[str, Any]]:
    return [i for i in outcome["issue"] if i["severity"] in ("error", "fatal")]


def first(bundle: dict[str, Any], resource_type: str) -> dict[str, Any]:
    return next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == resource_type)


def decision() -> dict[str, Any]:
    return copy.deepcopy(json.loads(convert((FIXTURES / "decision" / "hemtjanst-timmar.json").read_bytes(), "fhir")))


def test_a_meta_that_is_not_an_object() -> None:
    bundle = decision()
    first(bundle, "CarePlan")["meta"] = True
    found = errors(validate(bundle))
    assert any(i["code"] == "structure" for i in found), found


def test_a_consent_provision_code_that_is_a_number() -> None:
    bundle = decision()
    first(bundle, "Consent")["provision"]["code"] = 1
    found = errors(validate(bundle))
    assert found and all("Traceback" not in json.dumps(i) for i in found)


def test_an_impossible_date_inside_an_invariant() -> None:
    bundle = decision()
    first(bundle, "CarePlan")["period"] = {"start": "2026-02-30", "end": "2026-03-01"}
    found = errors(validate(bundle))
    assert any(i.get("expression", [""])[0].endswith("resource.period.start") for i in found), found


ODD = st.sampled_from([[], [1], {}, {"a": 1}, None, 0, 1.5, True, "", "2026-02-30", "2026-13-01T25:00:00Z", [[]], [{}], [None]])


def places(node: Any, path: tuple = ()) -> list[tuple]:
    """Every key and list index below `node`, as paths."""
    if isinstance(node, dict):
        items = node.items()
    elif isinstance(node, list):
        items = enumerate(node)
    else:
        return []
    out = []
    for key, value in items:
        out.append((*path, key))
        out.extend(places(value, (*path, key)))
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_no_mutation_makes_the_engine_raise(data: st.DataObject) -> None:
    bundle = copy.deepcopy(data.draw(st.sampled_from(BUNDLES)))
    for _ in range(data.draw(st.integers(1, 3))):
        *parents, last = data.draw(st.sampled_from(places(bundle)))
        node = bundle
        for key in parents:
            node = node[key] if isinstance(node, (dict, list)) and (isinstance(node, dict) or isinstance(key, int)) else None
            if node is None:
                break
        if isinstance(node, dict) or (isinstance(node, list) and isinstance(last, int) and last < len(node)):
            node[last] = copy.deepcopy(data.draw(ODD))  # a fresh value: a later mutation must not reach ODD itself
    outcome = validate(bundle)
    assert outcome["resourceType"] == "OperationOutcome" and outcome["issue"]


@pytest.mark.parametrize("payload", [[], "Bundle", {"resourceType": ["Bundle"]}, {"resourceType": "Bundle", "entry": {"x": 1}}])
def test_payloads_of_the_wrong_shape(payload: Any) -> None:
    assert errors(validate(payload))
