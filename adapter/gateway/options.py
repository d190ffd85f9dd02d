"""Command-line options shared by `send`, `worker`, `serve` and `bench`: server, database, auth, logging,
the receiving huvudman."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace

from adapter.config import AuthSettings, DeliverySettings


def add_server_arguments(parser: argparse.ArgumentParser, *, server_required: bool = True) -> None:
    """--server, --db, --concurrency, auth and logging options."""
    parser.add_argument("--server", metavar="URL", required=server_required, help="FHIR base URL of the regional server")
    parser.add_argument("--db", metavar="URL", help="outbox database: a SQLite path or postgresql:// URL "
                        "(default: $CAREBRIDGE_DB or ./carebridge.db)")
    parser.add_argument("--concurrency", type=int, default=4, metavar="N", help="delivery threads (default: 4)")
    parser.add_argument("--log-level", default=None, metavar="LEVEL", help="JSON log level on stderr")
    auth = parser.add_argument_group("auth (or the CAREBRIDGE_* variables in docs/gateway.md)")
    auth.add_argument("--client-id", help="SMART Backend Services client id")
    auth.add_argument("--client-key", metavar="PEM", help="private key signing the client assertion (RSA: RS384, EC: ES384)")
    auth.add_argument("--key-id", metavar="KID", help="kid of the client key in the registered JWKS")
    auth.add_argument("--token-url", metavar="URL", help="token endpoint (default: from the server's SMART configuration)")
    auth.add_argument("--scope", help="requested scopes (default: system/*.read system/*.write)")
    auth.add_argument("--cert", metavar="PEM", help="client certificate for mutual TLS")
    auth.add_argument("--cert-key", metavar="PEM", help="private key of the client certificate")
    auth.add_argument("--ca", metavar="PEM", help="CA bundle that verifies the server's certificate")


def add_receiver_argument(parser: argparse.ArgumentParser, *, what: str = "the server") -> None:
    """--receiver-huvudman: whom documents are validated as going to (the consent rule)."""
    parser.add_argument("--receiver-huvudman", choices=("kommun", "region", "annan"), default=None,
                        help=f"huvudman of {what}; documents are validated as a transfer to it, so one "
                             "another huvudman authored needs consent or a legal basis "
                             "(default: $CAREBRIDGE_RECEIVER_HUVUDMAN or region)")


def receiver_huvudman(args: argparse.Namespace) -> str | None:
    """``--receiver-huvudman``, else the environment's setting; None after a message on stderr when invalid."""
    from adapter.config import receiver_huvudman as configured

    try:
        return configured(getattr(args, "receiver_huvudman", None))
    except ValueError as exc:
        print(f"carebridge {args.command}: CAREBRIDGE_RECEIVER_HUVUDMAN: {exc}", file=sys.stderr)
        return None


def auth_settings(args: argparse.Namespace) -> AuthSettings:
    """Environment settings overridden by the command-line flags."""
    base = AuthSettings()
    flags = {"client_id": args.client_id, "client_key": args.client_key, "key_id": args.key_id,
             "token_url": args.token_url, "scope": args.scope, "tls_cert": args.cert, "tls_key": args.cert_key,
             "ca_bundle": args.ca}
    return replace(base, **{k: v for k, v in flags.items() if v})


def open_gateway(args: argparse.Namespace, settings: DeliverySettings | None = None):  # type: ignore[no-untyped-def]
    """A Gateway for ``--server`` that passed the CapabilityStatement check, or None after a message on stderr."""
    from adapter.gateway import Gateway, UnsuitableServer
    from adapter.gateway.auth import AuthError

    try:
        gateway = Gateway(args.server, settings, auth_settings(args), pool_size=max(2, args.concurrency))
        gateway.check_server()
    except (UnsuitableServer, AuthError) as exc:
        print(f"carebridge {args.command}: {exc}", file=sys.stderr)
        return None
    return gateway


def open_outbox(args: argparse.Namespace, settings: DeliverySettings | None = None):  # type: ignore[no-untyped-def]
    """The outbox at ``--db`` (migrated to the newest schema)."""
    from adapter.config import database_url
    from adapter.outbox import Outbox

    return Outbox.open(database_url(args.db), settings, pool_size=max(4, getattr(args, "concurrency", 4) + 2))


def configure_logging(args: argparse.Namespace, default: str) -> None:
    """JSON logs on stderr at ``--log-level`` (or $CAREBRIDGE_LOG_LEVEL, or ``default``)."""
    import os

    from adapter import logs

    logs.configure(args.log_level or os.environ.get("CAREBRIDGE_LOG_LEVEL") or default)
