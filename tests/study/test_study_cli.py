"""`vrp run` from the command line: a checkpoint folder and a POPE file with its images (the
documented path for real checkpoints, here on a tiny checkpoint on the CPU), and its errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import vrp
from vrp.data import SyntheticConfig, write_benchmark


def _vrp(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    code = "import sys; from vrp.cli import main; sys.argv[0] = 'vrp'; main()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=600)  # fmt: skip


@pytest.fixture(scope="module")
def checkpoint_and_pope(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("real")
    vrp.save(vrp.load("tiny/qwen2_vl"), root / "checkpoint")
    bench = write_benchmark(SyntheticConfig(n_per_split=4, n_counting=0, n_spatial=0), root / "b")
    return root / "checkpoint", bench


def test_checkpoint_folder_with_a_pope_file_end_to_end(checkpoint_and_pope, tmp_path: Path) -> None:
    checkpoint, bench = checkpoint_and_pope
    out = tmp_path / "run"
    done = _vrp("run", "--model", str(checkpoint), "--data", str(bench / "pope_adversarial.jsonl"),
                "--images", str(bench / "images"), "--out", str(out), "--device", "cpu",
                "--dtype", "bfloat16", "--samples", "2", "--batch-size", "3", "--stages",
                "accuracy,signals", "--quiet", cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    table = pq.read_table(out / "records" / "signals.parquet")
    assert table.num_rows == 4 and set(table["split"].to_pylist()) == {"adversarial"}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["dtype"] == "bfloat16"
    accuracy = json.loads(
        (out / "results" / manifest_slug(checkpoint) / "accuracy.json").read_text()
    )
    assert accuracy["splits"]["adversarial"]["n"] == 4


def manifest_slug(path: Path) -> str:
    from vrp.study import model_slug

    return model_slug(str(path))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--model", "organism/llama"), "models: unknown built-in model 'organism/llama'"),
        (("--stages", "accuracy,sigals"), "stages: unknown stage 'sigals'"),
        (("--n", "0"), "n: expected a whole number >= 1"),
        (("--data", "nope.jsonl"), "data: expected 'synthetic' or an existing POPE file"),
        (("--model", "tiny/llava", "--dtype", "float8"), "dtype: expected one of"),
    ],
)
def test_bad_flags_print_one_line_and_exit_2(args, message, tmp_path: Path, vrp_main) -> None:
    code, stderr = vrp_main("run", *args, "--out", str(tmp_path / "run"), cwd=tmp_path)
    assert code == 2
    lines = stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and message in lines[-1], stderr
    assert "Traceback" not in stderr
    assert not (tmp_path / "run").exists()
