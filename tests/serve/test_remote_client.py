"""VRP's own code on `vrp serve`: a model handle whose traces go to the server (`with_backend`),
a pipeline batch, and `vrp run --remote` give the local results, and the server really ran them."""

import dataclasses
import json
import warnings
from pathlib import Path

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from typer.testing import CliRunner

import vrp
import vrp.cli._commands  # noqa: F401  (registers the commands on the app)
from circuits import attribution_patching
from tests.conftest import QUESTIONS, random_images
from vrp import Component, Site
from vrp.cli._app import app
from vrp.core import ConfigError
from vrp.data import SyntheticConfig, generate
from vrp.interventions import Capture, ExecutionConfig, graph, run_gradients, run_graph
from vrp.pipeline import SignalConfig, batch_signals

from .conftest import ServerProcess

pytestmark = pytest.mark.filterwarnings("ignore::vrp.UndefinedSignalWarning")


def _finished(server: ServerProcess, model: str) -> int:
    state = httpx.get(f"{server.url}/health").json()["models"][model]
    return state["completed"] + state["failed"]


@pytest.mark.parametrize("family", vrp.models.families())
def test_a_remote_handle_computes_what_the_local_model_does(
    tiny_server: ServerProcess, family: str
) -> None:
    vlm = vrp.load(f"tiny/{family}")
    remote = vlm.with_backend(tiny_server.url)
    assert remote.hf is vlm.hf and remote.backend == tiny_server.url and vlm.backend == "local"
    inputs = vlm.encode(random_images(2, seed=4), QUESTIONS[:2])
    sampled = {"do_sample": True, "temperature": 1.5, "num_return_sequences": 3}
    before = _finished(tiny_server, f"tiny/{family}")
    assert torch.equal(remote.logits(inputs), vlm.logits(inputs))
    assert torch.equal(remote.answer_logits(inputs), vlm.answer_logits(inputs))
    assert remote.generate(inputs, max_new_tokens=4) == vlm.generate(inputs, max_new_tokens=4)
    draws = [remote.generate(inputs, max_new_tokens=4, seed=s, **sampled) for s in (7, 8)]
    assert draws[0] == vlm.generate(inputs, max_new_tokens=4, seed=7, **sampled)
    assert draws[1] == vlm.generate(inputs, max_new_tokens=4, seed=8, **sampled)
    assert draws[0] != draws[1]  # the seed reached the server's sampling
    assert _finished(tiny_server, f"tiny/{family}") == before + 5


def test_a_pipeline_batch_runs_remotely_as_locally(tiny_server: ServerProcess) -> None:
    vlm = vrp.load("tiny/llava")
    dataset = generate(SyntheticConfig(n_per_split=2, n_counting=0, n_spatial=0, seed=2))
    samples = [s for s in dataset if s.answer in ("yes", "no")][:4]
    config = SignalConfig(samples=3, seed=4)
    before = _finished(tiny_server, "tiny/llava")
    remote = batch_signals(vlm.with_backend(tiny_server.url), samples, config, index=1)
    local = batch_signals(vlm, samples, config, index=1)
    assert _finished(tiny_server, "tiny/llava") == before + 2  # the capture trace, the sampling
    assert _json(remote.samples) == _json(local.samples)  # NaN-safe: json writes NaN as NaN
    np.testing.assert_array_equal(remote.hidden, local.hidden)


def _json(rows) -> str:
    return json.dumps([dataclasses.asdict(r) for r in rows])


def test_a_config_backend_wins_over_the_handle(tiny_server: ServerProcess) -> None:
    vlm = vrp.load("tiny/llava").with_backend(tiny_server.url)
    inputs = vlm.encode(random_images(1), QUESTIONS[:1])
    g = graph(Capture(site=Site(layer=0, component=Component.RESID_POST), name="r"))
    before = _finished(tiny_server, "tiny/llava")
    run_graph(vlm, g, inputs, ExecutionConfig(backend="local"))
    assert _finished(tiny_server, "tiny/llava") == before
    run_graph(vlm, g, inputs)
    assert _finished(tiny_server, "tiny/llava") == before + 1


def test_gradients_and_bad_backends_are_refused_clearly(tiny_server: ServerProcess) -> None:
    vlm = vrp.load("tiny/llava")
    inputs = vlm.encode(random_images(1), QUESTIONS[:1])
    site = Site(layer=0, component=Component.RESID_POST)
    with pytest.raises(ConfigError, match="run_gradients runs locally only; got backend 'http"):
        run_gradients(vlm.with_backend(tiny_server.url), inputs, [site], vlm.yes_no_margin)
    before = _finished(tiny_server, "tiny/llava")
    with pytest.raises(ConfigError, match="attribution patching takes gradients, which run local"):
        attribution_patching(vlm.with_backend(tiny_server.url), inputs, inputs, [site],
                             vlm.yes_no_margin)  # fmt: skip
    assert _finished(tiny_server, "tiny/llava") == before  # refused before sending anything
    with pytest.raises(ConfigError, match=r"Unknown backend 'ftp://x': expected 'local'"):
        vlm.with_backend("ftp://x")
    with pytest.raises(ConfigError, match=r"Unknown backend 'remote'"):
        ExecutionConfig(backend="remote")


STAGES = "accuracy,signals,probes,causal,circuits"


def _run(*args: str) -> tuple[int, str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        done = CliRunner().invoke(app, ["run", "--model", "tiny/llava", "--n", "4", "--batch-size",
                                        "4", "--samples", "2", "--seed", "5", "--stages", STAGES,
                                        "--quiet", *args])  # fmt: skip
    return done.exit_code, done.output


def test_vrp_run_remote_writes_the_local_records(
    tiny_server: ServerProcess, tmp_path: Path
) -> None:
    before = _finished(tiny_server, "tiny/llava")
    code, output = _run("--out", str(tmp_path / "remote"), "--remote", tiny_server.url)
    assert code == 0, output
    assert _finished(tiny_server, "tiny/llava") > before + 10
    code, output = _run("--out", str(tmp_path / "local"))
    assert code == 0, output
    records = sorted((tmp_path / "local" / "records").glob("*.parquet"))
    assert len(records) == 5
    for path in records:
        local, remote = (
            pq.read_table(path),
            pq.read_table(tmp_path / "remote" / "records" / path.name),
        )
        if path.stem != "circuits":
            assert path.read_bytes() == (tmp_path / "remote" / "records" / path.name).read_bytes()
            continue
        # the local patching sweeps also resume at positions (a key-value cache does not travel
        # to a server): equal up to float rounding
        assert local.schema == remote.schema and local.num_rows == remote.num_rows
        for name in local.column_names:
            a, b = local[name].to_pylist(), remote[name].to_pylist()
            if pa.types.is_floating(local.schema.field(name).type):
                np.testing.assert_allclose(np.array(a, float), np.array(b, float), atol=1e-5,
                                           equal_nan=True, err_msg=name)  # fmt: skip
            else:
                assert a == b, name
    manifest = json.loads((tmp_path / "remote" / "manifest.json").read_text())
    assert manifest["config"]["remote"] == tiny_server.url


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://127.0.0.1:9", "remote: cannot reach http://127.0.0.1:9"),
        ("ftp://127.0.0.1:9", "remote: expected the http(s) URL of a `vrp serve` server"),
        ("{server}/nothing", "not a `vrp serve` model list"),
    ],
)
def test_vrp_run_remote_checks_the_server_first(
    tiny_server: ServerProcess, tmp_path: Path, url: str, message: str
) -> None:
    code, output = _run(
        "--out", str(tmp_path / "run"), "--remote", url.format(server=tiny_server.url)
    )
    assert code == 2 and message in " ".join(output.split()), output
    assert not (tmp_path / "run").exists()  # nothing written before the check


def test_vrp_run_remote_needs_every_model_hosted(
    tmp_path: Path, tiny_server: ServerProcess
) -> None:
    from vrp.study import StudyConfig, check_config

    config = StudyConfig(models=("tiny/llava", "organism/llava"), remote=tiny_server.url, n=2)
    with pytest.raises(ConfigError, match=r"not \['organism/llava'\]. Start it with --model"):
        check_config(config)


def test_vrp_run_remote_refuses_a_model_loaded_differently(
    tiny_server: ServerProcess, tmp_path: Path
) -> None:
    code, output = _run("--out", str(tmp_path / "run"), "--remote", tiny_server.url,
                        "--dtype", "bfloat16")  # fmt: skip
    text = " ".join(output.split())
    assert code == 2 and "hosts 'tiny/llava' differently from the model loaded here" in text
    assert "dtype bfloat16 here, float32 there" in text
    assert not (tmp_path / "run").exists()
