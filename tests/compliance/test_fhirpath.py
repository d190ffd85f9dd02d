"""The FHIRPath compiler: semantics on FHIR JSON, agreement with fhirpathpy, every R4 invariant compiles."""

from __future__ import annotations

import json
from importlib import resources

import pytest
from fhirpathpy import evaluate as fpp_evaluate
from fhirpathpy.models import models

from adapter.compliance import fhirpath
from adapter.compliance.fhirpath import Env, evaluate, truth

PATIENT = {
    "resourceType": "Patient",
    "id": "p1",
    "active": True,
    "name": [{"family": "Berg", "given": ["Anna", "Maria"]}, {"family": "Lind", "given": ["Anna"]}],
    "birthDate": "1950-02-03",
    "multipleBirthInteger": 2,
    "telecom": [{"system": "phone", "value": "070"}, {"system": "email", "value": "a@b.se"}],
    "contained": [{"resourceType": "Organization", "id": "o1", "name": "X"}],
    "managingOrganization": {"reference": "#o1"},
}

#: Expressions whose result must equal fhirpathpy's on PATIENT.
AGREEMENT = [
    "name.given",
    "name.given.first()",
    "name.given.last()",
    "name.given.tail()",
    "name.given.count()",
    "name.given.distinct()",
    "name.given.isDistinct()",
    "name.where(family = 'Lind').given",
    "name.select(given.first())",
    "name.all(given.exists())",
    "name.exists(family = 'Berg')",
    "telecom.where(system = 'email').value",
    "name.family | name.given",
    "name.family.combine(name.given).count()",
    "birthDate < '1960-01-01'",
    "birthDate.startsWith('1950')",
    "birthDate.substring(0, 4)",
    "name.family.first().length()",
    "name.family.first().upper()",
    "name.family.first() + ', ' + name.given.first()",
    "name.family.first() & ' ' & name.given.first()",
    "active and name.exists()",
    "active implies birthDate.exists()",
    "(1 + 2 * 3) = 7",
    "7 div 2 = 3 and 7 mod 2 = 1",
    "name.given contains 'Maria'",
    "'Anna' in name.given",
    "telecom.where(system = 'phone').value.matches('^[0-9]+$')",
    "iif(active, 'yes', 'no')",
    "name.given.first().indexOf('n') = 1",
    "contained.name",
    "name[1].family",
    "name.empty().not()",
    "telecom.count() > 1 xor active",
    "multipleBirth",
]


@pytest.mark.parametrize("expression", AGREEMENT)
def test_agrees_with_fhirpathpy(expression):
    mine = evaluate(expression, PATIENT)
    theirs = fpp_evaluate(PATIENT, expression, None, models["r4"])
    assert mine == theirs


@pytest.mark.parametrize("expression,expected", [
    ("start <= end", None),  # date vs dateTime at the same day: undecidable (empty), as in FHIRPath
    ("start < end", None),
])
def test_temporal_precision(expression, expected):
    node = {"start": "2023-06-21", "end": "2023-06-21T06:20:00Z"}
    assert truth(evaluate(expression, node)) is expected


@pytest.mark.parametrize("a,b,lt", [
    ("2023-06-20", "2023-06-21T06:20:00Z", True),
    ("2023-06-21T10:00:00+02:00", "2023-06-21T09:00:00Z", True),
    ("2023-06-21T10:00:00Z", "2023-06-21T09:00:00+02:00", False),
    ("2023", "2024-01", True),
])
def test_temporal_order(a, b, lt):
    assert evaluate("a < b", {"a": a, "b": b}) == [lt]


def test_choice_types_and_type_operators():
    node = {"probabilityDecimal": 101.0}
    assert evaluate("probability is decimal", node) == [True]
    assert evaluate("probability as decimal", node) == [101.0]
    assert evaluate("probability.ofType(Range)", node) == []
    assert evaluate("probability is decimal implies (probability as decimal) <= 100", node) == [False]
    assert evaluate("value.ofType(Quantity).value", {"valueQuantity": {"value": 3}}) == [3]


def test_three_valued_logic():
    assert evaluate("{} and true", {}) == []
    assert evaluate("{} and false", {}) == [False]
    assert evaluate("{} or true", {}) == [True]
    assert evaluate("{} implies false", {}) == []
    assert evaluate("false implies {}", {}) == [True]


def test_string_predicates_on_empty_are_false_like_the_java_engine():
    assert evaluate("fullUrl.contains('/_history/').not()", {"request": {}}) == [True]
    assert evaluate("reference.startsWith('#').not()", {"display": "x"}) == [True]


def test_variables_resolve_and_has_value():
    env = Env(resource=PATIENT, root=PATIENT, resolver=lambda ref, e: next(c for c in PATIENT["contained"] if "#" + c["id"] == ref["reference"]))
    assert evaluate("managingOrganization.resolve().name", PATIENT, env) == ["X"]
    assert evaluate("%resource.id", PATIENT["name"][0], Env(resource=PATIENT)) == ["p1"]
    assert evaluate("%ucum", {}) == ["http://unitsofmeasure.org"]
    assert evaluate("birthDate.hasValue()", PATIENT) == [True]
    assert evaluate("name.hasValue()", PATIENT) == [False]
    assert evaluate("given.hasValue()", {"_given": [{"extension": [{"url": "u", "valueString": "x"}]}]}) == [False]


def test_unsupported_functions_are_reported_not_guessed():
    with pytest.raises(fhirpath.Unsupported):
        fhirpath.compile("code.memberOf('http://hl7.org/fhir/ValueSet/x')")
    with pytest.raises(fhirpath.Unsupported):
        fhirpath.compile("conformsTo('http://x')")


def test_singleton_errors_raise_evalerror():
    with pytest.raises(fhirpath.EvalError):
        evaluate("name.family = 'Berg'.length() > name.given", PATIENT)


def test_every_r4_invariant_compiles():
    rules = json.loads(resources.files("adapter.compliance").joinpath("data", "r4-rules.json").read_text("utf-8"))
    failed = {}
    for key, _severity, _human, expression in rules["invariants"]:
        try:
            fhirpath.compile(expression)
        except fhirpath.Unsupported as exc:
            failed[key] = str(exc)
    assert not failed
