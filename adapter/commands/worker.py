"""`carebridge worker --server URL --db URL [--until-empty]`: deliver the outbox's messages for a server.

Runs until SIGTERM/SIGINT (finishing the rounds under way), or with ``--until-empty`` until only
messages held behind a dead letter are left. Any number of workers may share one PostgreSQL
outbox; on SQLite they share it too, one writer at a time.
"""

from __future__ import annotations

import argparse
import signal
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from adapter.gateway.options import add_server_arguments

    add_server_arguments(parser)
    parser.add_argument("--until-empty", action="store_true",
                        help="exit when nothing is left to deliver (except messages held behind a dead letter)")
    parser.add_argument("--metrics-port", type=int, metavar="PORT",
                        help="serve Prometheus metrics on 127.0.0.1:PORT/metrics")


def run(args: argparse.Namespace) -> int:
    from adapter.gateway.options import configure_logging, open_gateway, open_outbox
    from adapter.logs import get_logger
    from adapter.outbox.worker import Worker

    configure_logging(args, "INFO")
    log = get_logger("worker")
    gateway = open_gateway(args)
    if gateway is None:
        return 2
    outbox = open_outbox(args)
    worker = Worker(outbox, gateway, concurrency=args.concurrency)
    if args.metrics_port:
        from prometheus_client import start_http_server

        from adapter.outbox.metrics import REGISTRY

        start_http_server(args.metrics_port, addr="127.0.0.1", registry=REGISTRY)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: worker.stop())
    log.info("worker started", extra={"destination": gateway.base_url, "owner": worker.owner,
                                      "concurrency": args.concurrency})
    try:
        report = worker.run(until_empty=args.until_empty)
    finally:
        gateway.close()
    waiting = outbox.waiting(gateway.base_url)
    outbox.close()
    counts = ", ".join(f"{k} {v}" for k, v in sorted(report.counts.items())) or "nothing to do"
    left = ", ".join(f"{k} {v}" for k, v in waiting.items() if v)
    print(f"carebridge worker: {counts}" + (f"; still pending: {left}" if left else ""), file=sys.stderr)
    return 0
