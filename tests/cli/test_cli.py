"""The `vrp` command line: every command answers --help, and the main job runs offline."""

import pytest
import typer
from typer.testing import CliRunner

from vrp.cli import (
    _commands,  # noqa: F401
    app,
)
from vrp.cli._app import main  # noqa: F401  (imports register the commands)
from vrp.models import families

runner = CliRunner()


def _command_paths(group: typer.Typer, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = [prefix]
    for command in group.registered_commands:
        paths.append((*prefix, command.name or command.callback.__name__))  # type: ignore[union-attr]
    for sub in group.registered_groups:
        paths += _command_paths(sub.typer_instance, (*prefix, sub.name))  # type: ignore[arg-type]
    return paths


@pytest.mark.parametrize("path", _command_paths(app), ids=lambda p: " ".join(p) or "vrp")
def test_every_command_has_help(path: tuple[str, ...]) -> None:
    result = runner.invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


@pytest.mark.parametrize("family", families())
def test_inspect_prints_sites_grid_and_an_answer(family: str) -> None:
    result = runner.invoke(app, ["inspect", f"tiny/{family}", "--image-size", "32"])
    assert result.exit_code == 0, result.output
    for expected in (
        "language",
        "vision",
        "projector",
        "image tokens: 16",
        "patch grid: 4x4",
        "Q: Is there a green triangle in the image?",  # the benchmark's first question (seed 0)
        "truth: 'yes'",
        "A: ",
    ):
        assert expected in result.output


def test_inspect_unknown_model_is_a_clear_error() -> None:
    result = runner.invoke(app, ["inspect", "tiny/gpt2"])
    assert result.exit_code == 2
    assert "error: Unknown model 'tiny/gpt2'" in result.output


def test_console_script_prints_vrp_errors_as_one_line(monkeypatch, capsys) -> None:
    monkeypatch.setattr("sys.argv", ["vrp", "inspect", "tiny/gpt2"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: Unknown model 'tiny/gpt2'") and "Traceback" not in err
