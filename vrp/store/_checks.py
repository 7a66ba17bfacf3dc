"""Checks of the store's arguments and files (private), made before anything is written."""

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vrp.core import ConfigError, DataError, ShapeError

DTYPES = ("float16", "float32")

SampleId = str | int


def check_manifest(path: Path, manifest: dict[str, Any]) -> None:
    """Raises `DataError` naming the first manifest field of the wrong type or value."""
    layers = manifest.get("layers")
    checks = {
        "version": manifest.get("version") == 1,
        "dtype": manifest.get("dtype") in DTYPES,
        "layers": isinstance(layers, list) and bad_layers(layers) is None,
        "d": is_count(manifest.get("d"), 1),
        "n": is_count(manifest.get("n"), 0),
    }
    expected = {
        "version": "1",
        "dtype": f"one of {DTYPES}",
        "layers": "a non-empty list of distinct layer indices >= 0",
        "d": "a whole number >= 1",
        "n": "a whole number >= 0",
    }
    for name, ok in checks.items():
        if not ok:
            raise DataError(
                f"{path}: field {name!r} must be {expected[name]}; got {manifest.get(name)!r}. "
                "The manifest is damaged or from another program: re-extract into a new store."
            )


def is_count(value: object, minimum: int) -> bool:
    """`value` is an int (not a bool) of at least `minimum`."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def bad_layers(layers: Sequence[object]) -> str | None:
    """Why `layers` is not a valid list of stored layers, or None if it is."""
    if not layers:
        return "no layers"
    if not all(is_count(layer, 0) or isinstance(layer, np.integer) for layer in layers):
        return "layer indices must be whole numbers >= 0"
    if len({int(layer) for layer in layers}) != len(layers):  # type: ignore[call-overload]
        return "layers must be distinct"
    return None


def check_ids(ids: Sequence[SampleId], rows: int) -> list[SampleId]:
    """The ids as a list, or a `ShapeError`/`DataError` before anything is written."""
    if isinstance(ids, str | bytes) or not isinstance(ids, Sequence):
        raise DataError(
            f"sample_ids must be a list of str or int ids, one per row; got "
            f"{type(ids).__name__} {ids!r}. Pass e.g. sample_ids=['q1', 'q2']."
        )
    if len(ids) != rows:
        raise ShapeError(
            f"got {len(ids)} sample_ids for {rows} rows of activations; pass one id per row."
        )
    bad = [i for i in ids if isinstance(i, bool) or not isinstance(i, str | int | np.integer)]
    if bad:
        raise DataError(
            f"sample ids must be str or int; got {bad[0]!r} ({type(bad[0]).__name__}). "
            "Pass question ids or row numbers."
        )
    return [i if isinstance(i, str) else int(i) for i in ids]


def create_args(layers: Sequence[int], d: int, dtype: str) -> list[int]:
    """Checks `create`'s arguments before anything is written; returns the layers as ints."""
    if not isinstance(dtype, str) or dtype not in DTYPES:
        raise ConfigError(
            f"dtype must be one of {DTYPES} (a string); got {dtype!r}. Pass dtype='float16' or "
            "dtype='float32'."
        )
    if not is_count(d, 1) and not (isinstance(d, np.integer) and d >= 1):
        raise ConfigError(f"need d >= 1, a whole number (the activation width); got d={d!r}.")
    if isinstance(layers, str | bytes) or not isinstance(layers, Sequence | range):
        raise ConfigError(
            f"layers must be a sequence of model layer indices, e.g. range(32); got {layers!r}."
        )
    layer_list = list(layers)
    why = bad_layers(layer_list)
    if why is not None:
        raise ConfigError(
            f"need d >= 1 and distinct layers; got d={d}, layers={layer_list} ({why}). Pass "
            "distinct whole numbers >= 0, e.g. layers=range(32)."
        )
    return [int(layer) for layer in layer_list]


def make_folder(root: Path) -> None:
    """Creates the store's folder, or raises `ConfigError` saying why it cannot be."""
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(
            f"cannot create an activation store at {root}: {err.strerror or err}. Choose a path "
            "under a folder you can write to (not a file)."
        ) from None


def check_exists(file: Path) -> None:
    """Raises `DataError` if a file the manifest promises is gone."""
    if not file.is_file():
        raise DataError(
            f"{file} is missing: the store is corrupt (a file was deleted). Re-extract into a "
            "new store."
        )
