"""carebridge catches at least what fhir.resources (R4B, the reference model) catches.

On the negative corpus and the official examples of the exchanged types, every payload the R4B
models refuse to parse must also be rejected by the engine.
"""

from __future__ import annotations

from fhir.resources.R4B import get_fhir_model_class

from adapter.compliance import has_errors, validate
from tests.compliance.conftest import HERE, load
from tests.compliance.test_negative_corpus import context_of
from tests.compliance.test_official_examples import examples


def r4b_rejects(resource: dict) -> bool:
    try:
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    except Exception:  # noqa: BLE001 - any refusal counts
        return True
    return False


def test_negative_corpus_superset_of_r4b():
    missed = []
    for path in sorted((HERE / "negative").glob("*.json")):
        case = load(path)
        try:
            refused = r4b_rejects(case["resource"])
        except KeyError:  # an unknown resourceType: R4B has no model for it either
            refused = True
        if refused and not has_errors(validate(case["resource"], case.get("profile"), context=context_of(case))):
            missed.append(path.name)
    assert not missed


def test_official_examples_superset_of_r4b(r4_package):
    missed = [name for name, res in examples(r4_package) if r4b_rejects(res) and not has_errors(validate(res))]
    assert not missed
