"""Swedish person and organisation identifiers: checks, classification and masking.

- personnummer: 12 digits YYYYMMDDNNNC, a real date, Luhn check digit over the last ten.
- samordningsnummer: like a personnummer but the day is increased by 60.
- organisationsnummer: 10 digits, Luhn check digit; the third digit is at least 2.
"""

from __future__ import annotations

import datetime as _dt
import re

from mappings import systems

_TWELVE_DIGITS = re.compile(r"^\d{12}$")
_TEN_DIGITS = re.compile(r"^\d{10}$")


class IdentifierError(ValueError):
    """A personal or organisational identifier that fails its check."""


def luhn_ok(digits: str) -> bool:
    """True if the string of digits passes the Luhn (modulus 10) check."""
    backwards = digits[::-1]  # from the check digit: every second digit doubled (its digit sum)
    total = sum(map(int, backwards[0::2])) + sum([_DOUBLED[int(ch)] for ch in backwards[1::2]])
    return total % 10 == 0


#: The digit sum of twice a digit (what the Luhn check adds for every second digit).
_DOUBLED = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)


def personnummer_problem(value: object) -> str | None:
    """Why `value` is not a valid personnummer or samordningsnummer, or None if it is."""
    if not isinstance(value, str):
        return "personnummer must be a string of 12 digits"
    if not _TWELVE_DIGITS.match(value):
        return "personnummer must be 12 digits (YYYYMMDDNNNC) without separators"
    year, month, day = int(value[0:4]), int(value[4:6]), int(value[6:8])
    kind = "personnummer"
    if day > 60:
        day -= 60
        kind = "samordningsnummer"
    try:
        _dt.date(year, month, day)
    except ValueError:
        return f"{kind} {mask(value)} has no real birth date"
    if not luhn_ok(value[2:]):
        return f"{kind} {mask(value)} has a wrong check digit"
    return None


def check_personnummer(value: object) -> str:
    """Return `value` if it is a valid personnummer/samordningsnummer, else raise IdentifierError."""
    problem = personnummer_problem(value)
    if problem:
        raise IdentifierError(problem)
    return value  # type: ignore[return-value]


def is_samordningsnummer(value: str) -> bool:
    """True if a (valid) 12-digit number is a samordningsnummer (day + 60)."""
    return int(value[6:8]) > 60


def person_identifier_system(value: str) -> str:
    """The FHIR identifier system for a personnummer or samordningsnummer."""
    return systems.SAMORDNINGSNUMMER if is_samordningsnummer(value) else systems.PERSONNUMMER


def birth_date(value: str) -> _dt.date:
    """The birth date encoded in a personnummer or samordningsnummer."""
    day = int(value[6:8])
    return _dt.date(int(value[0:4]), int(value[4:6]), day - 60 if day > 60 else day)


def organisationsnummer_problem(value: object) -> str | None:
    """Why `value` is not a valid organisationsnummer, or None if it is."""
    if not isinstance(value, str) or not _TEN_DIGITS.match(value):
        return "organisationsnummer must be 10 digits without separators"
    if int(value[2]) < 2:
        return f"organisationsnummer {value} must have a third digit of at least 2"
    if not luhn_ok(value):
        return f"organisationsnummer {value} has a wrong check digit"
    return None


def with_check_digit(first_eleven: str) -> str:
    """Complete 11 digits (YYYYMMDDNNN) into a 12-digit number with its Luhn digit."""
    body = first_eleven[2:]
    for c in "0123456789":
        if luhn_ok(body + c):
            return first_eleven + c
    raise AssertionError("unreachable")  # pragma: no cover


_PNR_IN_TEXT = re.compile(r"(?<!\d)(\d{6}|\d{8})([-+]?)(\d{4})(?!\d)")


def mask(value: str) -> str:
    """Mask a personnummer for logs: keep the birth year and month, hide the rest."""
    if len(value) >= 8 and value[:8].isdigit():
        return value[:6] + "*" * (len(value) - 6)
    return "*" * len(value)


def mask_text(text: str) -> str:
    """Mask anything in free text that looks like a personnummer (10 or 12 digits)."""
    return _PNR_IN_TEXT.sub(lambda m: m.group(1)[:-2] + "**" + m.group(2) + "****", text)
