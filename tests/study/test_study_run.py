"""`run_study` end to end on a tiny model: files, numbers equal to the library, and resume after
SIGKILL at several points giving records identical to an uninterrupted run."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

import vrp
from vrp.data import evaluate
from vrp.pipeline import LayerSignals, SignalConfig, batch_signals
from vrp.probes import SweepConfig, probe_sweep
from vrp.store import ActivationStore
from vrp.study import Stage, StudyConfig, run_study
from vrp.study._causal import CAUSAL
from vrp.study._circuits import NOISE_STD
from vrp.study._samples import study_samples

STAGES = ("accuracy", "signals", "probes")
SETTINGS = {"models": ("tiny/llava",), "n": 4, "batch_size": 4, "samples": 2, "seed": 3,
            "stages": tuple(Stage(s) for s in STAGES)}  # fmt: skip


def _config(out: Path) -> StudyConfig:
    return StudyConfig(out=out, **SETTINGS)


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("study") / "run"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # undefined C_k / small-n probe warnings, tested elsewhere
        run_study(_config(out))
    return out


def test_a_run_leaves_records_results_store_and_manifest(finished: Path) -> None:
    for stage in STAGES:
        assert (finished / "records" / f"{stage}.parquet").is_file()
        assert (finished / "records" / f"{stage}.csv").is_file()
        result = json.loads((finished / "results" / "tiny--llava" / f"{stage}.json").read_text())
        assert result["n"] > 0 and result["model"] == "tiny/llava"
    manifest = json.loads((finished / "manifest.json").read_text())
    assert manifest["config"]["seed"] == 3 and manifest["versions"]["nnsight"] == "0.8.1"
    assert set(manifest["timings"]["tiny/llava"]) == set(STAGES)
    assert len(manifest["models"]["tiny/llava"]["sha256"]) == 64
    assert manifest["models"]["tiny/llava"]["family"] == vrp.load("tiny/llava").family == "llava"
    assert manifest["settings"]["causal"]["n_masks"] == CAUSAL.n_masks
    assert manifest["settings"]["circuits"]["noise_std"] == NOISE_STD
    assert manifest["settings"]["signals"]["samples"] == 2  # the config's K, beside the defaults
    assert manifest["settings"]["signals"]["top_k_heads"] == SignalConfig().top_k_heads
    (only,) = manifest["invocations"]
    assert only["versions"] == manifest["versions"] and not only["resumed"]
    assert manifest["computed_by"]["tiny/llava"] == dict.fromkeys(STAGES, 0)
    assert manifest["same_versions"]
    store = ActivationStore.open(finished / "store" / "tiny--llava")
    assert store.n == 16 and len(store.layers) == 2  # 16 yes/no questions, 2 layers
    assert not list(finished.rglob("*.tmp"))  # every write completed by a rename


def test_the_runs_numbers_equal_the_library_calls(finished: Path) -> None:
    vlm = vrp.load("tiny/llava")
    samples = study_samples(_config(finished))
    records = pq.read_table(finished / "records" / "accuracy.parquet").to_pylist()
    answers = {r["item"]: r["answer"] for r in records}
    report = evaluate(samples.questions, [answers[i] for i in samples.indices])
    result = json.loads((finished / "results" / "tiny--llava" / "accuracy.json").read_text())
    for split, metrics in report.splits.items():
        assert result["splits"][split]["accuracy"]["estimate"] == metrics.accuracy.estimate
    yes_no = samples.where(lambda q: q.answer in ("yes", "no"))
    batch = yes_no[4:8]  # the run's second batch
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        direct = batch_signals(vlm, batch, SignalConfig(batch_size=4, samples=2, seed=3), index=1)
    table = pq.read_table(finished / "records" / "signals.parquet")
    rows = {r["item"]: r for r in table.to_pylist()}
    for item, mine in zip(yes_no.indices[4:8], direct.samples, strict=True):
        theirs = rows[item]
        assert theirs["question_id"] == mine.question_id
        for key in (
            "answer",
            "answer_logprob",
            "yes_no_margin",
            "spatial_entropy",
            "self_consistency",
        ):
            assert theirs[key] == getattr(mine, key), key
        for name in LayerSignals.NAMES:  # the per-layer curves, one value per layer
            expected = getattr(direct.per_layer, name)[direct.samples.index(mine)]
            assert theirs[f"{name}_by_layer"] == pytest.approx(expected, abs=1e-12, nan_ok=True)
            assert len(theirs[f"{name}_by_layer"]) == len(direct.layers) == 2
        assert theirs["truth_margin_by_layer"][-1] == theirs["truth_margin"]
        assert theirs["visual_attribution_by_layer"][-1] == theirs["visual_attribution"]
    store = ActivationStore.open(finished / "store" / "tiny--llava")
    labels = np.array([int(rows[int(i)]["correct"]) for i in store.sample_ids])
    sweep = probe_sweep(store, labels, SweepConfig(n_splits=5, seed=3, refit=False))
    probes = json.loads((finished / "results" / "tiny--llava" / "probes.json").read_text())
    for layer, est in zip(sweep.layers, sweep.auroc, strict=True):
        assert probes["per_layer"][str(layer)]["estimate"] == pytest.approx(est.estimate, abs=1e-12)


def test_the_per_layer_curves_are_list_columns_and_json_text_in_the_csv(finished: Path) -> None:
    table = pq.read_table(finished / "records" / "signals.parquet")
    csv = pa_csv.read_csv(finished / "records" / "signals.csv")
    for name in LayerSignals.NAMES:
        column = f"{name}_by_layer"
        assert pa.types.is_list(table.schema.field(column).type), column
        from_csv = np.array([json.loads(t) for t in csv[column].to_pylist()], dtype=float)
        np.testing.assert_array_equal(from_csv, np.array(table[column].to_pylist(), dtype=float))
    rows = table.to_pylist()
    for row in rows:  # mlp_share is the MLP's share of the stored per-layer direct effects
        attn, mlp = np.abs(row["attn_direct_by_layer"]), np.abs(row["mlp_direct_by_layer"])
        assert row["mlp_share"] == pytest.approx(mlp.sum() / (mlp.sum() + attn.sum()), rel=1e-5)


_RUN = """
import sys, warnings
from pathlib import Path
warnings.simplefilter("ignore")
from vrp.study import StudyConfig, run_study
from tests.study import test_study_run
run_study(StudyConfig(out=Path(sys.argv[1]), **getattr(test_study_run, sys.argv[2])))
"""
CAUSAL_SETTINGS = {**SETTINGS, "stages": (Stage.CAUSAL, Stage.CIRCUITS)}


def _start(out: Path, settings: str = "SETTINGS") -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", _RUN, str(out), settings], env=env,
                            cwd=Path.cwd())  # fmt: skip


def _kill_when(process: subprocess.Popen, ready: Path, timeout: float = 120.0) -> bool:
    """SIGKILLs `process` as soon as `ready` exists; False if it finished first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready.exists():
            process.send_signal(signal.SIGKILL)
            process.wait()
            return True
        if process.poll() is not None:
            return False
        time.sleep(0.02)
    process.kill()
    raise AssertionError(f"{ready} never appeared")


def test_resume_after_sigkill_gives_identical_records(finished: Path, tmp_path: Path) -> None:
    out = tmp_path / "killed"
    parts = out / "parts"
    points = [
        parts / "accuracy" / "tiny--llava" / "part-00001.parquet",  # inside the first stage
        parts / "signals" / "tiny--llava" / "hidden-00002.npy",  # between a batch's two files
        out / "store" / "tiny--llava" / "manifest.json",  # after the store, before probes end
    ]
    killed = 0
    for point in points:
        killed += _kill_when(_start(out), point)
    assert killed >= 2, "the run finished before it could be interrupted"
    assert _start(out).wait(timeout=300) == 0
    for stage in STAGES:
        mine = (out / "records" / f"{stage}.csv").read_bytes()
        assert mine == (finished / "records" / f"{stage}.csv").read_bytes(), stage
        mine = (out / "records" / f"{stage}.parquet").read_bytes()
        assert mine == (finished / "records" / f"{stage}.parquet").read_bytes(), stage


def test_a_resume_under_other_versions_warns_and_the_manifest_lists_both(
    finished: Path, tmp_path: Path
) -> None:
    out = tmp_path / "mixed"
    shutil.copytree(finished, out)
    log = out / "invocations.jsonl"
    earlier = json.loads(log.read_text().splitlines()[0])
    earlier["versions"]["torch"] = "1.0.0"
    log.write_text(json.dumps(earlier) + "\n" + '{"started": "torn by a k')  # a killed write
    (out / "results" / "tiny--llava" / "probes.json").unlink()
    with pytest.warns(UserWarning, match=r"begun with other versions of torch \(\['1.0.0'\]"):
        run_study(_config(out))
    manifest = json.loads((out / "manifest.json").read_text())
    assert [i["versions"]["torch"] for i in manifest["invocations"]][0] == "1.0.0"
    assert len(manifest["invocations"]) == 2 and manifest["invocations"][1]["resumed"]
    assert not manifest["same_versions"]
    assert manifest["computed_by"]["tiny/llava"] == {"accuracy": 0, "signals": 0, "probes": 1}


def test_causal_and_circuits_resume_after_sigkill_with_identical_records(tmp_path: Path) -> None:
    """The stages with a plan and with pairs: killed after the plan, inside each stage."""
    whole = tmp_path / "whole"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run_study(StudyConfig(out=whole, **CAUSAL_SETTINGS))
    out = tmp_path / "killed"
    parts = out / "parts"
    points = [
        parts / "causal" / "tiny--llava" / "plan.json",  # the plan written, no batch yet
        parts / "causal" / "tiny--llava" / "part-00002.parquet",  # inside the causal stage
        parts / "circuits" / "tiny--llava" / "part-00001.parquet",  # inside the circuits stage
    ]
    killed = sum(_kill_when(_start(out, "CAUSAL_SETTINGS"), point) for point in points)
    assert killed >= 2, "the run finished before it could be interrupted"
    assert _start(out, "CAUSAL_SETTINGS").wait(timeout=300) == 0
    for stage in ("causal", "circuits"):
        for suffix in ("csv", "parquet"):
            mine = (out / "records" / f"{stage}.{suffix}").read_bytes()
            assert mine == (whole / "records" / f"{stage}.{suffix}").read_bytes(), stage
        theirs = json.loads((whole / "results" / "tiny--llava" / f"{stage}.json").read_text())
        mine = json.loads((out / "results" / "tiny--llava" / f"{stage}.json").read_text())
        drop = ("seconds", "invocation")
        assert {k: v for k, v in mine.items() if k not in drop} == {
            k: v for k, v in theirs.items() if k not in drop
        }
    assert len(json.loads((out / "manifest.json").read_text())["invocations"]) == killed + 1
