"""The synthetic benchmark: generate in memory, write to disk in POPE's format, read back.

A written benchmark is a folder::

    benchmark.json            format tag, the full config, split files and sizes
    pope_random.jsonl         POPE JSON Lines (question_id, image, text, label), one per split
    pope_popular.jsonl
    pope_adversarial.jsonl
    counting.jsonl            labels are counts ("0", "1", ...)
    spatial.jsonl
    scenes.jsonl              one scene graph per image
    images/scene_000000.png   ...

Everything is a function of the config: the same config gives byte-identical files. Writing goes
to a hidden sibling folder that is renamed into place only when complete, so an error never leaves
a half-written benchmark behind.
"""

import dataclasses
import json
import os
import shutil
import tempfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..core import ConfigError, DataError
from ._config import SyntheticConfig
from ._dataset import Question, QuestionDataset
from ._files import check_output_folder, first_missing, read_text, replace_folder
from ._pope import FolderImages, pope_line, read_questions
from ._questions import (
    counting_questions,
    n_scenes,
    pope_questions,
    pope_scene_count,
    spatial_questions,
)
from ._render import render_scene
from ._scene import Scene, sample_scene

FORMAT = "vrp-synthetic-pope/1"
SPLIT_FILES: dict[str, str] = {
    "random": "pope_random.jsonl",
    "popular": "pope_popular.jsonl",
    "adversarial": "pope_adversarial.jsonl",
    "counting": "counting.jsonl",
    "spatial": "spatial.jsonl",
}
_STREAM_SCENES = 0


def generate_scenes(config: SyntheticConfig) -> list[Scene]:
    """All scenes of the benchmark; scene ``i`` depends only on the config and ``i``."""
    themes = config.themes()
    scenes = []
    for i in range(n_scenes(config)):
        rng = np.random.default_rng([config.seed, _STREAM_SCENES, i])
        theme = themes[int(rng.integers(len(themes)))]
        scenes.append(sample_scene(config, theme, i, rng))
    return scenes


def _build(config: SyntheticConfig) -> tuple[list[Scene], list[Question]]:
    scenes = generate_scenes(config)
    pope = pope_questions(scenes[: pope_scene_count(config)], config)
    questions = [
        *pope["random"],
        *pope["popular"],
        *pope["adversarial"],
        *counting_questions(scenes, config),
        *spatial_questions(scenes, config),
    ]
    used = {q.image_name for q in questions}
    return [s for s in scenes if s.image in used], questions


class SceneImages:
    """Renders scene images on demand, keeping the most recent `cache_size` in memory.

    Callers get a copy, so drawing on a sample's image (e.g. masking patches) never alters the cache.
    """

    def __init__(self, scenes: dict[str, Scene], config: SyntheticConfig, cache_size: int) -> None:
        self.scenes = scenes
        self.config = config
        self.cache_size = cache_size
        self._cache: OrderedDict[str, Image.Image] = OrderedDict()

    def __call__(self, name: str) -> Image.Image:
        if name in self._cache:
            self._cache.move_to_end(name)
            return self._cache[name].copy()
        image = render_scene(self.scenes[name], self.config)
        if self.cache_size > 0:
            self._cache[name] = image.copy()
            if len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return image


def generate(config: SyntheticConfig | None = None, *, cache_size: int = 4096) -> QuestionDataset:
    """Generates the synthetic benchmark in memory: all five splits over shared scenes.

    Images are drawn when a sample is read (the same pixels as the written PNGs) and the most
    recent `cache_size` are kept, so repeated epochs over a small benchmark do not redraw them.

    Args:
      config: the generator config; `SyntheticConfig()` if None.
      cache_size: rendered images kept in memory (0 disables the cache).

    Returns:
      The dataset, splits in order random, popular, adversarial, counting, spatial.

    Raises:
      ConfigError: `config` is not a `SyntheticConfig`, `cache_size` is negative, or the scenes
        cannot supply the requested counting or spatial questions.
    """
    config = _check_config(config if config is not None else SyntheticConfig())
    if isinstance(cache_size, bool) or not isinstance(cache_size, int) or cache_size < 0:
        raise ConfigError(
            f"cache_size must be an integer >= 0 (0 disables the cache); got {cache_size!r}."
        )
    scenes, questions = _build(config)
    by_name = {s.image: s for s in scenes}
    return QuestionDataset(questions, SceneImages(by_name, config, cache_size), by_name)


def _check_config(config: object) -> SyntheticConfig:
    if not isinstance(config, SyntheticConfig):
        raise ConfigError(
            f"config must be a vrp.data.SyntheticConfig; got {type(config).__name__}. Build one "
            "with SyntheticConfig(seed=..., n_per_split=...) or read one with load_config(folder)."
        )
    return config


def write_benchmark(config: SyntheticConfig, out: str | Path, *, overwrite: bool = False) -> Path:
    """Generates the benchmark and writes it to folder `out` (layout in the module docstring).

    Everything is checked before anything is written; the folder appears only once complete, and
    a failure removes whatever this call created (parent folders included).

    Args:
      config: the generator config.
      out: the folder to create.
      overwrite: replace `out` if it already holds a benchmark.

    Returns:
      The folder written.

    Raises:
      ConfigError: `out` exists and `overwrite` is False, or `out` is a non-empty folder that is
        not a benchmark (never deleted), or `out` cannot be created (a parent is a file or not
        writable), or writing fails, or the config cannot supply the questions asked for.
    """
    config = _check_config(config)
    out = Path(out)
    _check_target(out, overwrite)
    check_output_folder(out, "the benchmark folder")
    scenes, questions = _build(config)
    created = first_missing(out.parent)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    except OSError as error:
        _remove(created)
        raise _write_error(out, error) from None
    try:
        _write_all(staging, config, scenes, questions)
        os.chmod(staging, 0o755)  # mkdtemp creates 0o700
        replace_folder(staging, out)
    except BaseException as error:
        shutil.rmtree(staging, ignore_errors=True)
        _remove(created)
        if isinstance(error, OSError):
            raise _write_error(out, error) from None
        raise
    return out


def _remove(folder: Path | None) -> None:
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)


def _write_error(out: Path, error: OSError) -> ConfigError:
    reason = error.strerror or str(error)
    reason += f" ({error.filename})" if error.filename else ""
    return ConfigError(
        f"cannot write the benchmark to {out}: {reason}. Nothing was written; choose a writable "
        "folder with free space."
    )


def _check_target(out: Path, overwrite: bool) -> None:
    if not out.exists():
        return
    if not out.is_dir() or (any(out.iterdir()) and not (out / "benchmark.json").is_file()):
        raise ConfigError(
            f"{out} exists and is not a benchmark folder; refusing to replace it. Choose a new "
            "path or an empty folder."
        )
    if not overwrite and any(out.iterdir()):
        raise ConfigError(
            f"{out} already holds a benchmark. Pass overwrite=True (CLI: --overwrite) to replace "
            "it, or choose another folder."
        )


def _write_all(
    folder: Path, config: SyntheticConfig, scenes: list[Scene], questions: list[Question]
) -> None:
    (folder / "images").mkdir()
    for scene in scenes:
        render_scene(scene, config).save(folder / "images" / scene.image, format="PNG")
    splits = {}
    for split, name in SPLIT_FILES.items():
        lines = [pope_line(q) for q in questions if q.split == split]
        (folder / name).write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
        splits[split] = {"file": name, "n": len(lines)}
    scene_lines = "".join(f"{json.dumps(s.to_dict())}\n" for s in scenes)
    (folder / "scenes.jsonl").write_text(scene_lines, encoding="utf-8")
    meta = {
        "format": FORMAT,
        "config": dataclasses.asdict(config),
        "splits": splits,
        "n_images": len(scenes),
    }
    (folder / "benchmark.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")


def _metadata(folder: Path) -> dict[str, Any]:
    if not folder.is_dir():
        raise DataError(
            f"benchmark folder {folder} does not exist or is not a folder. Pass a folder written "
            "by `vrp data generate`, or read a single POPE file with read_pope()."
        )
    path = folder / "benchmark.json"
    if not path.is_file():
        raise DataError(
            f"{folder} is not a synthetic benchmark: benchmark.json is missing. Write one with "
            "`vrp data generate`, or read a single POPE file with read_pope()."
        )
    try:
        meta = json.loads(read_text(path, "benchmark.json"))
    except json.JSONDecodeError as error:
        raise DataError(
            f"{path} line {error.lineno}: not valid JSON ({error.msg}); expected the metadata "
            "`vrp data generate` writes. Regenerate the benchmark."
        ) from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise DataError(f"{path}: format {found!r} is not {FORMAT!r}; regenerate the benchmark.")
    for key, kind in (("config", dict), ("splits", dict)):
        if not isinstance(meta.get(key), kind):
            raise DataError(
                f"{path}: expected a {key!r} object; got {meta.get(key)!r:.60}. The file was "
                "edited or truncated: regenerate the benchmark."
            )
    return meta


def load_config(folder: str | Path) -> SyntheticConfig:
    """The config a benchmark folder was generated with (e.g. to rebuild its `vocabulary`).

    Raises:
      DataError: the folder holds no benchmark.json of this format, or its config has fields
        this version of VRP does not know.
      ConfigError: the stored config holds values out of range (the file was edited).
    """
    path = Path(folder) / "benchmark.json"
    raw = _metadata(Path(folder))["config"]
    known = {f.name for f in dataclasses.fields(SyntheticConfig)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise DataError(
            f"{path}: config fields {unknown} are not fields of SyntheticConfig ({len(known)} "
            "known). The benchmark comes from another VRP version: regenerate it with this one."
        )
    kwargs: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}
    return SyntheticConfig(**kwargs)


def read_benchmark(folder: str | Path, *, check_images: bool = True) -> QuestionDataset:
    """Reads a benchmark folder written by `write_benchmark`, with its scene graphs.

    Args:
      folder: the benchmark folder.
      check_images: verify up front that every image file exists.

    Returns:
      The dataset; images are opened only when a sample is read.

    Raises:
      DataError: the folder is missing, benchmark.json is missing, malformed or of another
        format, or a split file or scenes.jsonl is missing or malformed.
    """
    folder = Path(folder)
    meta = _metadata(folder)
    images = folder / "images"
    questions: list[Question] = []
    for split, info in meta["splits"].items():
        name = info.get("file") if isinstance(info, dict) else None
        if not isinstance(name, str):
            raise DataError(
                f"{folder / 'benchmark.json'}: split {split!r} names no file (got {info!r:.60}); "
                'expected {"file": "pope_random.jsonl", "n": ...}. Regenerate the benchmark.'
            )
        path = folder / name
        questions += read_questions(path, image_dir=images, split=split, check_images=check_images)
    scenes = _read_scenes(folder / "scenes.jsonl")
    return QuestionDataset(questions, FolderImages(images), {s.image: s for s in scenes})


def _read_scenes(path: Path) -> list[Scene]:
    scenes = []
    for lineno, line in enumerate(read_text(path, "scene file").split("\n"), start=1):
        if not line.strip():
            continue
        try:
            scenes.append(Scene.from_dict(json.loads(line)))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, IndexError) as error:
            raise DataError(
                f"{path} line {lineno}: not a scene graph ({type(error).__name__}: {error}); "
                "expected one JSON object per line as `vrp data generate` writes. Regenerate the "
                "benchmark."
            ) from None
    return scenes
