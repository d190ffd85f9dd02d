"""Hypothesis strategies for GetCareServicesResponse and GetCarePlansResponse documents.

The documents are built directly as XML (not through `mappings.riv.model`), following Inera's
schemas: every optional element present or absent, any number of careService / carePlan,
foreign-namespace elements wherever the schema has `xs:any ##other`, empty strings where a
string may be empty, DST edge timestamps, personnummer, samordningsnummer and other id types.
"""

from __future__ import annotations

import base64
import datetime as dt
import re

from hypothesis import strategies as st
from lxml import etree

from mappings import identifiers, systems, terminology
from mappings.riv import CARE_PLANS_NS, CARE_SERVICES_NS, CORE_NS

FOREIGN_NS = "urn:example:carebridge:extra"

# XML-safe text: no surrogates, controls (except tab and newline) or non-characters.
_CHARS = st.characters(blacklist_categories=("Cs", "Cc", "Cn"), max_codepoint=0x2FFFF) | st.sampled_from("\t\n åäöÅÄÖ<&>\"'")
free_text = st.text(_CHARS, min_size=0, max_size=24)
#: Identifying text: something a FHIR string can hold (not only non-ASCII white space such as U+00A0).
non_empty = st.text(_CHARS, min_size=1, max_size=24).filter(lambda s: re.search(r"[ \r\n\t\S]", s) is not None)
hsa_ids = st.one_of(
    st.from_regex(r"SE[0-9]{10}-[0-9A-Z]{4}", fullmatch=True),
    st.from_regex(r"SE16[0-9]{10}-[0-9]{4}", fullmatch=True),
    non_empty,
)
oids = st.lists(st.integers(0, 99999), min_size=2, max_size=8).map(lambda ns: "1." + ".".join(str(n) for n in ns))

# DST edges in Stockholm (the repeated October hour and the skipped March hour) and plain times.
_EDGES = ["20261025023000", "20261025020000", "20261025025959", "20260329023000", "20260329020000", "20251026023000", "20240331021500"]
timestamps = st.one_of(
    st.sampled_from(_EDGES),
    st.datetimes(min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2099, 12, 31, 23, 59, 59)).map(lambda d: d.strftime("%Y%m%d%H%M%S")),
)


class Doc:
    """A tiny builder: `sub(parent, name, text)` in the core namespace."""

    @staticmethod
    def sub(parent, name: str, text: str | None = None, ns: str = CORE_NS):
        el = etree.SubElement(parent, f"{{{ns}}}{name}")
        if text is not None:
            el.text = text
        return el


sub = Doc.sub


@st.composite
def foreign_elements(draw, parent) -> None:
    """0-2 elements of another namespace, appended where the schema allows ##other."""
    for _ in range(draw(st.integers(0, 2))):
        el = etree.SubElement(parent, f"{{{FOREIGN_NS}}}{draw(st.sampled_from(['note', 'extra', 'lokalKod']))}")
        if draw(st.booleans()):
            el.set("kind", draw(st.from_regex(r"[a-z]{1,8}", fullmatch=True)))
        if draw(st.booleans()):
            el.text = draw(free_text)
        else:
            sub(el, "part", draw(free_text), ns=FOREIGN_NS)


def maybe(draw, parent, name: str, strategy) -> None:
    if draw(st.booleans()):
        sub(parent, name, draw(strategy))


@st.composite
def person_ids(draw, parent) -> None:
    pid = sub(parent, "patientId")
    kind = draw(st.sampled_from(["personnummer", "samordningsnummer", "other"]))
    if kind == "other":
        sub(pid, "id", draw(non_empty))
        sub(pid, "type", draw(oids))
    else:
        born = draw(st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2025, 12, 31)))
        day = born.day + (60 if kind == "samordningsnummer" else 0)
        number = identifiers.with_check_digit(f"{born:%Y%m}{day:02d}{draw(st.integers(0, 999)):03d}")
        sub(pid, "id", number)
        sub(pid, "type", systems.RIV_SAMORDNINGSNUMMER_OID if kind == "samordningsnummer" else systems.RIV_PERSONNUMMER_OID)
    draw(foreign_elements(pid))


@st.composite
def cvs(draw, parent, name: str) -> None:
    cv = sub(parent, name)
    maybe(draw, cv, "code", st.one_of(st.from_regex(r"[A-Z0-9]{1,6}", fullmatch=True), free_text))
    maybe(draw, cv, "codeSystem", st.one_of(oids, st.just("http://snomed.info/sct"), free_text))
    maybe(draw, cv, "codeSystemName", free_text)
    maybe(draw, cv, "codeSystemVersion", free_text)
    maybe(draw, cv, "displayName", free_text)
    maybe(draw, cv, "originalText", free_text)
    draw(foreign_elements(cv))


@st.composite
def org_units(draw, parent) -> None:
    unit = sub(parent, "healthcareProfessionalOrgUnit")
    maybe(draw, unit, "orgUnitHSAId", hsa_ids)
    maybe(draw, unit, "orgUnitName", free_text)
    maybe(draw, unit, "orgUnitTelecom", st.one_of(st.from_regex(r"\+46[0-9]{7,9}", fullmatch=True), free_text))
    maybe(draw, unit, "orgUnitEmail", free_text)
    maybe(draw, unit, "orgUnitAddress", free_text)
    maybe(draw, unit, "orgUnitLocation", free_text)
    draw(foreign_elements(unit))


@st.composite
def headers(draw, parent, name: str, document_id: str) -> None:
    h = sub(parent, name)
    sub(h, "documentId", document_id)
    sub(h, "sourceSystemHSAId", draw(st.sampled_from(["SE2321000016-SRC1", "SE162321000230-0011"])))
    maybe(draw, h, "documentTitle", free_text)
    maybe(draw, h, "documentTime", timestamps)
    draw(person_ids(h))
    acc = sub(h, "accountableHealthcareProfessional")
    sub(acc, "authorTime", draw(timestamps))
    maybe(draw, acc, "healthcareProfessionalHSAId", hsa_ids)
    maybe(draw, acc, "healthcareProfessionalName", free_text)
    if draw(st.booleans()):
        draw(cvs(acc, "healthcareProfessionalRoleCode"))
    if draw(st.booleans()):
        draw(org_units(acc))
    maybe(draw, acc, "healthcareProfessionalCareUnitHSAId", hsa_ids)
    maybe(draw, acc, "healthcareProfessionalCareGiverHSAId", hsa_ids)
    draw(foreign_elements(acc))
    if draw(st.booleans()):
        la = sub(h, "legalAuthenticator")
        sub(la, "signatureTime", draw(timestamps))
        maybe(draw, la, "legalAuthenticatorHSAId", hsa_ids)
        maybe(draw, la, "legalAuthenticatorName", free_text)
        draw(foreign_elements(la))
    booleans = st.sampled_from(["true", "false", "1", "0"])
    sub(h, "approvedForPatient", draw(booleans))
    maybe(draw, h, "nullified", booleans)
    maybe(draw, h, "nullifiedReason", free_text)
    maybe(draw, h, "careContactId", free_text)


@st.composite
def iis(draw, parent, name: str) -> None:
    ii = sub(parent, name)
    sub(ii, "root", draw(st.one_of(hsa_ids, oids, st.just(systems.RIV_HSA_OID))))
    maybe(draw, ii, "extension", st.one_of(hsa_ids, free_text))
    draw(foreign_elements(ii))


@st.composite
def care_services(draw, parent, n: int) -> None:
    cs = sub(parent, "careService", ns=CARE_SERVICES_NS)
    draw(headers(cs, "careServiceHeader", draw(non_empty) + f"#{n}"))
    body = sub(cs, "careServiceBody")
    draw(iis(body, "performerHealthCareUnit"))
    if draw(st.booleans()):
        draw(iis(body, "performerHealthCareProfessional"))
    sub(body, "typeOfCareService", draw(st.sampled_from(terminology.codes("riv-care-service-type"))))
    period = sub(body, "timePeriod")
    sub(period, "start", draw(timestamps))
    maybe(draw, period, "end", timestamps)
    draw(foreign_elements(period))
    sub(body, "input", draw(free_text))
    sub(body, "scope", draw(free_text))
    maybe(draw, body, "housing", free_text)
    draw(foreign_elements(body))
    draw(foreign_elements(cs))


@st.composite
def base64_values(draw) -> str:
    data = base64.b64encode(draw(st.binary(max_size=120))).decode("ascii")
    if draw(st.booleans()) and len(data) > 8:
        data = "\n".join(data[i : i + 8] for i in range(0, len(data), 8))  # line-wrapped base64
    return data


@st.composite
def care_plans(draw, parent, n: int) -> None:
    cp = sub(parent, "carePlan", ns=CARE_PLANS_NS)
    draw(headers(cp, "carePlanHeader", draw(non_empty) + f"#{n}"))
    body = sub(cp, "carePlanBody")
    for _ in range(draw(st.integers(0, 3))):
        content = sub(body, "content")
        maybe(draw, content, "id", free_text)
        sub(content, "mediaType", draw(st.sampled_from(terminology.codes("riv-media-type"))))
        maybe(draw, content, "value", base64_values())
        maybe(draw, content, "reference", st.one_of(st.from_regex(r"https://plan\.example\.se/[a-z0-9/]{1,12}", fullmatch=True), st.just("urn:uuid:6f1c2a53-5c3e-4a51-9a43-7b1d2f0c9e11")))
        draw(foreign_elements(content))
    for _ in range(draw(st.integers(0, 3))):
        draw(iis(body, "participatingCareUnitHSAId"))
    maybe(draw, body, "typeOfCarePlanEnum", st.sampled_from(terminology.codes("riv-care-plan-type")))
    draw(foreign_elements(body))
    draw(foreign_elements(cp))


@st.composite
def results(draw, parent, ns: str) -> None:
    result = sub(parent, "result", ns=ns)
    sub(result, "resultCode", draw(st.sampled_from(terminology.codes("riv-result-code"))))
    maybe(draw, result, "errorCode", st.just("INVALID_REQUEST"))
    sub(result, "logId", draw(free_text))
    maybe(draw, result, "subCode", free_text)
    maybe(draw, result, "message", free_text)


@st.composite
def care_services_responses(draw, max_items: int = 4) -> bytes:
    root = etree.Element(f"{{{CARE_SERVICES_NS}}}GetCareServicesResponse", nsmap={"cs": CARE_SERVICES_NS, "c": CORE_NS, "x": FOREIGN_NS})
    for n in range(draw(st.integers(0, max_items))):
        draw(care_services(root, n))
    draw(results(root, CARE_SERVICES_NS))
    draw(foreign_elements(root))
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


@st.composite
def care_plans_responses(draw, max_items: int = 4) -> bytes:
    root = etree.Element(f"{{{CARE_PLANS_NS}}}GetCarePlansResponse", nsmap={"cp": CARE_PLANS_NS, "c": CORE_NS})
    for n in range(draw(st.integers(0, max_items))):
        draw(care_plans(root, n))
    draw(results(root, CARE_PLANS_NS))
    draw(foreign_elements(root))
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")
