"""Bring an outbox database to the newest schema with the Alembic migrations shipped in this package.

Safe when several processes start at once: PostgreSQL takes an advisory lock, SQLite a file lock,
and a database already at the head revision is left alone without importing Alembic's machinery.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import re
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import Connection, Engine, inspect, text

#: Where the migration scripts live (inside the package, so an installed carebridge has them).
SCRIPT_LOCATION = Path(__file__).with_name("migrations")
_REVISION = re.compile(r"^revision\s*=\s*['\"]([^'\"]+)['\"]", re.M)
_DOWN = re.compile(r"^down_revision\s*=\s*['\"]([^'\"]+)['\"]", re.M)


@functools.cache
def head() -> str:
    """The newest revision among migrations/versions (read from the scripts, without importing Alembic)."""
    revisions, parents = set(), set()
    for script in (SCRIPT_LOCATION / "versions").glob("*.py"):
        text = script.read_text()
        found = _REVISION.search(text)
        if found:
            revisions.add(found.group(1))
            parents.update(_DOWN.findall(text))
    heads = sorted(revisions - parents)
    if len(heads) != 1:
        raise RuntimeError(f"the outbox migrations must have exactly one head, found {heads}")
    return heads[0]
#: Arbitrary constant for pg_advisory_lock: "carebridge outbox migration".
_PG_LOCK_KEY = 0x0CA4EB41D6E


def current_revision(connection: Connection) -> str | None:
    """The Alembic revision of the database, or None for an empty one."""
    if not inspect(connection).has_table("alembic_version"):
        return None
    return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def upgrade(engine: Engine) -> None:
    """Run every missing migration (no-op when the database is at the head revision)."""
    from adapter.outbox.db import reader

    with reader(engine) as connection:
        if current_revision(connection) == head():
            return
    with _migration_lock(engine):
        from alembic import command
        from alembic.config import Config

        with engine.begin() as connection:
            if current_revision(connection) == head():
                return
            config = Config()
            config.set_main_option("script_location", str(SCRIPT_LOCATION))
            config.attributes["connection"] = connection
            command.upgrade(config, "head")


@contextlib.contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    """Only one process migrates a database at a time."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_LOCK_KEY})
            conn.commit()
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_LOCK_KEY})
                conn.commit()
        return
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        yield
        return
    # flock on the database file itself (SQLite's own locks are fcntl locks and do not interfere).
    with open(database, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
