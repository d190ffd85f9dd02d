"""Fixtures of the gateway suite: its own servers, fast delivery settings, outbox databases, tags.

The gateway suite loads thousands of resources. It runs against SEKMET and Medplum servers of its own
(same names as the session fixtures in tests/conftest.py, package scope) so that volume never reaches
the servers the other suites share, and their data never reaches these.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from adapter.config import DeliverySettings
from tests.conftest import server_fixtures

#: PostgreSQL server the suite uses (trust auth on this machine; .ci/run starts it).
PG_ADMIN_URL = os.environ.get("CAREBRIDGE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")

#: Retry timings scaled down so fault tests take seconds, not minutes.
FAST = DeliverySettings(
    round_attempts=8, round_seconds=30.0, backoff_initial=0.02, backoff_max=0.3, retry_after_max=5.0,
    max_rounds=20, give_up_after=600.0, reschedule_initial=0.1, reschedule_max=0.5, lease_seconds=5.0,
    dead_letter_hold=60.0, breaker_failures=1000, breaker_cooldown=1.0, rate_limit=0.0, rate_burst=10,
    connect_timeout=2.0, read_timeout=5.0,
)


sekmet_server, medplum_server, fhir_server = server_fixtures("package", "gateway-")


@pytest.fixture
def fast() -> DeliverySettings:
    """Delivery settings for tests (short backoffs, leases and holds)."""
    return FAST


@pytest.fixture
def tag() -> str:
    """A business-key prefix unique to this test."""
    return "T" + uuid.uuid4().hex[:8].upper()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite outbox file for this test."""
    return f"sqlite:///{tmp_path / 'outbox.db'}"


def _pg_available() -> bool:
    try:
        import sqlalchemy

        engine = sqlalchemy.create_engine(PG_ADMIN_URL)
        with engine.connect():
            pass
        engine.dispose()
        return True
    except Exception:  # noqa: BLE001
        return False


@pytest.fixture(scope="session")
def pg_server() -> str:
    """The admin URL of the test PostgreSQL server (fails, never skips, when it is down)."""
    if not _pg_available():
        pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN_URL} (start it, e.g. with .ci/run)", pytrace=False)
    return PG_ADMIN_URL


@pytest.fixture
def pg_url(pg_server: str) -> Iterator[str]:
    """A database of its own for this test (created, then dropped)."""
    import sqlalchemy

    name = f"carebridge_gw_{uuid.uuid4().hex[:10]}"
    admin = sqlalchemy.create_engine(pg_server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = pg_server.rsplit("/", 1)[0] + f"/{name}"
    yield url
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


@pytest.fixture(autouse=True)
def _no_inherited_outbox_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests choose their own database and secrets."""
    for name in ("CAREBRIDGE_DB", "CAREBRIDGE_PERSON_KEY_SECRET"):
        monkeypatch.delenv(name, raising=False)


def settings(**changes: object) -> DeliverySettings:
    """FAST with some fields changed."""
    return replace(FAST, **changes)  # type: ignore[arg-type]
