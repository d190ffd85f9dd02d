"""The municipal XML codec and its project-written XSD."""

from __future__ import annotations

from pathlib import Path

import pytest

from mappings import municipal_xml
from mappings.models import DOCUMENT_KINDS
from mappings.models.decision import CareDecision

FIXTURES = sorted(Path(__file__).parents[2].joinpath("fixtures", "decision").glob("*.json"))


@pytest.mark.parametrize("kind", sorted(DOCUMENT_KINDS))
def test_committed_xsd_matches_the_model(kind: str) -> None:
    assert municipal_xml.schema_text(kind) == municipal_xml.generate_xsd(kind), "run: python -m mappings.municipal_xml --write"


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_fixture_exports_validate_against_the_xsd_and_read_back(path: Path) -> None:
    from lxml import etree

    d = CareDecision.model_validate_json(path.read_text("utf-8"))
    xml = municipal_xml.to_xml(d)
    schema = etree.XMLSchema(etree.fromstring(municipal_xml.schema_text("decision").encode()))
    assert schema.validate(etree.fromstring(xml)), schema.error_log
    assert municipal_xml.from_xml(xml) == d


def test_schema_violation_is_reported_with_its_line() -> None:
    bad = b'<decision xmlns="urn:carebridge:municipal:1">\n<decision_id>X</decision_id>\n<bogus/></decision>'
    with pytest.raises(municipal_xml.MunicipalXmlError, match=r"line \d+"):
        municipal_xml.from_xml(bad)


def test_foreign_root_is_refused() -> None:
    with pytest.raises(municipal_xml.MunicipalXmlError, match="namespace"):
        municipal_xml.from_xml(b"<decision/>")
