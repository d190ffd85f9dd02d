"""`carebridge serve [--host H] [--port P] [--db URL] [--server URL]`: the API (FastAPI on uvicorn).

Issuers, client certificates, the regional organisations, limits and the municipal destination
come from ``--config`` (TOML or JSON, or ``$CAREBRIDGE_API_CONFIG``; see docs/security.md).
With ``--tls-cert``/``--tls-key`` it serves HTTPS; adding ``--tls-client-ca`` asks clients for a
certificate and verifies it against that CA (mutual TLS for system clients). Documents are
delivered by worker threads in the same process unless ``--no-workers``. Submissions are
validated as a transfer to the regional server's huvudman (``--receiver-huvudman`` or
``api.receiver_huvudman``, default region); messages for the municipality as one to
``municipal.huvudman`` (default kommun).
"""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from adapter.gateway.options import add_receiver_argument, add_server_arguments

    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port to listen on (default: 8080)")
    parser.add_argument("--config", metavar="FILE", help="API configuration, TOML or JSON (default: $CAREBRIDGE_API_CONFIG)")
    parser.add_argument("--no-workers", action="store_true", help="do not deliver in this process (run `carebridge worker`)")
    tls = parser.add_argument_group("TLS for the API itself")
    tls.add_argument("--tls-cert", metavar="PEM", help="server certificate (serve HTTPS)")
    tls.add_argument("--tls-key", metavar="PEM", help="private key of the server certificate")
    tls.add_argument("--tls-client-ca", metavar="PEM", help="CA that issues client certificates (enables mutual TLS)")
    add_server_arguments(parser, server_required=False)
    add_receiver_argument(parser, what="the regional server (overrides api.receiver_huvudman; the municipal "
                                       "destination's is municipal.huvudman, default kommun)")


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    import uvicorn

    from adapter.api.app import create_app
    from adapter.api.mtls import server_ssl_options
    from adapter.api.settings import SettingsError, load
    from adapter.gateway.options import auth_settings, configure_logging, open_outbox

    configure_logging(args, "INFO")
    try:
        settings = load(args.config)
    except (OSError, ValueError, SettingsError) as exc:
        print(f"carebridge serve: configuration: {exc}", file=sys.stderr)
        return 2
    if args.server:
        settings = replace(settings, server=args.server.rstrip("/"))
    if args.receiver_huvudman:
        settings = replace(settings, receiver_huvudman=args.receiver_huvudman)
    if args.no_workers:
        settings = replace(settings, workers=False)
    if bool(args.tls_cert) != bool(args.tls_key) or (args.tls_client_ca and not args.tls_cert):
        print("carebridge serve: --tls-cert and --tls-key go together; --tls-client-ca needs them", file=sys.stderr)
        return 2
    if not settings.issuers and not (settings.clients and args.tls_client_ca):
        print("carebridge serve: warning: no token issuers or client certificates configured; "
              "every request except health and docs will be refused", file=sys.stderr)
    outbox = open_outbox(args)
    app = create_app(settings, outbox, regional_auth=auth_settings(args))
    options = server_ssl_options(args.tls_cert, args.tls_key, args.tls_client_ca) if args.tls_cert else {}
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_config=None, access_log=False, server_header=False,
                    timeout_keep_alive=5, timeout_graceful_shutdown=30, **options)
    finally:
        outbox.close()
    return 0
