"""Many pairs in batches: the same result as one batch, and a sweep that resumes from its
checkpoint folder, computing only the batches that were not saved."""

import json

import numpy as np
import pytest

import circuits._pairs as pairs_module
from circuits import PairBatching, corrupt_pairs, patch_pairs
from vrp import Component, ConfigError
from vrp.data import SyntheticConfig, generate

ARRAYS = ("clean_metric", "corrupt_metric", "clean_correct", "flipped", "aligned", "metric",
          "scores")  # fmt: skip


@pytest.fixture(scope="module")
def setup(load_model):
    vlm = load_model("organism/llava")
    data = generate(SyntheticConfig(n_per_split=6, n_counting=0, n_spatial=0, seed=6))
    samples = [s for s in data if s.split in ("random", "adversarial")]
    pairs = corrupt_pairs(samples, seed=0, pool=data.questions)
    return vlm, pairs, patch_pairs(vlm, pairs, components=(Component.RESID_POST,))


def _same(a, b) -> None:  # type: ignore[no-untyped-def]
    for name in ARRAYS:
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), atol=1e-5, equal_nan=True)


def test_batches_give_the_one_batch_result(setup) -> None:
    vlm, pairs, whole = setup
    batched = patch_pairs(vlm, pairs, components=(Component.RESID_POST,),
                          batching=PairBatching(pairs_per_batch=3))  # fmt: skip
    assert len(pairs) > 3 and whole.valid.sum() >= 2
    _same(batched, whole)


def test_an_interrupted_sweep_resumes(setup, tmp_path, monkeypatch) -> None:
    vlm, pairs, whole = setup
    batching = PairBatching(pairs_per_batch=4, checkpoint=tmp_path / "sweep")
    first = patch_pairs(vlm, pairs, components=(Component.RESID_POST,), batching=batching)
    _same(first, whole)
    files = sorted((tmp_path / "sweep").glob("batch-*.npz"))
    assert len(files) == -(-len(pairs) // 4)
    files[1].unlink()  # as if the run had stopped before the second batch was saved
    calls = []
    original = pairs_module._patch_batch

    def counting(vlm, batch, axes, running):  # type: ignore[no-untyped-def]
        calls.append(len(batch))
        return original(vlm, batch, axes, running)

    monkeypatch.setattr(pairs_module, "_patch_batch", counting)
    resumed = patch_pairs(vlm, pairs, components=(Component.RESID_POST,), batching=batching)
    assert calls == [4]  # only the missing batch ran
    _same(resumed, whole)


def test_a_folder_of_another_sweep_is_refused(setup, tmp_path) -> None:
    vlm, pairs, _ = setup
    batching = PairBatching(pairs_per_batch=4, checkpoint=tmp_path)
    patch_pairs(vlm, pairs[:4], components=(Component.RESID_POST,), batching=batching)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["format"] == "vrp-pair-sweep" and manifest["pairs"] == 4
    with pytest.raises(ConfigError, match=r"holds a sweep of other digest, pairs.*new folder"):
        patch_pairs(vlm, pairs[:5], components=(Component.RESID_POST,), batching=batching)
    with pytest.raises(ConfigError, match=r"holds a sweep of other settings"):
        patch_pairs(vlm, pairs[:4], components=(Component.MLP_OUT,), batching=batching)


def test_bad_batching_is_refused(setup, tmp_path) -> None:
    vlm, pairs, _ = setup
    with pytest.raises(ConfigError, match=r"pairs_per_batch must be a whole number >= 1"):
        PairBatching(pairs_per_batch=0)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match=r"is a file; pass a folder"):
        patch_pairs(vlm, pairs[:2], batching=PairBatching(checkpoint=tmp_path / "file"))
    assert (tmp_path / "file").read_text() == "x"  # left as it was
