"""An append-only, memory-mapped store of per-sample activations, one file per layer.

Extraction produces `(batch, layer, d)` blocks; probes read one layer for all samples at a time.
The store therefore keeps one raw binary file per layer and appends each batch's rows to every file
with plain `write` calls. Writing never maps or reads what is already on disk, so the writer's
memory stays at one batch whatever the dataset size, and reading a layer is a single contiguous
`np.memmap` that the OS pages in on demand.

Commit protocol: rows are appended to the layer files and ids to `sample_ids.jsonl` first, then
`manifest.json` is replaced atomically with the new row count. The manifest is the only source of
truth, so a writer killed mid-append leaves files longer than the manifest says: `open` detects
that and refuses to continue unless asked to `repair` (truncate back to the last commit). Reopening
a healthy store for writing simply continues appending.
"""

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from jaxtyping import Float

from vrp.core import ConfigError, DataError, ShapeError

from ._checks import (
    SampleId,
    check_exists,
    check_ids,
    check_manifest,
    create_args,
    make_folder,
)

MANIFEST = "manifest.json"
IDS = "sample_ids.jsonl"
FORMAT = "vrp-activation-store"


def _layer_file(root: Path, layer: int) -> Path:
    return root / f"layer_{layer:03d}.bin"


def _write_manifest(root: Path, manifest: dict[str, Any]) -> None:
    tmp = root / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest))  # no indent: the C encoder, which leaves no garbage
    os.replace(tmp, root / MANIFEST)  # atomic: readers see the old or the new commit, never half


def _read_manifest(root: Path) -> dict[str, Any]:
    path = root / MANIFEST
    if not path.is_file():
        where = "does not exist" if not root.exists() else "holds no manifest.json"
        raise DataError(
            f"{root} is not an activation store: {MANIFEST} is missing ({root} {where}). "
            "Create one with ActivationStore.create(path, layers=..., d=...)."
        )
    try:
        manifest = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(
            f"{path} cannot be read as JSON ({err}): the store's manifest is damaged. "
            "Re-extract into a new store."
        ) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = (
            f"format={manifest.get('format')!r}"
            if isinstance(manifest, dict)
            else f"a JSON {type(manifest).__name__}, not an object"
        )
        raise DataError(
            f"{path} is not a {FORMAT} manifest ({found}). Pass the folder written by "
            "ActivationStore.create."
        )
    check_manifest(path, manifest)
    return manifest


def _as_numpy(acts: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(acts, torch.Tensor):
        acts = acts.detach().cpu()
        if not acts.is_floating_point():
            raise DataError(f"activations must be floating point; got a tensor of {acts.dtype}.")
        return acts.float().numpy() if acts.dtype == torch.bfloat16 else acts.numpy()
    return np.asarray(acts)


class ActivationStore:
    """Per-layer activations of `n` samples, stored as `(n, d)` memory-mapped arrays on disk.

    Build one with `ActivationStore.create` (or reopen with `ActivationStore.open`), `append`
    `(batch, layer, d)` blocks as extraction produces them, and read a layer back with `layer`.

    Attributes:
      path: the store's directory.
      layers: the model layers stored, in the order of the `layer` axis of appended blocks.
      d: width of one activation vector.
      dtype: on-disk dtype, "float16" or "float32".
    """

    def __init__(self, path: Path, manifest: dict[str, Any], *, writable: bool) -> None:
        """Use `create` or `open`; this only wraps an already validated manifest."""
        self.path = path
        self.layers: tuple[int, ...] = tuple(manifest["layers"])
        self.d: int = int(manifest["d"])
        self.dtype: str = str(manifest["dtype"])
        self._n: int = int(manifest["n"])
        self._manifest = manifest
        self._writable = writable
        # Paths resolved once: `append` runs per batch and should allocate nothing but the batch.
        self._files = [os.fspath(_layer_file(path, layer)) for layer in self.layers]

    @classmethod
    def create(
        cls,
        path: str | os.PathLike[str],
        *,
        layers: Sequence[int],
        d: int,
        dtype: str = "float16",
        exist_ok: bool = False,
    ) -> "ActivationStore":
        """Creates an empty store, or resumes a matching one when `exist_ok`.

        Args:
          path: directory to create (parents included).
          layers: model layer indices stored, e.g. `range(32)`.
          d: width of one activation vector (d_model or d_mlp).
          dtype: "float16" (half the disk, ~3 significant digits) or "float32".
          exist_ok: if a store already exists at `path` with the same layers, d and dtype, open
            it for appending instead of failing.

        Returns:
          A writable `ActivationStore`.

        Raises:
          ConfigError: bad `dtype`, `d` or `layers`, or an existing store that differs from them
            (or `exist_ok` is False).
          DataError: an existing store has an unfinished append (see `open`).
        """
        root = Path(path)
        layer_list = create_args(layers, d, dtype)
        if (root / MANIFEST).exists():
            return cls._resume(root, layer_list, d, dtype, exist_ok)
        make_folder(root)
        manifest = {"format": FORMAT, "version": 1, "dtype": dtype, "layers": layer_list}
        manifest |= {"d": d, "n": 0}
        for layer in layer_list:
            _layer_file(root, layer).write_bytes(b"")
        (root / IDS).write_bytes(b"")
        _write_manifest(root, manifest)
        return cls(root, manifest, writable=True)

    @classmethod
    def _resume(
        cls, root: Path, layers: list[int], d: int, dtype: str, exist_ok: bool
    ) -> "ActivationStore":
        if not exist_ok:
            raise ConfigError(
                f"an activation store already exists at {root}. Pass exist_ok=True to resume "
                "appending to it, or choose a new path."
            )
        store = cls.open(root, writable=True)
        wanted = {"layers": tuple(layers), "d": d, "dtype": dtype}
        found = {"layers": store.layers, "d": store.d, "dtype": store.dtype}
        if wanted != found:
            raise ConfigError(
                f"the store at {root} was created with {found}, but {wanted} was asked for. "
                "Use a new path, or match the existing store's settings."
            )
        return store

    @classmethod
    def open(
        cls, path: str | os.PathLike[str], *, writable: bool = False, repair: bool = False
    ) -> "ActivationStore":
        """Opens an existing store for reading, or for appending when `writable`.

        Args:
          path: the store's directory.
          writable: allow `append` (resuming after the last committed row).
          repair: truncate rows and ids written after the last commit (an append interrupted by a
            crash) instead of raising.

        Returns:
          The `ActivationStore`.

        Raises:
          DataError: `path` holds no store; a file is shorter than the manifest says (corrupt);
            or, without `repair`, longer (an unfinished append).
        """
        root = Path(path)
        manifest = _read_manifest(root)
        store = cls(root, manifest, writable=writable)
        store._check_files(repair=repair)
        return store

    def _check_files(self, *, repair: bool) -> None:
        row_bytes = self.d * np.dtype(self.dtype).itemsize
        for layer in self.layers:
            file = _layer_file(self.path, layer)
            check_exists(file)
            size = file.stat().st_size
            self._reconcile(file, size, self._n * row_bytes, f"{size / row_bytes:g} rows", repair)
        check_exists(self.path / IDS)
        ids = (self.path / IDS).read_bytes()
        lines = ids.splitlines(keepends=True)
        committed = len(b"".join(lines[: self._n])) if len(lines) >= self._n else len(ids) + 1
        self._reconcile(self.path / IDS, len(ids), committed, f"{len(lines)} ids", repair)

    def _reconcile(self, file: Path, found: int, expected: int, what: str, repair: bool) -> None:
        """Compares a file's size with the committed size; truncates it back when repairing."""
        if found == expected:
            return
        if found < expected:
            raise DataError(
                f"{file} holds {what} but the manifest commits {self._n} samples: the store is "
                "corrupt (a file was truncated or deleted). Re-extract into a new store."
            )
        if not repair:
            raise DataError(
                f"{file} holds {what} but the manifest commits {self._n} samples: a writer "
                "stopped in the middle of an append. Reopen with ActivationStore.open(path, "
                "repair=True) to drop the uncommitted rows and continue."
            )
        with open(file, "r+b") as handle:
            handle.truncate(expected)

    @property
    def n(self) -> int:
        """Number of committed samples."""
        return self._n

    def __len__(self) -> int:
        return self._n

    def __repr__(self) -> str:
        return (
            f"ActivationStore({str(self.path)!r}, n={self._n}, layers={len(self.layers)}, "
            f"d={self.d}, dtype={self.dtype})"
        )

    @property
    def sample_ids(self) -> tuple[SampleId, ...]:
        """The committed samples' ids, in row order (read from disk on each access)."""
        with open(self.path / IDS, "rb") as handle:
            lines = [next(handle) for _ in range(self._n)]
        try:
            return tuple(json.loads(line) for line in lines)
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise DataError(
                f"{self.path / IDS} holds a line that is not a JSON id ({err}): the store is "
                "damaged. Re-extract into a new store."
            ) from None

    def append(
        self, acts: np.ndarray | torch.Tensor, sample_ids: Sequence[SampleId] | None = None
    ) -> None:
        """Appends a batch of activations and commits it.

        Args:
          acts: array or tensor of shape `(batch, layer, d)` with `layer` in `self.layers` order.
            Floating values are cast to the store's dtype (bfloat16 tensors via float32).
          sample_ids: one str or int id per row; default: the running row index.

        Raises:
          VrpError: the store was opened read-only (a `ConfigError`).
          ShapeError: `acts` is not `(batch, len(layers), d)`, or the ids do not match it.
          DataError: `acts` is not floating point, holds NaN/inf, or overflows float16, or an id
            is not a str or int. Nothing is written then.
        """
        if not self._writable:
            raise ConfigError(
                f"{self!r} was opened read-only; use ActivationStore.open(path, writable=True)."
            )
        block = self._validated(_as_numpy(acts))
        rows = block.shape[0]
        ids = list(range(self._n, self._n + rows)) if sample_ids is None else sample_ids
        ids = check_ids(ids, rows)
        by_layer = np.ascontiguousarray(block.transpose(1, 0, 2))  # one contiguous run per layer
        for file, rows in zip(self._files, by_layer, strict=True):
            with open(file, "ab") as handle:
                handle.write(rows.data)
        with open(self.path / IDS, "a", encoding="utf-8") as handle:
            handle.writelines(json.dumps(sid) + "\n" for sid in ids)
        self._n += block.shape[0]
        self._manifest["n"] = self._n
        _write_manifest(self.path, self._manifest)

    def _validated(self, block: np.ndarray) -> np.ndarray:
        expected = f"(batch, {len(self.layers)}, {self.d})"
        if block.ndim != 3 or block.shape[1:] != (len(self.layers), self.d):
            raise ShapeError(
                f"activations must have shape (batch, layer, d) = {expected} for this store; got "
                f"{block.shape}. Stack the stored layers' answer-position states on axis 1."
            )
        if not np.issubdtype(block.dtype, np.floating):
            raise DataError(
                f"activations must be floating point (stored as {self.dtype}); got {block.dtype}."
            )
        if not np.all(np.isfinite(block)):
            raise DataError("activations hold NaN or infinite values; the batch was not written.")
        if np.abs(block).max(initial=0.0) > np.finfo(self.dtype).max:
            raise DataError(
                f"activations overflow {self.dtype} (|x| up to {np.abs(block).max():.3g}); "
                "create the store with dtype='float32'."
            )
        return block.astype(self.dtype, copy=False)

    def layer(self, layer: int) -> Float[np.ndarray, "n d"]:
        """One layer's activations of every committed sample, as a read-only memmap.

        Args:
          layer: a model layer index from `self.layers` (not a position in it).

        Returns:
          An `(n, d)` array backed by the file; slicing it reads only the rows touched.

        Raises:
          ConfigError: `layer` is not stored.
          DataError: its file has been deleted since the store was opened.
        """
        if isinstance(layer, bool) or not isinstance(layer, int | np.integer):
            raise ConfigError(
                f"layer must be an int model layer index; got {layer!r} ({type(layer).__name__}). "
                f"Stored layers: {self.layers}."
            )
        if layer not in self.layers:
            raise ConfigError(
                f"layer {layer} is not in this store; stored layers: {self.layers}. Pass one of "
                "them (a model layer index, not a position in that list)."
            )
        if self._n == 0:
            return np.empty((0, self.d), dtype=self.dtype)
        file = _layer_file(self.path, int(layer))
        check_exists(file)
        return np.memmap(file, dtype=self.dtype, mode="r", shape=(self._n, self.d))
