"""`vrp data generate / stats / vocab` through typer's test runner."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from vrp.cli._data import data_app

runner = CliRunner()
SMALL = ["--n-per-split", "24", "--n-counting", "8", "--n-spatial", "8"]


def test_generate_then_stats(tmp_path: Path) -> None:
    out = tmp_path / "bench"
    result = runner.invoke(data_app, ["generate", "--out", str(out), "--seed", "4", *SMALL])
    assert result.exit_code == 0, result.output
    assert "Wrote 88 questions" in result.output and "adversarial" in result.output
    assert (out / "pope_random.jsonl").is_file()
    result = runner.invoke(data_app, ["stats", str(out)])
    assert result.exit_code == 0, result.output
    for text in ("Splits", "random", "popular", "adversarial", "counting", "spatial", "Counting"):
        assert text in result.output


def test_stats_on_a_single_pope_file(small_folder: Path) -> None:
    result = runner.invoke(data_app, ["stats", str(small_folder / "pope_random.jsonl")])
    assert result.exit_code == 0, result.output
    assert "random" in result.output and "Questions per category" in result.output


def test_generate_reports_config_errors(tmp_path: Path) -> None:
    result = runner.invoke(
        data_app, ["generate", "--out", str(tmp_path / "x"), "--colours", "red,mauve"]
    )
    assert result.exit_code == 2
    assert "Unknown: ['mauve']" in result.output
    assert not (tmp_path / "x").exists()


def test_vocab(small_folder: Path) -> None:
    result = runner.invoke(data_app, ["vocab", str(small_folder)])
    assert result.exit_code == 0
    assert {"Is", "?", "empty", "circles"} <= set(result.output.split())


@pytest.mark.parametrize("command", [[], ["generate"], ["stats"], ["vocab"]])
def test_help(command: list[str]) -> None:
    result = runner.invoke(data_app, [*command, "--help"])
    assert result.exit_code == 0 and "Usage" in result.output


def test_registered_on_the_root_app() -> None:
    from vrp.cli._commands import app

    result = runner.invoke(app, ["data", "--help"])
    assert result.exit_code == 0 and "generate" in result.output
