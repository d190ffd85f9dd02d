"""Personnummer, samordningsnummer and organisationsnummer checks, and masking."""

from __future__ import annotations

import pytest

from mappings import identifiers, systems


@pytest.mark.parametrize("value", ["191212121212", "193802142384", "194703611154", "196611043396"])
def test_valid_numbers_pass(value: str) -> None:
    assert identifiers.personnummer_problem(value) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("191212121213", "wrong check digit"),
        ("19121212121", "12 digits"),
        ("1912121212123", "12 digits"),
        ("19121212-1212", "12 digits"),
        ("193802302384", "no real birth date"),  # 30 February
        ("194713611154", "no real birth date"),  # month 13
        ("194702921159", "no real birth date"),  # samordningsnummer day 92 - 60 = 32
        (191212121212, "string"),
    ],
)
def test_invalid_numbers_are_named(value, expected: str) -> None:
    problem = identifiers.personnummer_problem(value)
    assert problem is not None and expected in problem
    assert "personnummer" in problem or "samordningsnummer" in problem


def test_samordningsnummer_is_recognised_and_gets_its_own_system() -> None:
    assert identifiers.is_samordningsnummer("194703611154")
    assert identifiers.person_identifier_system("194703611154") == systems.SAMORDNINGSNUMMER
    assert identifiers.person_identifier_system("193802142384") == systems.PERSONNUMMER
    assert str(identifiers.birth_date("194703611154")) == "1947-03-01"


def test_samordningsnummer_with_bad_check_digit_says_samordningsnummer() -> None:
    assert "samordningsnummer" in identifiers.personnummer_problem("194703611155")


def test_luhn_known_values() -> None:
    assert identifiers.luhn_ok("8112189876")  # Skatteverket's worked example
    assert not identifiers.luhn_ok("8112189875")


@pytest.mark.parametrize(("value", "ok"), [("2120000134", True), ("5566778899", True), ("2120000135", False), ("2100000131", False), ("212000013", False)])
def test_organisationsnummer(value: str, ok: bool) -> None:
    assert (identifiers.organisationsnummer_problem(value) is None) is ok


def test_masking_hides_the_birth_day_and_serial() -> None:
    assert identifiers.mask("193802142384") == "193802******"
    text = identifiers.mask_text("person 193802142384 and 380214-2384 called")
    assert "142384" not in text and "2384" not in text
