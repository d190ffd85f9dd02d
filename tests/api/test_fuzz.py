"""Fuzzing the API from its own /openapi.json with schemathesis: bounded, with valid credentials, no 5xx.

The app runs in-process (ASGI) on a fresh outbox database, reading from the session's SEKMET
server, with a municipal folder configured, so every operation can do its real work: documents
are converted, validated and queued, notifications read from SEKMET, the audit log is searched.
Each operation gets a token of an organisation that may use it (the region for the inbound
endpoints, Haninge kommun otherwise) with every scope, so the fuzzer gets past authentication
and reaches the code behind it. The examples from the fixtures run first.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, status_code_conformance

from adapter.api.settings import ApiSettings, Issuer, Limits, MunicipalDelivery
from adapter.standin import RunningServer
from tests.api.conftest import ALL, HANINGE, REGION
from tests.api.issuer import LocalIssuer

pytestmark = pytest.mark.integration

#: Generated cases per operation (the examples from the fixtures come on top).
EXAMPLES_PER_OPERATION = 100


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory: pytest.TempPathFactory, sekmet_server: RunningServer, issuer: LocalIssuer) -> Iterator[Any]:
    from adapter.api.app import create_app
    from adapter.outbox import Outbox

    workdir: Path = tmp_path_factory.mktemp("fuzz")
    settings_ = ApiSettings(
        audience=issuer.audience,
        issuers=(Issuer(issuer=issuer.issuer, jwks=issuer.jwks()),),
        server=sekmet_server.base_url,
        region_organisations=(REGION,),
        limits=Limits(rate_per_second=10_000, rate_burst=10_000, anonymous_rate_per_second=10_000,
                      anonymous_burst=10_000, max_fetches_per_notification=20),
        municipal=MunicipalDelivery(folder=str(workdir / "outgoing")),
        workers=False,
    )
    outbox = Outbox.open(f"sqlite:///{workdir / 'fuzz.db'}")
    yield create_app(settings_, outbox)
    outbox.close()


@pytest.fixture(scope="module")
def fuzz_schema(fuzz_app: Any) -> Any:
    return schemathesis.openapi.from_asgi("/openapi.json", fuzz_app)


@pytest.fixture(scope="module")
def tokens(issuer: LocalIssuer) -> dict[str, str]:
    import time

    hour = int(time.time()) + 3600
    return {"region": issuer.token(REGION, ALL, exp=hour), "municipality": issuer.token(HANINGE, ALL, exp=hour)}


def _strategies(schema: Any, operation: Any) -> list[tuple[str, Any, int]]:
    """(phase, strategy, cases) for one operation: its examples, schema-conforming data, schema-violating data."""
    from hypothesis import strategies as st
    from schemathesis.generation.modes import GenerationMode

    out = []
    examples = schema.get_strategies_from_examples(operation)
    if examples:
        out.append(("examples", st.one_of(examples), 2 * len(examples)))
    out.append(("positive", operation.as_strategy(GenerationMode.POSITIVE), EXAMPLES_PER_OPERATION))
    out.append(("negative", operation.as_strategy(GenerationMode.NEGATIVE), EXAMPLES_PER_OPERATION // 2))
    return out


def test_no_server_errors(fuzz_schema: Any, tokens: dict[str, str]) -> None:
    """Every operation, every phase: no 5xx, and every error is an OperationOutcome."""
    from hypothesis import given
    from hypothesis.errors import Unsatisfiable

    seen: list[tuple[str, str, str, int]] = []
    failures: list[str] = []
    unsatisfiable: list[str] = []
    operations = [result.ok() for result in fuzz_schema.get_all_operations()]
    for operation in operations:
        inbound = operation.path.startswith(("/fhir/subscription-notification", "/fhir/$process-message"))
        headers = {"Authorization": f"Bearer {tokens['region' if inbound else 'municipality']}"}
        for phase, strategy, cases in _strategies(fuzz_schema, operation):

            @given(case=strategy)
            @settings(max_examples=cases, deadline=None, derandomize=True, database=None,
                      phases=[Phase.generate], suppress_health_check=list(HealthCheck))
            def run(case: Any) -> None:
                response = case.call(headers=headers)
                seen.append((phase, case.method, case.path, response.status_code))
                if response.status_code >= 500:
                    failures.append(f"{case.method} {case.formatted_path} -> {response.status_code}: "
                                    f"{response.text[:300]}")
                case.validate_response(response, checks=[not_a_server_error, status_code_conformance, content_type_conformance])
                if response.status_code >= 400 and case.path != "/metrics":
                    content_type = response.headers.get("content-type") or [""]
                    assert content_type[0].startswith("application/fhir+json"), response.text[:200]
                    assert response.json()["resourceType"] == "OperationOutcome"

            try:
                run()
            except Unsatisfiable:  # e.g. no way to violate the schema of an operation without inputs
                unsatisfiable.append(f"{phase} {operation.method.upper()} {operation.path}")
    statuses: dict[int, int] = {}
    for *_rest, status in seen:
        statuses[status] = statuses.get(status, 0) + 1
    print(f"\nfuzz: {len(operations)} operations, {len(seen)} requests, statuses {dict(sorted(statuses.items()))}; "
          f"nothing to generate: {unsatisfiable}")
    assert not failures
    assert len(operations) >= 12
    assert len(seen) >= len(operations) * EXAMPLES_PER_OPERATION
