"""Keys off loopback, and the limits: each refusal is a clear error and the next request succeeds."""

# ruff: noqa: F841  (the traces below bind values only to send them)

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import nnsight
import pytest
import torch
from nnsight.intervention.backends.remote import RemoteError
from websocket import WebSocketBadStatusException

import vrp
from tests.conftest import QUESTIONS, random_images

from .conftest import ROOT, ServerProcess, start_server, stop_server

KEY = "correct-horse-battery-staple"


@pytest.fixture(scope="module")
def vlm() -> vrp.VLM:
    return vrp.load("tiny/llava")


@pytest.fixture(scope="module")
def inputs(vlm: vrp.VLM) -> dict:
    return vlm.encode(random_images(1), QUESTIONS[:1]).data


@pytest.fixture(scope="module")
def expected(vlm: vrp.VLM, inputs: dict) -> torch.Tensor:
    with vlm.nnsight.trace(inputs):
        logits = vlm.nnsight.output.logits.save()
    return logits


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Bound to every interface (so keys are required), one waiting job at most, short limits."""
    folder = tmp_path_factory.mktemp("keyed")
    keys = folder / "keys.txt"
    keys.write_text(f"# keys of the test server\n{KEY}\nanother-key\n")
    args = ["--model", "tiny/llava", "--host", "0.0.0.0", "--api-key-file", str(keys)]
    limits = ["--max-queue", "1", "--job-timeout", "3", "--result-ttl", "2"]
    server = start_server([*args, *limits], folder / "keyed.log")
    server.url = server.url.replace("0.0.0.0", "127.0.0.1")
    yield server
    stop_server(server)


@pytest.fixture
def with_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nnsight.CONFIG.API, "APIKEY", KEY)


def _trace(vlm: vrp.VLM, inputs: dict, url: str, **kwargs) -> torch.Tensor:
    model = vlm.nnsight
    with model.trace(inputs, remote=url, **kwargs):
        logits = model.output.logits.save()
    return logits


# ----- keys --------------------------------------------------------------------------------------
def test_a_public_bind_without_keys_does_not_start() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", "from vrp.cli import main; main()", "serve", "--model",
         "tiny/llava", "--host", "0.0.0.0"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.startswith("error: Refusing to listen on '0.0.0.0' without API keys")
    assert "--api-key-file" in done.stderr


def test_a_missing_key_is_refused(keyed_server: ServerProcess, vlm, inputs) -> None:
    with pytest.raises(WebSocketBadStatusException, match=r"401") as caught:
        _trace(vlm, inputs, keyed_server.url)  # blocking: refused at the websocket handshake
    assert "requires an API key" in str(caught.value)
    with pytest.raises(RemoteError, match=r"requires an API key and the request carried none"):
        _trace(vlm, inputs, keyed_server.url, blocking=False)
    models = httpx.get(f"{keyed_server.url}/models")
    assert models.status_code == 401


def test_a_wrong_key_is_refused(
    keyed_server: ServerProcess, vlm, inputs, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(nnsight.CONFIG.API, "APIKEY", KEY + "x")
    with pytest.raises(RemoteError, match=r"not one of this server's keys"):
        _trace(vlm, inputs, keyed_server.url, blocking=False)
    with pytest.raises(WebSocketBadStatusException, match=r"403"):
        _trace(vlm, inputs, keyed_server.url)


def test_the_right_key_gets_local_results(
    keyed_server: ServerProcess, vlm, inputs, expected, with_key
) -> None:
    assert torch.equal(_trace(vlm, inputs, keyed_server.url), expected)
    models = httpx.get(f"{keyed_server.url}/models", headers={"ndif-api-key": KEY})
    assert [m["name"] for m in models.json()] == ["tiny/llava"]


# ----- limits ------------------------------------------------------------------------------------
def _busy(vlm: vrp.VLM, inputs: dict, url: str, seconds: float):
    model = vlm.nnsight
    with model.trace(inputs, remote=url, blocking=False) as tracer:
        start = time.time()
        while time.time() - start < seconds:
            pass
        logits = model.output.logits.save()
    return tracer.backend


def test_a_job_over_its_time_limit_is_stopped(tiny_server: ServerProcess, vlm, inputs, expected):
    model = vlm.nnsight
    start = time.monotonic()
    with pytest.raises(RemoteError, match=r"ran past this server's limit of 4 s \(--job-timeout\)"):
        with model.trace(inputs, remote=tiny_server.url):
            while True:
                pass
    assert time.monotonic() - start < 20
    assert torch.equal(_trace(vlm, inputs, tiny_server.url), expected)


def test_an_oversized_request_is_refused(tiny_server: ServerProcess, vlm, inputs, expected):
    model = vlm.nnsight
    big = torch.randn(400_000)  # 1.6 MB of incompressible floats travel with the trace
    with pytest.raises(RemoteError, match=r"request body is 1.\d MB, over this server's limit"):
        with model.trace(inputs, remote=tiny_server.url):
            shifted = (model.output.logits.sum() + big.sum()).save()
    assert torch.equal(_trace(vlm, inputs, tiny_server.url), expected)


def test_a_full_queue_refuses_then_recovers(
    keyed_server: ServerProcess, vlm, inputs, expected, with_key
) -> None:
    running = _busy(vlm, inputs, keyed_server.url, 1.5)
    time.sleep(0.3)  # let it start: the queue is empty again, one job may wait
    waiting = _busy(vlm, inputs, keyed_server.url, 0.0)
    with pytest.raises(RemoteError, match=r"1 jobs waiting, this server's limit \(--max-queue\)"):
        _busy(vlm, inputs, keyed_server.url, 0.0)
    for backend in (running, waiting):
        for _ in range(200):
            if backend() is not None:
                break
            time.sleep(0.05)
    assert torch.equal(_trace(vlm, inputs, keyed_server.url), expected)


def test_a_result_expires_after_its_time_to_live(
    keyed_server: ServerProcess, vlm, inputs, with_key
) -> None:
    backend = _busy(vlm, inputs, keyed_server.url, 0.0)
    headers = {"ndif-api-key": KEY}
    for _ in range(100):
        status = httpx.get(f"{keyed_server.url}/response/{backend.job_id}", headers=headers)
        if status.json()["status"] == "COMPLETED":
            break
        time.sleep(0.05)
    time.sleep(3.5)  # the time to live is 2 s; the server sweeps every second
    with pytest.raises(RemoteError, match=r"expired: this server keeps results for 2 s"):
        backend()


def test_someone_elses_job_is_not_found(keyed_server: ServerProcess, vlm, inputs, with_key):
    backend = _busy(vlm, inputs, keyed_server.url, 0.0)
    other = httpx.get(
        f"{keyed_server.url}/response/{backend.job_id}", headers={"ndif-api-key": "another-key"}
    )
    assert other.status_code == 404


def test_the_key_file_must_hold_a_key(tmp_path: Path) -> None:
    from vrp.serve import read_api_keys

    empty = tmp_path / "keys.txt"
    empty.write_text("# nothing here\n\n")
    with pytest.raises(vrp.ConfigError, match=r"holds no key"):
        read_api_keys(empty)
    with pytest.raises(vrp.ConfigError, match=r"Cannot read the API key file"):
        read_api_keys(tmp_path / "missing.txt")
