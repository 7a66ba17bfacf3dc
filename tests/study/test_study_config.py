"""A study config is checked before any work: each bad value gets one error naming its field."""

from pathlib import Path

import pytest

import vrp
from vrp import ConfigError, DataError
from vrp.study import (
    Stage,
    StudyConfig,
    check_config,
    config_from_mapping,
    read_config_file,
    run_study,
)

BAD = [
    ({"models": []}, ConfigError, r"models: expected at least one model"),
    ({"models": ["organism/llama"]}, ConfigError, r"unknown built-in model 'organism/llama'"),
    ({"models": ["not a model"]}, ConfigError, r"neither a built-in name .* nor a Hub id"),
    ({"stages": ["acuracy"]}, ConfigError, r"stages: unknown stage 'acuracy'; choose from"),
    ({"stages": ["probes"]}, ConfigError, r"'probes' reads the hidden states .* add 'signals'"),
    ({"n": 0}, ConfigError, r"n: expected a whole number >= 1"),
    ({"n": "ten"}, ConfigError, r"n: expected a whole number, got 'ten'"),
    ({"batch_size": -1}, ConfigError, r"batch_size: expected a whole number >= 1"),
    ({"samples": -2}, ConfigError, r"samples: expected a whole number >= 0"),
    ({"seed": -1}, ConfigError, r"seed: expected a whole number in 0 .. 2\*\*32 - 1"),
    ({"dtype": "float33"}, ConfigError, r"dtype: expected one of float32, bfloat16, float16"),
    ({"colour": "red"}, ConfigError, r"Unknown config key\(s\) 'colour'; known keys:"),
    ({"data": "missing.jsonl"}, DataError, r"data: expected 'synthetic' or an existing POPE file"),
    ({"images": "imgs"}, ConfigError, r"images: the synthetic benchmark draws its own images"),
]


@pytest.mark.parametrize(("values", "error", "message"), BAD, ids=[str(b[0]) for b in BAD])
def test_bad_config_stops_before_any_work(values, error, message, tmp_path: Path) -> None:
    out = tmp_path / "run"
    with pytest.raises(error, match=message):
        config = config_from_mapping({"out": str(out), "models": ["tiny/llava"], **values})
        run_study(config)
    assert not out.exists()  # nothing written


def test_a_pope_file_needs_its_image_folder(tmp_path: Path) -> None:
    pope = tmp_path / "pope_adversarial.jsonl"
    pope.write_text(
        '{"question_id": 1, "image": "a.png", "text": "Is there a cat?", "label": "yes"}\n'
    )
    with pytest.raises(DataError, match=r"images: a POPE file needs the folder holding its images"):
        StudyConfig(data=str(pope))
    with pytest.raises(DataError, match=r"a\.png"):
        check_config(StudyConfig(models=("tiny/llava",), data=str(pope), images=tmp_path))


def test_toml_file_and_its_errors(tmp_path: Path) -> None:
    good = tmp_path / "run.toml"
    good.write_text('[run]\nmodels = ["tiny/llava"]\nn = 4\nstages = ["accuracy"]\n')
    config = config_from_mapping(read_config_file(good))
    assert config.models == ("tiny/llava",) and config.n == 4 and len(config.stages) == 1
    broken = tmp_path / "broken.toml"
    broken.write_text("models = [\n")
    with pytest.raises(ConfigError, match=r"broken.toml is not valid TOML"):
        read_config_file(broken)
    with pytest.raises(ConfigError, match=r"nope.toml does not exist"):
        read_config_file(tmp_path / "nope.toml")


def test_a_folder_holding_another_run_or_other_files_is_refused(tmp_path: Path) -> None:
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match=r"is not empty and holds no VRP run"):
        run_study(StudyConfig(models=("tiny/llava",), n=2, stages=(Stage.ACCURACY,), out=busy))
    assert sorted(p.name for p in busy.iterdir()) == ["notes.txt"]


def test_a_device_this_machine_lacks_stops_before_any_work(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match=r"device 'cuda:7' is not available"):
        run_study(StudyConfig(models=("tiny/llava",), n=2, device="cuda:7", out=out))
    assert not out.exists()


def test_a_model_that_fails_to_load_leaves_no_claimed_folder(tmp_path: Path) -> None:
    out = tmp_path / "run"
    config = StudyConfig(models=("nobody/no-such-model",), n=2, stages=(Stage.ACCURACY,), out=out)
    with pytest.raises(vrp.VrpError):
        run_study(config)  # offline: the Hub id cannot be fetched, at load time
    assert not out.exists()  # the folder is free for a corrected config
    out.mkdir()
    with pytest.raises(vrp.VrpError):
        run_study(config)
    assert out.is_dir() and not any(out.iterdir())  # a folder the user made stays, empty


def test_one_model_named_twice_in_two_spellings_is_refused(tmp_path: Path) -> None:
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "config.json").write_text("{}")
    with pytest.raises(ConfigError, match=r"name one model folder twice"):
        check_config(StudyConfig(models=(str(ckpt), str(ckpt) + "/"), out=tmp_path / "run"))


def test_a_run_recorded_before_a_setting_existed_resumes_and_a_changed_one_is_named(
    tmp_path: Path,
) -> None:
    import json

    from vrp.study import RunDir

    config = StudyConfig(models=("tiny/llava",), n=2, out=tmp_path / "run").to_json()
    run = RunDir(tmp_path / "run")
    older = {k: v for k, v in config.items() if k != "remote"}  # written before `remote` existed
    run.root.mkdir()
    (run.root / "config.json").write_text(json.dumps(older))
    assert run.claim(config) is True
    with pytest.raises(ConfigError, match=r"another config \(differs in remote\)"):
        run.claim({**config, "remote": "http://127.0.0.1:9"})
