"""Settings read from the environment (one place for every `CAREBRIDGE_*` variable).

Small on purpose: each setting is a function or a frozen dataclass field with its default, so
other parts of carebridge can add theirs next to these. Command-line flags override them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

#: The SQLite file used when neither ``--db`` nor ``CAREBRIDGE_DB`` is given (in the current directory).
DEFAULT_DB_FILE = "carebridge.db"


def env_float(name: str, default: float) -> float:
    """A float from the environment, or ``default`` when unset or empty."""
    raw = os.environ.get(name, "").strip()
    return float(raw) if raw else default


def env_int(name: str, default: int) -> int:
    """An int from the environment, or ``default`` when unset or empty."""
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw else default


def database_url(value: str | None = None) -> str:
    """The outbox database URL: ``value``, else ``$CAREBRIDGE_DB``, else ``carebridge.db`` here.

    A plain path means a SQLite file; ``postgresql://`` URLs use the psycopg 3 driver.
    """
    raw = (value or os.environ.get("CAREBRIDGE_DB") or DEFAULT_DB_FILE).strip()
    if "://" not in raw:
        return f"sqlite:///{Path(raw).expanduser().resolve()}"
    for prefix in ("postgresql://", "postgres://"):
        if raw.startswith(prefix):
            return "postgresql+psycopg://" + raw[len(prefix):]
    return raw


#: The huvudman of a destination when nothing names one (the regional FHIR server).
DEFAULT_RECEIVER_HUVUDMAN = "region"


def huvudman_codes() -> tuple[str, ...]:
    """The codes of the ``huvudman`` table (kommun, region, annan)."""
    from mappings.terminology import codes

    return codes("huvudman")


def receiver_huvudman(value: str | None = None) -> str:
    """The huvudman of the destination a payload is validated for: ``value``, else
    ``$CAREBRIDGE_RECEIVER_HUVUDMAN``, else ``region``.

    Every destination carebridge delivers to has one; a payload authored by another huvudman
    crosses huvudmän and needs the person's consent (or a legal basis) to be sent there.
    ValueError for a value that is not a code of the ``huvudman`` table.
    """
    raw = (value or os.environ.get("CAREBRIDGE_RECEIVER_HUVUDMAN") or DEFAULT_RECEIVER_HUVUDMAN).strip()
    known = huvudman_codes()
    if raw not in known:
        raise ValueError(f"receiver huvudman {raw!r} is not one of {', '.join(known)}")
    return raw


@dataclass(frozen=True)
class DeliverySettings:
    """How hard and how long the outbox and gateway try to deliver one message."""

    #: HTTP attempts within one delivery round (tenacity), and the round's time budget in seconds.
    round_attempts: int = field(default_factory=lambda: env_int("CAREBRIDGE_ROUND_ATTEMPTS", 5))
    round_seconds: float = field(default_factory=lambda: env_float("CAREBRIDGE_ROUND_SECONDS", 60.0))
    #: First backoff step and the largest single wait between attempts (seconds).
    backoff_initial: float = field(default_factory=lambda: env_float("CAREBRIDGE_BACKOFF_INITIAL", 0.5))
    backoff_max: float = field(default_factory=lambda: env_float("CAREBRIDGE_BACKOFF_MAX", 30.0))
    #: A Retry-After longer than this (seconds) ends the round; the outbox reschedules instead.
    retry_after_max: float = field(default_factory=lambda: env_float("CAREBRIDGE_RETRY_AFTER_MAX", 120.0))
    #: Message-level caps: delivery rounds, and seconds since enqueue, before a dead letter.
    max_rounds: int = field(default_factory=lambda: env_int("CAREBRIDGE_MAX_ROUNDS", 20))
    give_up_after: float = field(default_factory=lambda: env_float("CAREBRIDGE_GIVE_UP_AFTER", 24 * 3600.0))
    #: Outbox-level backoff between rounds (seconds): initial step and cap.
    reschedule_initial: float = field(default_factory=lambda: env_float("CAREBRIDGE_RESCHEDULE_INITIAL", 30.0))
    reschedule_max: float = field(default_factory=lambda: env_float("CAREBRIDGE_RESCHEDULE_MAX", 3600.0))
    #: Lease on a claimed message (renewed while it is worked on) and the dead-letter hold (seconds).
    lease_seconds: float = field(default_factory=lambda: env_float("CAREBRIDGE_LEASE_SECONDS", 30.0))
    dead_letter_hold: float = field(default_factory=lambda: env_float("CAREBRIDGE_DEAD_LETTER_HOLD", 3600.0))
    #: Circuit breaker: consecutive transient failures that open it, and seconds it stays open.
    breaker_failures: int = field(default_factory=lambda: env_int("CAREBRIDGE_BREAKER_FAILURES", 5))
    breaker_cooldown: float = field(default_factory=lambda: env_float("CAREBRIDGE_BREAKER_COOLDOWN", 30.0))
    #: Requests per second per destination (0 = unlimited) and the burst allowed.
    rate_limit: float = field(default_factory=lambda: env_float("CAREBRIDGE_RATE_LIMIT", 0.0))
    rate_burst: int = field(default_factory=lambda: env_int("CAREBRIDGE_RATE_BURST", 10))
    #: HTTP timeouts (seconds): connect, and read/write.
    connect_timeout: float = field(default_factory=lambda: env_float("CAREBRIDGE_CONNECT_TIMEOUT", 5.0))
    read_timeout: float = field(default_factory=lambda: env_float("CAREBRIDGE_READ_TIMEOUT", 30.0))


@dataclass(frozen=True)
class AuthSettings:
    """Credentials for a regional server: SMART Backend Services and/or mutual TLS."""

    token_url: str | None = field(default_factory=lambda: os.environ.get("CAREBRIDGE_TOKEN_URL") or None)
    client_id: str | None = field(default_factory=lambda: os.environ.get("CAREBRIDGE_CLIENT_ID") or None)
    #: PEM private key (RSA for RS384, EC P-384 for ES384) that signs the client assertion.
    client_key: str | None = field(default_factory=lambda: os.environ.get("CAREBRIDGE_CLIENT_KEY") or None)
    key_id: str | None = field(default_factory=lambda: os.environ.get("CAREBRIDGE_CLIENT_KEY_ID") or None)
    scope: str = field(default_factory=lambda: os.environ.get("CAREBRIDGE_SCOPE") or "system/*.read system/*.write")
    #: Client certificate and key (PEM) for mutual TLS, and the CA bundle that verifies the server.
    tls_cert: str | None = field(default_factory=lambda: os.environ.get("CAREBRIDGE_TLS_CERT") or None)
    tls_key: str | None = field(default_factory=lambda: os.environ.get("CAREBRIDGE_TLS_KEY") or None)
    ca_bundle: str | None = field(default_factory=lambda: os.environ.get("CAREBRIDGE_CA_BUNDLE") or None)

    @property
    def uses_oauth(self) -> bool:
        """True when a client id and a signing key are configured."""
        return bool(self.client_id and self.client_key)
