"""Many pairs in batches, each batch saved when done, so an interrupted sweep resumes (private).

A batch's arrays go to ``batch-<index>.npz`` in the checkpoint folder, written to a temporary
file first and renamed, so a file is either whole or absent. ``manifest.json`` records what the
folder belongs to (model, its dtype and attention kernel, components, groups, batch size and a
digest of every pair); a rerun
with other pairs or settings is refused rather than mixed with the saved batches.
"""

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vrp import ConfigError
from vrp.models import VLM

from ._corrupt import CorruptPair

ARRAYS = ("clean_metric", "corrupt_metric", "clean_correct", "flipped", "aligned", "metric",
          "scores")  # fmt: skip
"""The per-pair arrays of a `PairPatching`, saved per batch."""


@dataclass(frozen=True, kw_only=True)
class PairBatching:
    """How `patch_pairs` splits many pairs.

    Attributes:
      pairs_per_batch: pairs checked and patched together (bounds memory: a batch's rows travel
        in every trace of its sweep).
      checkpoint: a folder where each finished batch is saved; a rerun with the same folder,
        pairs and settings loads the saved batches and computes only the others. None: nothing
        is saved.
    """

    pairs_per_batch: int = 64
    checkpoint: str | Path | None = None

    def __post_init__(self) -> None:
        size = self.pairs_per_batch
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ConfigError(
                f"pairs_per_batch must be a whole number >= 1; got {size!r}. Use e.g. 64."
            )
        if self.checkpoint is not None and not isinstance(self.checkpoint, str | os.PathLike):
            raise ConfigError(f"checkpoint must be a folder path or None; got {self.checkpoint!r}.")


def run_batches(
    vlm: VLM,
    pairs: Sequence[CorruptPair],
    batching: PairBatching,
    settings: dict[str, Any],
    patch: Callable[[Sequence[CorruptPair]], dict[str, np.ndarray]],
) -> dict[str, np.ndarray]:
    """`patch` on each batch of `pairs` (loaded instead when saved), the arrays joined by pair."""
    size = batching.pairs_per_batch
    batches = [pairs[i : i + size] for i in range(0, len(pairs), size)]
    folder = _prepare(batching.checkpoint, vlm, pairs, size, settings)
    parts = []
    for index, batch in enumerate(batches):
        path = folder / f"batch-{index:05d}.npz" if folder is not None else None
        if path is not None and path.exists():
            parts.append(_load(path))
            continue
        arrays = patch(batch)
        if path is not None:
            _save(path, arrays)
        parts.append(arrays)
    return {name: np.concatenate([p[name] for p in parts]) for name in ARRAYS}


def _prepare(
    checkpoint: str | Path | None,
    vlm: VLM,
    pairs: Sequence[CorruptPair],
    size: int,
    settings: dict[str, Any],
) -> Path | None:
    """The checkpoint folder, created with its manifest, or checked against it."""
    if checkpoint is None:
        return None
    folder = Path(checkpoint)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"checkpoint {folder} is a file; pass a folder (it is created).")
    manifest = {"format": "vrp-pair-sweep", "version": 1, "model": vlm.name,
                "family": vlm.family, "dtype": str(next(vlm.hf.parameters()).dtype),
                "attention": vlm.attn_implementation, "pairs": len(pairs),
                "pairs_per_batch": size, "settings": settings,
                "digest": pair_digest(pairs)}  # fmt: skip
    file = folder / "manifest.json"
    if file.exists():
        saved = json.loads(file.read_text())
        if saved != manifest:
            different = sorted(k for k in manifest if saved.get(k) != manifest[k])
            raise ConfigError(
                f"checkpoint {folder} holds a sweep of other {', '.join(different)}; resuming "
                "would mix two sweeps. Pass a new folder, or delete this one to start over."
            )
        return folder
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"cannot create checkpoint folder {folder}: {err.strerror}.") from None
    _atomic(file, json.dumps(manifest, indent=2).encode())
    return folder


def pair_digest(pairs: Sequence[CorruptPair]) -> str:
    """A digest of every pair's questions, answers, change and image pixels, in order."""
    digest = hashlib.sha256()
    for pair in pairs:
        for sample in (pair.clean, pair.corrupt):
            digest.update(f"{sample.question}\0{sample.answer}\0".encode())
            digest.update(sample.image.tobytes())
        digest.update(pair.change.encode())
    return digest.hexdigest()


def _save(path: Path, arrays: dict[str, np.ndarray]) -> None:
    temporary = path.with_suffix(".tmp.npz")
    savez: Any = np.savez  # numpy's stub takes the keyword arrays for its own flags
    savez(temporary, **{name: arrays[name] for name in ARRAYS})
    os.replace(temporary, path)


def _load(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as saved:
        return {name: saved[name] for name in ARRAYS}


def _atomic(path: Path, data: bytes) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)
