"""Bad input to `vrp report` / `vrp compare`: a clear VRP error naming what was expected, what
arrived and the fix; the CLI prints it as one line and exits 2; nothing is written."""

import json
from pathlib import Path

import pytest

from vrp.core import ConfigError, DataError
from vrp.report import build_report, compare_runs

from .planted import accuracy_result, planted_run


def _small(root: Path, **kwargs) -> Path:
    return planted_run(root, {"m/llava": {"accuracy": accuracy_result({"random": 0.5}, 40)}},
                       **kwargs)  # fmt: skip


def test_a_missing_folder_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"does not exist: expected the folder a `vrp run` wrote"):
        build_report(tmp_path / "nope")


def test_a_file_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_text("x")
    with pytest.raises(ConfigError, match=r"is a file: expected the folder a `vrp run` wrote"):
        build_report(tmp_path / "f.txt", tmp_path / "r.html")


def test_a_folder_without_a_run_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ConfigError, match=r"is not a VRP run directory: expected config.json, "
                       r"manifest.json.*found \['notes.txt'\]"):  # fmt: skip
        build_report(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_an_unfinished_run_is_a_data_error_saying_how_to_resume(tmp_path: Path) -> None:
    run = _small(tmp_path / "run", manifest=False)
    with pytest.raises(DataError, match=r"unfinished run: config.json is there but not "
                       r"manifest.json.*finished so far: m--llava/accuracy.*Rerun the same"):  # fmt: skip
        build_report(run)
    assert not (run / "report.html").exists()


def test_a_stage_without_results_is_unfinished(tmp_path: Path) -> None:
    run = _small(tmp_path / "run")
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "stages": ["accuracy", "signals"]}))
    with pytest.raises(DataError, match=r"results are missing for m/llava/signals"):
        build_report(run)


def test_a_damaged_json_is_a_data_error_and_writes_nothing(tmp_path: Path) -> None:
    run = _small(tmp_path / "run")
    (run / "results" / "m--llava" / "accuracy.json").write_text("{not json")
    with pytest.raises(DataError, match=r"accuracy.json is not valid JSON"):
        build_report(run, tmp_path / "out" / "r.html")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("out", ["report.txt", "folder"])
def test_out_must_be_an_html_file(tmp_path: Path, out: str) -> None:
    run = _small(tmp_path / "run")
    (tmp_path / "folder").mkdir()
    with pytest.raises(ConfigError, match=r"--out .* (does not end in|is not an HTML file name)"):
        build_report(run, tmp_path / out)


def test_a_failed_rebuild_keeps_the_previous_report(tmp_path: Path) -> None:
    run = _small(tmp_path / "run")
    first = build_report(run)
    before = first.html.read_bytes()
    (run / "manifest.json").write_text("[]")
    with pytest.raises(DataError, match=r"holds a list, expected a JSON object"):
        build_report(run)
    assert first.html.read_bytes() == before and first.markdown.is_file()
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]


def test_compare_needs_a_shared_model(tmp_path: Path) -> None:
    a = _small(tmp_path / "a")
    b = planted_run(
        tmp_path / "b", {"m/qwen2_vl": {"accuracy": accuracy_result({"random": 0.5}, 40)}}
    )
    with pytest.raises(DataError, match=r"share no model \(\['m/llava'\] vs \['m/qwen2_vl'\]\)"):
        compare_runs(a, b, tmp_path / "c.html")
    assert not (tmp_path / "c.html").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("report", "nope"), "error: RUN_DIR nope does not exist"),
        (("report", "."), "is not a VRP run directory"),
        (("compare", "nope", "."), "error: RUN_DIR nope does not exist"),
    ],
)
def test_cli_prints_one_line_and_exits_2(tmp_path: Path, args, message: str, vrp_main) -> None:
    code, stderr = vrp_main(*args, cwd=tmp_path)
    assert code == 2, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert "Traceback" not in stderr
    assert list(tmp_path.iterdir()) == []
