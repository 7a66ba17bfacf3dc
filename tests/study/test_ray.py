"""The study on a local Ray cluster (started by the test, 2 CPUs): sharded over two actors the
records equal a local run's byte for byte, and a worker killed mid-run is replaced and its
batches redone, nothing lost or duplicated."""

import json
import os
import signal
import warnings
from pathlib import Path

import pytest

from vrp.core import ConfigError
from vrp.study import Stage, StudyConfig, run_study

ray = pytest.importorskip("ray")

from vrp.study import RayExecutor, RayOptions  # noqa: E402  (after the skip)

STAGES = ("accuracy", "signals", "causal", "circuits")
SETTINGS = {"models": ("tiny/llava",), "n": 4, "batch_size": 4, "samples": 2, "seed": 5,
            "stages": tuple(Stage(s) for s in STAGES)}  # fmt: skip


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ray") / "local"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run_study(StudyConfig(out=out, **SETTINGS))
    return out


def _same_records(mine: Path, theirs: Path) -> None:
    for stage in STAGES:
        for suffix in ("parquet", "csv"):
            a = (mine / "records" / f"{stage}.{suffix}").read_bytes()
            assert a == (theirs / "records" / f"{stage}.{suffix}").read_bytes(), stage
        drop = ("seconds", "invocation")
        a = json.loads((mine / "results" / "tiny--llava" / f"{stage}.json").read_text())
        b = json.loads((theirs / "results" / "tiny--llava" / f"{stage}.json").read_text())
        assert {k: v for k, v in a.items() if k not in drop} == {
            k: v for k, v in b.items() if k not in drop
        }, stage


def _run(out: Path, executor) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            run_study(StudyConfig(out=out, **SETTINGS), executor=executor)
        finally:
            executor.close()


def test_sharded_run_equals_local_run(cluster, local: Path, tmp_path: Path) -> None:
    executor = RayExecutor(StudyConfig(out=tmp_path / "ray", **SETTINGS), RayOptions(workers=2))
    _run(tmp_path / "ray", executor)
    _same_records(tmp_path / "ray", local)
    logged = json.loads((tmp_path / "ray" / "manifest.json").read_text())["invocations"][0]
    assert logged["executor"]["executor"] == "ray" and logged["executor"]["workers"] == 2
    final = json.loads((tmp_path / "ray" / "manifest.json").read_text())
    machines = final["last_invocation_executor"]["worker_machines"]
    assert machines and all(m["host"] and m["torch_threads"] == 1 for m in machines)


class KillingExecutor(RayExecutor):
    """Kills one worker's process (SIGKILL) after the first batch of the causal stage."""

    killed = False

    def compute(self, ctx, stage, indices):
        for result in super().compute(ctx, stage, indices):
            if stage == "causal" and not self.killed:
                victim = self.pool(ctx.model)[1]
                os.kill(ray.get(victim.pid.remote()), signal.SIGKILL)
                self.killed = True
            yield result


def test_a_worker_killed_mid_run_is_replaced(cluster, local: Path, tmp_path: Path) -> None:
    executor = KillingExecutor(StudyConfig(out=tmp_path / "kill", **SETTINGS),
                               RayOptions(workers=2))  # fmt: skip
    _run(tmp_path / "kill", executor)
    assert executor.killed and executor.restarts >= 1
    final = json.loads((tmp_path / "kill" / "manifest.json").read_text())
    assert final["last_invocation_executor"]["restarted_workers"] == executor.restarts
    _same_records(tmp_path / "kill", local)
    parts = tmp_path / "kill" / "parts" / "causal" / "tiny--llava"
    assert len(list(parts.glob("part-*.parquet"))) == 4  # each batch once


def test_bad_options() -> None:
    with pytest.raises(ConfigError, match="workers >= 1"):
        RayOptions(workers=0)
    with pytest.raises(ConfigError, match="max_restarts >= 0; got .* and -1"):
        RayOptions(max_restarts=-1)


class BrokenWorker:
    def __init__(self, *args) -> None:
        raise RuntimeError("no such GPU here")

    def compute(self, stage: str, index: int) -> None:
        raise AssertionError("never reached: the worker did not start")


def test_a_worker_that_cannot_start_stops_the_run_with_its_reason(cluster, tmp_path: Path) -> None:
    config = StudyConfig(out=tmp_path / "broken", **SETTINGS)
    executor = RayExecutor(config, RayOptions(workers=1))
    executor.actor_class = ray.remote(BrokenWorker)
    with pytest.raises(ConfigError, match="a Ray worker could not start: .*no such GPU here"):
        _run(tmp_path / "broken", executor)
    assert executor.restarts == 0


def test_cli_runs_on_ray_and_refuses_unknown_executors(
    cluster, local: Path, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    import vrp.cli._commands  # noqa: F401  (registers the commands on the app)
    from vrp.cli._app import app

    out = tmp_path / "cli"
    args = ["run", "--model", "tiny/llava", "--n", "4", "--batch-size", "4", "--samples", "2",
            "--seed", "5", "--stages", ",".join(STAGES), "--out", str(out), "--quiet",
            "--executor", "ray", "--workers", "2"]  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        done = CliRunner().invoke(app, args)
    assert done.exit_code == 0, done.output
    _same_records(out, local)
    bad = CliRunner().invoke(app, [*args[:-4], "--executor", "spark"])
    assert bad.exit_code == 2 and "executor: expected 'local' or 'ray', got 'spark'" in bad.output
