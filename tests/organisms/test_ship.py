"""`ship` checks a model folder before it replaces the installed organism, and replaces it whole.

Every test ships into a temporary asset folder (`ASSET_DIR` is patched), never into the package.
"""

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

import vrp
from vrp import ConfigError
from vrp.data import _files
from vrp.organisms import _card, _checkpoint, ship


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _saved(folder: Path, family: str = "llava") -> Path:
    vrp.models.save(vrp.load(f"tiny/{family}"), folder)
    return folder


@pytest.fixture
def assets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temporary asset folder with an organism/llava installed."""
    folder = tmp_path / "assets"
    monkeypatch.setattr(_card, "ASSET_DIR", folder)
    ship(_saved(tmp_path / "installed"), "llava")
    return folder


def _corrupt_weights(folder: Path) -> None:
    (folder / "model.safetensors").write_bytes(b"\0" * 64)


def _drop(*names: str) -> Callable[[Path], None]:
    def drop(folder: Path) -> None:
        for name in names:
            (folder / name).unlink()

    return drop


def _no_model_type(folder: Path) -> None:
    (folder / "config.json").write_text('{"architectures": []}', encoding="utf-8")


BREAKAGES = {
    "corrupt-weights": (_corrupt_weights, r"holds no loadable llava model"),
    "no-weights": (_drop("model.safetensors"), r"missing weights"),
    "no-tokenizer": (_drop("tokenizer.json"), r"holds no loadable llava model"),
    "no-processor": (
        _drop("preprocessor_config.json", "processor_config.json"),
        r"missing processor config",
    ),
    "no-model-type": (_no_model_type, r"config\.json is unreadable or has no model_type"),
}


def test_ship_installs_the_folder(assets: Path, tmp_path: Path) -> None:
    assert _snapshot(assets / "llava") == _snapshot(tmp_path / "installed")
    assert sorted(p.name for p in assets.iterdir()) == ["llava"]  # no staging copy left behind


@pytest.mark.parametrize("breakage", BREAKAGES, ids=str)
def test_failed_ship_leaves_the_installed_organism_untouched(
    breakage: str, assets: Path, tmp_path: Path
) -> None:
    before = _snapshot(assets / "llava")
    broken = _saved(tmp_path / "broken")
    (broken / "training.json").write_text("{}", encoding="utf-8")
    breaking, message = BREAKAGES[breakage]
    breaking(broken)
    with pytest.raises(ConfigError, match=message) as caught:
        ship(broken, "llava")
    assert ".partial" not in str(caught.value)  # names the user's folder, not the staged copy
    assert _snapshot(assets / "llava") == before
    assert sorted(p.name for p in assets.iterdir()) == ["llava"]


def test_ship_of_another_family_leaves_the_installed_organism_untouched(
    assets: Path, tmp_path: Path
) -> None:
    before = _snapshot(assets / "llava")
    with pytest.raises(ConfigError, match=r"config model_type 'qwen2_vl'.*--family qwen2_vl"):
        ship(_saved(tmp_path / "qwen", "qwen2_vl"), "llava")
    assert _snapshot(assets / "llava") == before


def test_a_good_ship_replaces_the_installed_organism(assets: Path, tmp_path: Path) -> None:
    new = _saved(tmp_path / "new")
    (new / "training.json").write_text('{"seed": 7}', encoding="utf-8")
    assert ship(new, "llava") == assets / "llava"
    assert _snapshot(assets / "llava") == _snapshot(new)
    assert sorted(p.name for p in assets.iterdir()) == ["llava"]


def test_a_failed_copy_leaves_the_installed_organism_untouched(
    assets: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _snapshot(assets / "llava")
    copytree = shutil.copytree

    def copy_then_fail(source: Path, target: Path) -> None:
        copytree(source, target)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(_checkpoint.shutil, "copytree", copy_then_fail)
    with pytest.raises(ConfigError, match=r"cannot copy .* beside .*llava is unchanged"):
        ship(_saved(tmp_path / "new"), "llava")
    assert _snapshot(assets / "llava") == before
    assert sorted(p.name for p in assets.iterdir()) == ["llava"]


def test_replace_folder_puts_the_old_folder_back_when_the_swap_fails(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.mkdir()
    (target / "weights").write_text("old", encoding="utf-8")
    with pytest.raises(FileNotFoundError):
        _files.replace_folder(tmp_path / "missing-staging", target)
    assert (target / "weights").read_text(encoding="utf-8") == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["target"]
