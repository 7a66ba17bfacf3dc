"""Signals from a model: every value finite, internal consistency, and clear errors."""

import math
import warnings

import numpy as np
import pytest
import torch

import vrp
from vrp.data import SyntheticConfig, generate
from vrp.pipeline import LayerSignals, SignalConfig, capture_batch, dataset_signals
from vrp.signals import truth_margin


@pytest.fixture(scope="module")
def yes_no_samples():
    dataset = generate(SyntheticConfig(n_per_split=6, n_counting=2, n_spatial=4, seed=11))
    return [s for s in dataset if s.answer in ("yes", "no")][:10]


pytestmark = pytest.mark.filterwarnings("ignore::vrp.UndefinedSignalWarning")
"""The tiny models read 2 layers on a 4x4 grid, where four signals are undefined by construction;
`test_every_signal_is_finite` checks the warning and the NaNs, the other tests ignore them."""

UNDEFINED_ON_TINY = (
    "clusters_dbscan",
    "early_locking_layer",
    "truth_peak_layer",
    "visual_peak_layer",
)


def test_every_signal_is_finite(vlm, yes_no_samples) -> None:
    with warnings.catch_warnings(record=True) as record:  # pytest.warns would re-raise the
        warnings.simplefilter("always")  # third-party noise that pyproject ignores by module
        batches = dataset_signals(vlm, yes_no_samples, SignalConfig(batch_size=4, samples=3))
    said = " ".join(str(w.message) for w in record if w.category is vrp.UndefinedSignalWarning)
    assert "on a 4x4 grid" in said and "with 2 layers read ([0, 1])" in said
    rows = [r for b in batches for r in b.samples]
    assert len(rows) == len(yes_no_samples)
    for row in rows:
        for name, value in row.as_dict().items():
            if name in UNDEFINED_ON_TINY:
                assert math.isnan(value), (name, row)
            elif isinstance(value, float):
                assert math.isfinite(value), (name, row)
        assert row.correct == (row.answer == row.label)
        assert 0 <= row.spatial_entropy_norm <= 1 + 1e-6
        assert 1 / 3 <= row.self_consistency <= 1
    hidden = np.concatenate([b.hidden for b in batches])
    assert hidden.shape == (
        len(rows),
        vlm.adapter.n_layers,
        vlm.adapter.shape(vrp.Tower.LANGUAGE).d_model,
    )


def test_the_per_layer_curves_end_in_the_scalar_signals(vlm, yes_no_samples) -> None:
    """`BatchSignals.per_layer`: one value per layer read, the last truth and visual margins
    equal to the scalars, the MLP share equal to its share of the per-layer direct effects."""
    (batch,) = dataset_signals(vlm, yes_no_samples[:4], SignalConfig(batch_size=4, samples=0))
    curves = batch.per_layer
    for name in LayerSignals.NAMES:
        assert getattr(curves, name).shape == (4, len(batch.layers)), name
    records = batch.per_layer_records()
    for i, row in enumerate(batch.samples):
        assert curves.truth_margin[i, -1] == pytest.approx(row.truth_margin, abs=1e-12)
        assert curves.visual_attribution[i, -1] == pytest.approx(row.visual_attribution, abs=1e-12)
        mlp, attn = np.abs(curves.mlp_direct[i]).sum(), np.abs(curves.attn_direct[i]).sum()
        assert row.mlp_share == pytest.approx(mlp / (mlp + attn), rel=1e-5)
        assert records[i]["truth_margin_by_layer"] == list(curves.truth_margin[i])
        assert {k: v for k, v in records[i].items() if not k.endswith("_by_layer")} == row.as_dict()
    assert batch.to_records() == [row.as_dict() for row in batch.samples]  # unchanged


def test_last_layer_lens_equals_the_model_logits(vlm, yes_no_samples) -> None:
    """The logit lens at the last layer is the model's own answer distribution."""
    samples = yes_no_samples[:4]
    layers = tuple(range(vlm.adapter.n_layers))
    cap = capture_batch(
        vlm, [s.image for s in samples], [s.question for s in samples], layers=layers
    )
    with torch.no_grad():
        lens_logits = vlm.adapter.final_norm(vlm.hf)(cap.resid[:, -1]) @ vlm.adapter.unembedding(
            vlm.hf
        )
    torch.testing.assert_close(lens_logits, cap.logits, atol=1e-5, rtol=0)
    rows = dataset_signals(vlm, samples, SignalConfig(batch_size=4, samples=0))[0].samples
    spellings = {"yes": vlm.answer_tokens.yes, "no": vlm.answer_tokens.no}
    best = [
        max(spellings[s.answer], key=lambda t, i=i: cap.logits[i, t]) for i, s in enumerate(samples)
    ]
    expected = truth_margin(cap.logits, torch.tensor(best))
    np.testing.assert_allclose([r.truth_margin for r in rows], expected.numpy(), atol=1e-5)


def test_counting_questions_are_refused_with_a_clear_error(tiny_vlms) -> None:
    dataset = generate(SyntheticConfig(n_per_split=2, n_counting=2, n_spatial=0, seed=1))
    counting = [s for s in dataset if s.split == "counting"]
    with pytest.raises(vrp.DataError, match=r"need yes/no questions.*split 'counting'"):
        dataset_signals(tiny_vlms["llava"], counting, SignalConfig(samples=0))


def test_signals_do_not_depend_on_batch_composition(vlm, yes_no_samples) -> None:
    config = dict(samples=0)
    together = dataset_signals(vlm, yes_no_samples[:4], SignalConfig(batch_size=4, **config))
    alone = dataset_signals(vlm, yes_no_samples[:4], SignalConfig(batch_size=1, **config))
    rows_a = [r.as_dict() for b in together for r in b.samples]
    rows_b = [r.as_dict() for b in alone for r in b.samples]
    for a, b in zip(rows_a, rows_b, strict=True):
        for key, value in a.items():
            if isinstance(value, float):
                assert value == pytest.approx(b[key], abs=1e-4, nan_ok=True), key
            else:
                assert value == b[key], key


def test_label_dependent_fields_are_named() -> None:
    from vrp.pipeline import SampleSignals

    fields = set(SampleSignals.__dataclass_fields__)
    assert set(SampleSignals.LABEL_DEPENDENT) <= fields
    assert "yes_no_margin" not in SampleSignals.LABEL_DEPENDENT


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"layers": ()}, "non-empty tuple"), ({"top_p": 0.0}, r"top_p must lie in \(0, 1\]"),
     ({"samples": -1}, "samples must be >= 0"), ({"batch_size": 0}, "batch_size must be >= 1")],
)  # fmt: skip
def test_signal_config_validation(kwargs, message) -> None:
    with pytest.raises(vrp.ConfigError, match=message):
        SignalConfig(**kwargs)
