"""`vrp serve` started as a subprocess on loopback, driven by the plain nnsight 0.8.1 client.

One server per test module (models load once); each test is a few traces of tiny models. The
server runs the real CLI in a plain interpreter, as users start it (no pytest import hooks)."""

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nnsight
import pytest

import vrp.models

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 180


@dataclass
class ServerProcess:
    url: str
    process: subprocess.Popen[str]
    log: Path

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def start_server(args: list[str], log: Path) -> ServerProcess:
    """Starts `vrp serve ARGS --port 0` and returns once it prints its URL."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    command = [sys.executable, "-c", "from vrp.cli import main; main()", "serve", *args]
    with log.open("w") as sink:
        process = subprocess.Popen(
            [*command, "--port", "0"], stdout=subprocess.PIPE, stderr=sink, text=True, env=env
        )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(process.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(START_TIMEOUT_S)
    if not lines or " on http://" not in lines[0]:
        process.kill()
        raise RuntimeError(f"vrp serve did not start:\n{log.read_text(errors='replace')[-4000:]}")
    return ServerProcess(url=lines[0].rsplit(" on ", 1)[1].strip(), process=process, log=log)


def stop_server(server: ServerProcess) -> None:
    server.process.terminate()
    try:
        server.process.wait(20)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait(20)
    if server.process.stdout is not None:
        server.process.stdout.close()


@pytest.fixture(scope="session")
def tiny_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """An open loopback server hosting every registered family's tiny model (a 4 s job limit,
    1 MB requests)."""
    log = tmp_path_factory.mktemp("serve") / "tiny.log"
    models = [arg for f in vrp.models.families() for arg in ("--model", f"tiny/{f}")]
    server = start_server([*models, "--job-timeout", "4", "--max-request-mb", "1"], log)
    yield server
    stop_server(server)


@pytest.fixture(autouse=True)
def _quiet_client() -> Iterator[None]:
    """No status spinner on stdout (the LOG test switches it back on)."""
    before = nnsight.CONFIG.APP.REMOTE_LOGGING
    nnsight.CONFIG.APP.REMOTE_LOGGING = False
    yield
    nnsight.CONFIG.APP.REMOTE_LOGGING = before
