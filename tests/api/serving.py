"""Run `carebridge serve` as a real process on 127.0.0.1 for the end-to-end and TLS tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from adapter.standin import free_port

REPO = Path(__file__).resolve().parents[2]


@contextmanager
def serving(workdir: Path, config: dict[str, Any], *args: str, scheme: str = "http",
            verify: Any = False, ready_timeout: float = 20.0) -> Iterator[str]:
    """Start `carebridge serve` with ``config`` (JSON) and ``args``; yield its base URL; stop it afterwards."""
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / "api.json"
    config_path.write_text(json.dumps(config))
    port = free_port()
    log = (workdir / "serve.log").open("wb")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        [sys.executable, "-m", "adapter.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
         "--config", str(config_path), "--db", str(workdir / "carebridge.db"), *args],
        cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=env)
    base = f"{scheme}://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + ready_timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"serve exited {process.returncode}: {(workdir / 'serve.log').read_text()[-3000:]}")
            try:
                if httpx.get(f"{base}/healthz", verify=verify, timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"serve not ready: {(workdir / 'serve.log').read_text()[-3000:]}")
            time.sleep(0.1)
        yield base
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
