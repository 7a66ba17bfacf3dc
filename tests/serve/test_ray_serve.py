"""`vrp serve --executor ray`: each hosted model on a Ray actor of a local cluster (started by the
test, 2 CPUs), driven by the plain nnsight client: local results, LOG frames, the time limit
enforced inside the actor, and an actor killed mid-job fails that job clearly and is replaced."""

import os
import signal
import threading
import time
from collections.abc import Iterator

import httpx
import nnsight
import pytest
import torch
from nnsight.intervention.backends.remote import RemoteError

import vrp
from tests.conftest import QUESTIONS, random_images
from vrp.core import ConfigError
from vrp.serve import ServeConfig, Server

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    config = ServeConfig(models=("tiny/llava", "tiny/qwen2_vl"), port=0, executor="ray",
                         job_timeout_s=3.0)  # fmt: skip
    running = Server(config).start()
    yield running
    running.stop()
    ray.shutdown()


@pytest.fixture(scope="module")
def vlm() -> vrp.VLM:
    return vrp.load("tiny/llava")


@pytest.fixture(scope="module")
def inputs(vlm: vrp.VLM) -> dict:
    return vlm.encode(random_images(2, seed=3), QUESTIONS[:2]).data


def _hidden(vlm: vrp.VLM, inputs: dict, remote: object = False) -> torch.Tensor:
    model = vlm.nnsight
    with model.trace(inputs, remote=remote):
        hidden = model.model.language_model.layers[1].output.save()
    return hidden


def test_models_live_on_actors_and_answer_as_locally(server: Server, vlm, inputs) -> None:
    described = {m["name"]: m for m in httpx.get(f"{server.url}/models").json()}
    assert set(described) == {"tiny/llava", "tiny/qwen2_vl"}
    for model in described.values():
        assert model["executor"] == "ray" and model["pid"] != os.getpid() and model["node"]
    assert described["tiny/llava"]["pid"] != described["tiny/qwen2_vl"]["pid"]
    assert torch.equal(_hidden(vlm, inputs, server.url), _hidden(vlm, inputs))
    qwen = vrp.load("tiny/qwen2_vl")
    data = qwen.encode(random_images(2, seed=3), QUESTIONS[:2]).data
    with qwen.nnsight.generate(data, max_new_tokens=3, remote=server.url) as tracer:
        tokens = tracer.result.save()
    assert qwen.generate(
        qwen.encode(random_images(2, seed=3), QUESTIONS[:2]), max_new_tokens=3
    ) == [t.strip() for t in qwen.tokenizer.batch_decode(tokens[:, -3:], skip_special_tokens=True)]


def test_vrp_graphs_run_on_the_actor(server: Server, vlm) -> None:
    from vrp import Component, Site
    from vrp.interventions import Capture, Zero, graph, run_graph

    inputs = vlm.encode(random_images(2, seed=5), QUESTIONS[:2])
    g = graph(Zero(site=Site(layer=0, component=Component.MLP_OUT)),
              Capture(site=Site(layer=1, component=Component.RESID_POST), name="r"))  # fmt: skip
    assert torch.equal(run_graph(vlm.with_backend(server.url), g, inputs)["r"],
                       run_graph(vlm, g, inputs)["r"])  # fmt: skip


def test_prints_arrive_as_log_frames(server: Server, vlm, inputs, capsys) -> None:
    model = vlm.nnsight
    nnsight.CONFIG.APP.REMOTE_LOGGING = True
    with model.trace(inputs, remote=server.url):
        print("shape", tuple(model.model.language_model.layers[0].output.shape))
    out = capsys.readouterr().out
    assert "LOG" in out and "shape (2," in out


def test_the_time_limit_holds_inside_the_actor(server: Server, vlm, inputs) -> None:
    model = vlm.nnsight
    with pytest.raises(RemoteError, match=r"ran past this server's limit of 3 s"):
        with model.trace(inputs, remote=server.url):
            while True:
                pass
    assert torch.equal(_hidden(vlm, inputs, server.url), _hidden(vlm, inputs))


def test_an_actor_killed_mid_job_fails_that_job_and_is_replaced(server: Server, vlm, inputs):
    pid = {m["name"]: m for m in httpx.get(f"{server.url}/models").json()}["tiny/llava"]["pid"]
    killer = threading.Timer(0.8, os.kill, (pid, signal.SIGKILL))
    killer.start()
    model = vlm.nnsight
    with pytest.raises(RemoteError, match=r"the Ray actor holding the model died while running it"):
        with model.trace(inputs, remote=server.url):
            start = time.time()
            while time.time() - start < 2.5:
                pass
            logits = model.output.logits.save()  # noqa: F841
    killer.join()
    assert torch.equal(_hidden(vlm, inputs, server.url), _hidden(vlm, inputs))  # a fresh actor
    after = {m["name"]: m for m in httpx.get(f"{server.url}/models").json()}["tiny/llava"]
    assert after["pid"] != pid and after["restarts"] == 1
    health = httpx.get(f"{server.url}/health").json()
    assert health["status"] == "ok" and health["models"]["tiny/llava"]["failed"] >= 2


def test_ray_options_are_checked() -> None:
    with pytest.raises(ConfigError, match="executor: expected 'local' or 'ray', got 'spark'"):
        ServeConfig(models=("tiny/llava",), executor="spark")
    with pytest.raises(ConfigError, match="pass them with --executor ray"):
        ServeConfig(models=("tiny/llava",), gpus_per_worker=1.0)
    with pytest.raises(ConfigError, match="gpus_per_worker >= 0 and cpus_per_worker >= 1"):
        ServeConfig(models=("tiny/llava",), executor="ray", cpus_per_worker=0)


def test_the_cli_passes_ray_options_through() -> None:
    import subprocess
    import sys

    from .conftest import ROOT

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", "from vrp.cli import main; main()", "serve", "--model",
         "tiny/llava", "--gpus-per-worker", "1"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    assert "--gpus-per-worker and --cpus-per-worker place models on Ray actors" in done.stderr
