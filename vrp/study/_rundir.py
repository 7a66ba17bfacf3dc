"""The run directory: atomic, resumable storage of a study's records, results and manifest.

Layout (``<model>`` is the model name with "/" replaced by "--"):

- ``config.json``: the run's config; a rerun into the same folder must match it.
- ``invocations.jsonl``: one line per invocation (start time, versions, machine), appended as
  it starts, so a resumed run records every environment that wrote into it.
- ``manifest.json``: config, seeds, every stage's settings, the invocations, model hashes,
  per-stage timings and the invocation that computed each stage.
- ``parts/<stage>/<model>/part-00012.parquet``: one table per batch as it finishes, and
  ``parts/<stage>/<model>/hidden-00012.npy`` beside it where the stage keeps hidden states.
- ``records/<stage>.parquet`` and ``.csv``: the stage's tidy table over every model (one row per
  question per condition), merged from the parts when the stage ends; a list column (the
  per-layer curves of the signals stage) is written to the CSV as JSON text.
- ``results/<model>/<stage>.json``: the stage's summary statistics, each with its n and CI. Its
  presence marks the stage done for that model.
- ``store/<model>/``: the answer-position hidden states of every layer (`ActivationStore`).

Every file is written to a temporary name in the same folder and renamed into place, so a run
killed at any moment leaves complete files or none; a batch is done exactly when its part exists.
"""

import json
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from ..core import ConfigError, DataError


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def model_slug(name: str) -> str:
    """A folder name for a model name ("organism/llava" -> "organism--llava")."""
    return name.strip("/").replace("/", "--").replace("\\", "--")


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yields a temporary path beside `path`; renames it onto `path` if the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give them the usual mode
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_json(path: Path, value: Any) -> None:
    """Writes `value` as indented JSON, atomically (NaN written as null)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(_jsonable(value), indent=2, allow_nan=False) + "\n")


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


class RunDir:
    """A study's run directory (see the module docstring for its layout)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    # ----- config -----------------------------------------------------------------------------
    def claim(self, config_json: dict[str, Any]) -> bool:
        """Binds the folder to `config_json`: a new or empty folder records it; a folder holding
        a run of the same config resumes it (returns True). Only the output folder may differ.

        Raises:
          ConfigError: the folder holds another run, another config, or unrelated files.
        """
        path = self.root / "config.json"
        if path.is_file():
            recorded = json.loads(path.read_text())
            mine = {k: v for k, v in config_json.items() if k != "out"}
            theirs = {k: v for k, v in recorded.items() if k != "out"}
            # a key an older run did not record (a setting added since) counts as unset
            changed = sorted(k for k in mine.keys() | theirs.keys()
                             if mine.get(k) != theirs.get(k))  # fmt: skip
            if changed:
                raise ConfigError(
                    f"{self.root} holds a run with another config (differs in "
                    f"{', '.join(changed)}). Rerun with the same config to resume it, or pass "
                    "another --out."
                )
            return True
        if self.root.exists() and (not self.root.is_dir() or any(self.root.iterdir())):
            raise ConfigError(
                f"--out {self.root} is not empty and holds no VRP run. Pass a new or empty folder."
            )
        write_json(path, config_json)
        return False

    def release(self, *, remove_folder: bool) -> None:
        """Undoes `claim` after a first attempt failed before any batch was stored: removes
        config.json (and the folder if the attempt created it), so that a corrected config
        can use the folder. A folder holding anything else is left as it is."""
        own = ("config.json", "invocations.jsonl")
        if any(p.name not in own for p in self.root.iterdir()):
            return
        for name in own:
            (self.root / name).unlink(missing_ok=True)
        if remove_folder:
            self.root.rmdir()

    # ----- per-batch parts --------------------------------------------------------------------
    def _parts(self, stage: str, model: str) -> Path:
        return self.root / "parts" / stage / model_slug(model)

    def done_batches(self, stage: str, model: str) -> set[int]:
        """Indices of the batches of `stage` whose records are on disk."""
        folder = self._parts(stage, model)
        if not folder.is_dir():
            return set()
        return {int(p.stem.split("-")[1]) for p in folder.glob("part-*.parquet")}

    def write_batch(
        self, stage: str, model: str, index: int, rows: list[dict[str, Any]],
        hidden: np.ndarray | None = None,
    ) -> None:  # fmt: skip
        """Stores one batch: its hidden states first, then its records (the commit marker)."""
        folder = self._parts(stage, model)
        if hidden is not None:
            with atomic_path(folder / f"hidden-{index:05d}.npy") as tmp:
                with tmp.open("wb") as handle:
                    np.save(handle, hidden)
        with atomic_path(folder / f"part-{index:05d}.parquet") as tmp:
            pq.write_table(pa.Table.from_pylist(rows), tmp)

    def batch_tables(self, stage: str, model: str) -> list[pa.Table]:
        folder = self._parts(stage, model)
        return [pq.read_table(p) for p in sorted(folder.glob("part-*.parquet"))]

    def hidden_blocks(self, stage: str, model: str) -> Iterator[np.ndarray]:
        for path in sorted(self._parts(stage, model).glob("hidden-*.npy")):
            yield np.load(path)

    # ----- merged records and results -----------------------------------------------------------
    def records_path(self, stage: str) -> Path:
        return self.root / "records" / f"{stage}.parquet"

    def write_records(self, stage: str, table: pa.Table, sort_by: Sequence[str]) -> None:
        """Writes the stage's merged table as Parquet and CSV, rows sorted by `sort_by`."""
        table = table.sort_by([(key, "ascending") for key in sort_by])
        with atomic_path(self.records_path(stage)) as tmp:
            pq.write_table(table, tmp)
        with atomic_path(self.records_path(stage).with_suffix(".csv")) as tmp:
            pa_csv.write_csv(_csv_ready(table), tmp)

    def read_records(self, stage: str) -> pa.Table:
        path = self.records_path(stage)
        if not path.is_file():
            raise DataError(f"{path} does not exist: the {stage!r} stage has not finished.")
        return pq.read_table(path)

    def result_path(self, stage: str, model: str) -> Path:
        return self.root / "results" / model_slug(model) / f"{stage}.json"

    def stage_done(self, stage: str, model: str) -> bool:
        return self.result_path(stage, model).is_file()

    def write_result(self, stage: str, model: str, result: dict[str, Any]) -> None:
        write_json(self.result_path(stage, model), result)

    def read_result(self, stage: str, model: str) -> dict[str, Any]:
        return json.loads(self.result_path(stage, model).read_text())

    def store_path(self, model: str) -> Path:
        return self.root / "store" / model_slug(model)


def _csv_ready(table: pa.Table) -> pa.Table:
    """`table` with each list column as JSON text ("[0.5, 1.25]"), which CSV can hold."""
    for i, column in enumerate(table.schema):
        if pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
            text = [None if v is None else json.dumps(_jsonable(v))
                    for v in table.column(i).to_pylist()]  # fmt: skip
            table = table.set_column(i, column.name, pa.array(text, pa.string()))
    return table


def merged(tables: Sequence[pa.Table]) -> pa.Table:
    """Concatenates tables of one schema (columns unified, missing ones null)."""
    if not tables:
        raise DataError("No records to merge: the stage produced no batches.")
    return pa.concat_tables(tables, promote_options="default")


BatchFn = Callable[[int], tuple[list[dict[str, Any]], np.ndarray | None]]
"""Computes batch `index`: its records and (optionally) hidden states."""
