"""Resumable training state on disk, written atomically.

A run folder holds ``checkpoint.pt`` (weights, optimiser, scheduler, step, RNG state, loss history:
everything needed to continue bit for bit) and ``model/``, a checkpoint `vrp.load` reads. Both are
replaced only once fully written, so an interrupted save leaves the previous one intact.
"""

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from ..core import ConfigError
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
      ConfigError: `out` already holds a training checkpoint.
    """
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
