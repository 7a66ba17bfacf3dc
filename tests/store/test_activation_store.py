"""ActivationStore: round trips, resuming, crash detection, errors and flat writer memory."""

import json
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch

from vrp.core import ConfigError, DataError, ShapeError
from vrp.store import ActivationStore


def _batches(n: int, layers: int = 3, d: int = 8, batch: int = 16, seed: int = 0):
    rng = np.random.default_rng(seed)
    for start in range(0, n, batch):
        yield rng.standard_normal((min(batch, n - start), layers, d)).astype(np.float32)


def test_round_trip_per_layer_as_memmap(tmp_path: Path) -> None:
    store = ActivationStore.create(tmp_path / "s", layers=[4, 5, 6], d=8, dtype="float32")
    blocks = list(_batches(40))
    for i, block in enumerate(blocks):
        store.append(block, sample_ids=[f"q{i}-{j}" for j in range(len(block))])
    full = np.concatenate(blocks)
    reopened = ActivationStore.open(tmp_path / "s")
    assert reopened.n == len(reopened) == 40
    layer5 = reopened.layer(5)
    assert isinstance(layer5, np.memmap) and not layer5.flags.writeable
    np.testing.assert_array_equal(layer5, full[:, 1])
    assert reopened.sample_ids[:2] == ("q0-0", "q0-1") and len(reopened.sample_ids) == 40


def test_float16_store_casts_and_accepts_torch_bfloat16(tmp_path: Path) -> None:
    store = ActivationStore.create(tmp_path, layers=range(2), d=4)
    acts = torch.randn(3, 2, 4, dtype=torch.bfloat16)
    store.append(acts)
    assert store.layer(1).dtype == np.float16
    np.testing.assert_allclose(store.layer(1), acts[:, 1].float().numpy(), rtol=1e-2)
    assert store.sample_ids == (0, 1, 2)


def test_reopening_continues_appending(tmp_path: Path) -> None:
    first = ActivationStore.create(tmp_path, layers=[0, 1, 2], d=8, dtype="float32")
    blocks = list(_batches(48))
    first.append(blocks[0])
    resumed = ActivationStore.create(
        tmp_path, layers=[0, 1, 2], d=8, dtype="float32", exist_ok=True
    )
    resumed.append(blocks[1])
    again = ActivationStore.open(tmp_path, writable=True)
    again.append(blocks[2])
    np.testing.assert_array_equal(
        ActivationStore.open(tmp_path).layer(2), np.concatenate(blocks)[:, 2]
    )
    assert again.sample_ids == tuple(range(48))


def test_half_written_append_is_detected_and_repairable(tmp_path: Path) -> None:
    store = ActivationStore.create(tmp_path, layers=[0, 1], d=4, dtype="float32")
    store.append(np.ones((2, 2, 4), dtype=np.float32))
    with open(tmp_path / "layer_001.bin", "ab") as handle:  # a crash after part of a batch
        handle.write(np.zeros(6, dtype=np.float32).tobytes())
    with pytest.raises(DataError, match=r"stopped in the middle of an append.*repair=True"):
        ActivationStore.open(tmp_path)
    repaired = ActivationStore.open(tmp_path, writable=True, repair=True)
    repaired.append(np.full((1, 2, 4), 2.0, dtype=np.float32))
    np.testing.assert_array_equal(repaired.layer(1)[:, 0], [1.0, 1.0, 2.0])


def test_uncommitted_ids_are_detected(tmp_path: Path) -> None:
    store = ActivationStore.create(tmp_path, layers=[0], d=2)
    store.append(np.ones((1, 1, 2)), sample_ids=["a"])
    with open(tmp_path / "sample_ids.jsonl", "a") as handle:
        handle.write('"b"')  # half a line
    with pytest.raises(DataError, match="sample_ids.jsonl holds 2 ids"):
        ActivationStore.open(tmp_path)
    assert ActivationStore.open(tmp_path, repair=True).sample_ids == ("a",)


def test_truncated_file_is_reported_as_corrupt(tmp_path: Path) -> None:
    store = ActivationStore.create(tmp_path, layers=[0], d=2)
    store.append(np.ones((3, 1, 2)))
    with open(tmp_path / "layer_000.bin", "r+b") as handle:
        handle.truncate(4)
    with pytest.raises(DataError, match="corrupt"):
        ActivationStore.open(tmp_path, repair=True)


def test_creation_errors(tmp_path: Path) -> None:
    ActivationStore.create(tmp_path, layers=[0, 1], d=8)
    with pytest.raises(ConfigError, match="already exists.*exist_ok=True"):
        ActivationStore.create(tmp_path, layers=[0, 1], d=8)
    with pytest.raises(ConfigError, match=r"created with \{'layers': \(0, 1\), 'd': 8"):
        ActivationStore.create(tmp_path, layers=[0, 1], d=16, exist_ok=True)
    with pytest.raises(ConfigError, match="dtype must be one of"):
        ActivationStore.create(tmp_path / "b", layers=[0], d=8, dtype="int8")
    with pytest.raises(ConfigError, match="distinct layers"):
        ActivationStore.create(tmp_path / "c", layers=[1, 1], d=8)
    with pytest.raises(DataError, match="manifest.json is missing"):
        ActivationStore.open(tmp_path / "nothing")
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["n"] == 0 and manifest["dtype"] == "float16"


def test_append_errors(tmp_path: Path) -> None:
    store = ActivationStore.create(tmp_path, layers=[0, 1], d=4)
    with pytest.raises(ShapeError, match=r"\(batch, 2, 4\) for this store; got \(3, 3, 4\)"):
        store.append(np.zeros((3, 3, 4), dtype=np.float32))
    with pytest.raises(DataError, match="floating point"):
        store.append(np.zeros((3, 2, 4), dtype=np.int64))
    with pytest.raises(DataError, match="overflow float16.*dtype='float32'"):
        store.append(np.full((1, 2, 4), 1e6, dtype=np.float32))
    with pytest.raises(DataError, match="NaN or infinite"):
        store.append(np.full((1, 2, 4), np.nan, dtype=np.float32))
    with pytest.raises(ShapeError, match="2 sample_ids for 1 rows"):
        store.append(np.zeros((1, 2, 4), dtype=np.float32), sample_ids=["a", "b"])
    with pytest.raises(ConfigError, match="read-only"):
        ActivationStore.open(tmp_path).append(np.zeros((1, 2, 4), dtype=np.float32))
    with pytest.raises(ConfigError, match="layer 7 is not in this store"):
        store.layer(7)
    assert store.n == 0 and store.layer(0).shape == (0, 4)


def _writer_peak(path: Path, n: int) -> int:
    """Peak traced memory of an extraction loop: make a (64, 8, 256) batch, append it."""
    store = ActivationStore.create(path, layers=range(8), d=256)
    tracemalloc.start()
    for block in _batches(n, layers=8, d=256, batch=64):
        store.append(block)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def test_writer_memory_does_not_grow_with_the_dataset(tmp_path: Path) -> None:
    small, large = _writer_peak(tmp_path / "a", 1_000), _writer_peak(tmp_path / "b", 10_000)
    assert large < 1.10 * small
