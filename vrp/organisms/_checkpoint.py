"""Resumable training state and model folders on disk, written atomically.

A run folder holds ``checkpoint.pt`` (weights, optimiser, scheduler, step, RNG state, loss history:
everything needed to continue bit for bit) and ``model/``, a checkpoint `vrp.load` reads. Both are
replaced only once fully written, so an interrupted save leaves the previous one intact. Installing
a model folder (`install_model`, behind `vrp organisms ship`) follows the same rule: the copy is
written beside the target, loaded and run once, and only then renamed into place.
"""

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from ..core import ConfigError
from ..data._files import check_output_folder, replace_folder
from ..models import VLM, save

STATE_FILE = "checkpoint.pt"
MODEL_DIR = "model"
TRAINING_FILE = "training.json"
"""Metadata of the run that produced a model folder (recipe, seed, threads, time, losses)."""


def save_state(out: Path, state: dict[str, Any]) -> Path:
    """Writes the resumable state `state` to ``out/checkpoint.pt``."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / STATE_FILE
    partial = path.with_suffix(".pt.partial")
    torch.save(state, partial)
    os.replace(partial, path)
    return path


def load_state(out: Path) -> dict[str, Any]:
    """Reads ``out/checkpoint.pt``.

    Raises:
      ConfigError: there is none.
    """
    path = out / STATE_FILE
    if not path.is_file():
        raise ConfigError(
            f"Cannot resume: {path} does not exist. Run without --resume to start training, or "
            "pass the --out folder of the run to continue."
        )
    state: dict[str, Any] = torch.load(path, weights_only=True)
    return state


def check_fresh(out: Path) -> None:
    """Refuses to start a new run over an existing one.

    Raises:
      ConfigError: `out` already holds a training checkpoint, or cannot be created (a parent is
        a file or not writable): checked before any training step.
    """
    check_output_folder(out, "the run folder")
    if (out / STATE_FILE).exists():
        raise ConfigError(
            f"{out} already holds a training checkpoint. Pass --resume (resume=True) to continue "
            "it, or choose another --out folder."
        )


def save_model(out: Path, vlm: VLM, training: dict[str, Any]) -> Path:
    """Writes a loadable ``out/model`` folder (weights, tokenizer, processor, training.json)."""
    target = out / MODEL_DIR
    partial = out / f".{MODEL_DIR}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    save(vlm, partial)
    (partial / TRAINING_FILE).write_text(json.dumps(training, indent=2) + "\n", encoding="utf-8")
    if target.exists():
        shutil.rmtree(target)
    os.replace(partial, target)
    return target


def read_training(directory: Path) -> dict[str, Any]:
    """The training metadata stored next to a model, or {} if the folder has none."""
    path = directory / TRAINING_FILE
    if not path.is_file():
        return {}
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")
_PROCESSOR = ("preprocessor_config.json", "processor_config.json")
_TOKENIZER = ("tokenizer.json", "tokenizer_config.json")


def check_model_files(model_dir: Path, family: str) -> None:
    """Checks that `model_dir` holds the files of a `family` model, without loading it.

    Raises:
      ConfigError: `model_dir` is not a folder, lacks config, weights, processor or tokenizer
        files, or its config is unreadable or of another family.
    """
    fix = "Pass the model/ folder written by `vrp organisms train`."
    if not model_dir.is_dir():
        raise ConfigError(f"{model_dir} holds no {family} model: it is not a folder. {fix}")
    groups = {"config.json": ("config.json",), "weights": _WEIGHTS}
    groups |= {"processor config": _PROCESSOR, "tokenizer": _TOKENIZER}
    missing = [
        f"{what} ({' or '.join(names)})"
        for what, names in groups.items()
        if not any((model_dir / n).is_file() for n in names)
    ]
    if missing:
        raise ConfigError(
            f"{model_dir} holds no {family} model: missing {'; '.join(missing)}. {fix}"
        )
    try:
        found = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))["model_type"]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as error:
        raise ConfigError(
            f"{model_dir} holds no {family} model: config.json is unreadable or has no "
            f"model_type ({type(error).__name__}: {error}). {fix}"
        ) from None
    if found != family:
        raise ConfigError(
            f"{model_dir} holds no {family} model (config model_type {found!r}). Pass the "
            f"model/ folder of a {family} run, or --family {found}."
        )


def check_model_runs(model_dir: Path, family: str, *, source: Path) -> None:
    """Loads `model_dir` with `vrp.load` and answers one question, as users of it will.

    Args:
      model_dir: the folder to load.
      family: the family it must load as.
      source: the folder the user named, for messages.

    Raises:
      ConfigError: loading or the forward pass fails, or the model is of another family.
    """
    from transformers.utils import logging as hf_logging

    from ..models import load

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # a failed ship prints its one error line, nothing else
    try:
        vlm = load(model_dir)
        vlm.logits(vlm.encode([Image.new("RGB", (64, 64))], ["Is there a red circle?"]))
    except Exception as error:  # anything a broken folder raises: the install must not happen
        reason = " ".join(str(error).replace(str(model_dir), str(source)).split())[:300]
        raise ConfigError(
            f"{source} holds no loadable {family} model: loading it and answering one question "
            f"failed ({type(error).__name__}: {reason}). Retrain, or pass another model/ folder."
        ) from None
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    if vlm.family != family:
        raise ConfigError(f"{source} loads as a {vlm.family} model, not {family}.")


def install_model(model_dir: Path, family: str, target: Path) -> Path:
    """Replaces folder `target` by a checked copy of the `family` model in `model_dir`.

    The files are checked, copied beside `target`, and the copy is loaded and run once; only then
    is it renamed into place. Any failure removes the copy and leaves `target` as it was.

    Raises:
      ConfigError: the model is incomplete, of another family or does not load and run, or
        `target` cannot be written.
    """
    check_model_files(model_dir, family)
    staging = target.with_name(f".{target.name}.partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        _copy(model_dir, staging, target)
        check_model_runs(staging, family, source=model_dir)
        replace_folder(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _copy(model_dir: Path, staging: Path, target: Path) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(model_dir, staging)
    except OSError as error:
        raise ConfigError(
            f"cannot copy {model_dir} beside {target} ({error}); {target} is unchanged. Check "
            "that the package folder is writable and has free space."
        ) from None
