"""`vrp organisms train / evaluate / card / ship` through typer's test runner (--help of every
command is checked in tests/cli)."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.organisms.conftest import tiny_recipe
from vrp.cli._organisms import organisms_app
from vrp.organisms import RECIPES

runner = CliRunner()


def test_train_then_evaluate_a_run_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(RECIPES, "llava", tiny_recipe(steps=4))
    out = tmp_path / "run"
    args = ["train", "--family", "llava", "--out", str(out), "--threads", "1", "--no-progress"]
    result = runner.invoke(organisms_app, [*args, "--validate-every", "0"])
    assert result.exit_code == 0, result.output
    assert "Trained llava (seed 0) for 4 steps" in result.output
    assert "last 4 steps)." in result.output  # the answer loss as training.json records it
    result = runner.invoke(
        organisms_app, ["evaluate", str(out / "model"), "--n", "8", "--method", "logits"]
    )
    assert result.exit_code == 0, result.output
    assert "random" in result.output and "wrong answers" in result.output


def test_shipped_card_prints(tmp_path: Path) -> None:
    result = runner.invoke(organisms_app, ["card", "llava"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("# LLaVA organism")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--family", "nope"], "No organism recipe for family 'nope'"),
        (["evaluate", "llava", "--seed", "1000001"], "reserved for training data"),
        (["evaluate", "llava", "--n", "8", "--method", "sample"], "method must be 'generate'"),
        (["card", "nope"], "No organism 'nope'"),
        (["ship", ".", "--family", "llava"], "holds no llava model"),
    ],
)
def test_errors_exit_2_with_the_reason(args: list[str], message: str, tmp_path: Path) -> None:
    result = runner.invoke(organisms_app, args)
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())
