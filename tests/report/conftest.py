"""A small real run (two tiny models, every stage) shared by the report tests, and its report."""

import warnings
from pathlib import Path

import pytest

from vrp.report import ReportFiles, build_report
from vrp.study import StudyConfig, run_study

MODELS = ("tiny/llava", "tiny/qwen2_vl")


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`vrp run` on two tiny models, 6 questions per split, every stage (about 6 s)."""
    out = tmp_path_factory.mktemp("report_run") / "run"
    config = StudyConfig(models=MODELS, n=6, batch_size=6, samples=2, out=out)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # undefined C_k, small-n probes: the report's warnings
        run_study(config)
    return out


@pytest.fixture(scope="session")
def tiny_report(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> ReportFiles:
    return build_report(tiny_run, tmp_path_factory.mktemp("report") / "report.html")
