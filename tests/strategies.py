"""Hypothesis strategies for canonical documents, shared by the property tests of every flow."""

from __future__ import annotations

import datetime as dt

from hypothesis import strategies as st

from mappings import terminology
from mappings.identifiers import luhn_ok, with_check_digit
from mappings.models.common import Address, Organisation, Person, Staff

# Text as people write it: letters (Swedish included), digits, punctuation and single spaces;
# no control characters (not allowed in FHIR strings or XML) and no leading/trailing space.
_WORD = st.text(alphabet=st.sampled_from("abcdefghijklmnopqrstuvwxyzåäöéABCDEFGHIJKLMNOPQRSTUVWXYZÅÄÖ0123456789.,:;!?()'-/&<>\"€"), min_size=1, max_size=12)
text = st.lists(_WORD, min_size=1, max_size=8).map(" ".join)
optional_text = st.none() | text
business_id = st.text(alphabet=st.sampled_from("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789-._"), min_size=1, max_size=20).filter(lambda s: s[0].isalnum())
dates = st.dates(min_value=dt.date(1990, 1, 1), max_value=dt.date(2040, 12, 31))


@st.composite
def personnummer(draw) -> str:
    """A valid personnummer or samordningsnummer (day + 60) with its Luhn digit."""
    born = draw(st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2025, 12, 31)))
    day = born.day + (60 if draw(st.booleans()) else 0)
    serial = draw(st.integers(0, 999))
    return with_check_digit(f"{born:%Y%m}{day:02d}{serial:03d}")


@st.composite
def organisationsnummer(draw) -> str:
    body = f"{draw(st.integers(2, 9))}{draw(st.integers(0, 9))}{draw(st.integers(2, 9))}{draw(st.integers(0, 999999)):06d}"
    return next(body + c for c in "0123456789" if luhn_ok(body + c))


hsa_id = st.builds(lambda org, unit: f"SE{org}-{unit}", organisationsnummer(), business_id)

addresses = st.builds(Address, line=text, postal_code=st.none() | st.from_regex(r"\A[1-9]\d{4}\Z"), city=optional_text)
persons = st.builds(
    Person,
    personnummer=personnummer(),
    given_name=optional_text,
    family_name=optional_text,
    skyddad_folkbokforing=st.booleans(),
    address=st.none() | addresses,
    phone=st.none() | st.from_regex(r"\A\+467\d{8}\Z"),
)


@st.composite
def organisations(draw) -> Organisation:
    hsa = draw(st.none() | hsa_id)
    orgnr = draw(organisationsnummer()) if hsa is None else draw(st.none() | organisationsnummer())
    return Organisation(name=draw(text), hsa_id=hsa, organisationsnummer=orgnr, kind=draw(st.none() | st.sampled_from(terminology.codes("organisation-kind"))))


@st.composite
def staff(draw) -> Staff:
    hsa = draw(st.none() | hsa_id)
    local = draw(business_id) if hsa is None else draw(st.none() | business_id)
    return Staff(name=draw(text), hsa_id=hsa, local_id=local, title=draw(optional_text))
