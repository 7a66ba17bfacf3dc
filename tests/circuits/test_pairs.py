"""Pair patching: validity from the model's answers, planted scores (a full patch of what the answer
reads restores it exactly; positions nothing reads restore nothing) and tidy records."""

import dataclasses

import numpy as np
import pytest

import vrp
from circuits import COMPONENTS, POSITION_GROUPS, corrupt_pairs, patch_pairs, patch_sweep
from vrp import Component, Indices, Site
from vrp.data import SyntheticConfig, generate


@pytest.fixture(scope="module")
def dataset():
    return generate(SyntheticConfig(n_per_split=8, n_counting=0, n_spatial=0, seed=6))


@pytest.fixture(scope="module")
def patched(load_model, dataset):
    """The LLaVA organism patched on object swaps of 16 questions."""
    vlm = load_model("organism/llava")
    samples = [s for s in dataset if s.split in ("random", "adversarial")]
    return vlm, patch_pairs(vlm, corrupt_pairs(samples, seed=0, pool=dataset.questions))


def test_validity_follows_the_answers(patched) -> None:
    _, result = patched
    truth = np.array([p.clean.answer == "yes" for p in result.pairs])
    np.testing.assert_array_equal(result.clean_correct, (result.clean_metric > 0) == truth)
    np.testing.assert_array_equal(
        result.flipped, (result.clean_metric > 0) != (result.corrupt_metric > 0)
    )
    assert result.aligned.all() and 2 <= result.valid.sum() < len(result.pairs)
    assert np.isnan(result.scores[~result.valid]).all()
    assert not np.isnan(result.scores[result.valid]).any()


def test_planted_scores(patched) -> None:
    """LLaVA reads the answer from the last layer's residual at the last token (score 1), never
    from the last layer's other positions (0); its image precedes the question under causal
    attention, so the image tokens are the same in both runs of an object swap (0 everywhere)."""
    _, result = patched
    c, g = COMPONENTS.index(Component.RESID_POST), POSITION_GROUPS.index("answer")
    np.testing.assert_allclose(result.scores[result.valid][:, c, g, -1], 1.0, atol=1e-4)
    assert result.pooled(Component.RESID_POST, "answer")[-1] == pytest.approx(1.0, abs=1e-4)
    np.testing.assert_allclose(
        result.profile(Component.RESID_POST, "question")[:, -1], 0, atol=1e-5
    )
    for component in COMPONENTS:
        np.testing.assert_allclose(result.profile(component, "image"), 0.0, atol=1e-5)


def test_pooled_is_the_ratio_of_summed_restored_margins_to_summed_gaps(patched) -> None:
    """Hand-computed from the records: each pair oriented towards its clean answer."""
    _, result = patched
    rows = [
        r for r in result.to_records() if (r["component"], r["positions"]) == ("mlp_out", "answer")
    ]
    for layer in result.layers:
        mine = [r for r in rows if r["layer"] == layer]
        sign = [np.sign(r["clean_metric"] - r["corrupt_metric"]) for r in mine]
        restored = sum(
            s * (r["metric"] - r["corrupt_metric"]) for s, r in zip(sign, mine, strict=True)
        )
        gaps = sum(abs(r["clean_metric"] - r["corrupt_metric"]) for r in mine)
        pooled = result.pooled(Component.MLP_OUT, "answer")[layer]
        assert pooled == pytest.approx(restored / gaps, rel=1e-6, abs=1e-9)
    profile = result.profile(Component.MLP_OUT, "answer")
    np.testing.assert_allclose(profile.mean(axis=0), result.pooled(Component.MLP_OUT, "answer"))


def test_scores_equal_a_hand_built_sweep(patched) -> None:
    vlm, result = patched
    index = int(np.flatnonzero(result.valid)[0])
    pair = result.pairs[index]
    clean = vlm.encode([pair.clean.image], [pair.clean.question])
    corrupt = vlm.encode([pair.corrupt.image], [pair.corrupt.question])
    layout = clean.image_mask[0].tolist()
    text = tuple(i for i, image in enumerate(layout[:-1]) if not image)
    site = Site(layer=1, component=Component.ATTN_OUT, positions=Indices(text))
    alone = patch_sweep(vlm, clean, corrupt, [site], vlm.yes_no_margin).normalised_per_row[0, 0]
    c, g = COMPONENTS.index(Component.ATTN_OUT), POSITION_GROUPS.index("question")
    assert result.scores[index, c, g, 1] == pytest.approx(float(alone), abs=1e-4)


def test_records(patched) -> None:
    _, result = patched
    cells = len(COMPONENTS) * len(POSITION_GROUPS) * len(result.layers)
    valid = int(result.valid.sum())
    assert len(result.to_records()) == valid * cells
    rows = result.to_records(include_invalid=True)
    assert len(rows) == valid * cells + len(result.pairs) - valid
    row = next(r for r in rows if r["valid"] and r["component"] == "mlp_out" and r["layer"] == 2)
    c, g = COMPONENTS.index(Component.MLP_OUT), POSITION_GROUPS.index(row["positions"])
    assert row["score"] == result.scores[row["pair"], c, g, 2]
    gap = row["clean_metric"] - row["corrupt_metric"]
    assert row["score"] == pytest.approx((row["metric"] - row["corrupt_metric"]) / gap, abs=1e-5)
    assert {r["layer"] for r in rows if not r["valid"]} == {None}


def test_misaligned_pairs_are_not_patched(tiny_vlms, dataset) -> None:
    vlm = tiny_vlms["llava"]
    pairs = corrupt_pairs([s for s in dataset if s.split == "popular"][:3], seed=0)
    longer = dataclasses.replace(
        pairs[0].corrupt, question="Is there a big " + pairs[0].corrupt.question[11:]
    )
    result = patch_pairs(vlm, [dataclasses.replace(pairs[0], corrupt=longer), *pairs[1:]])
    assert result.aligned.tolist() == [False, True, True]
    with pytest.raises(vrp.ConfigError, match=r"groups from \('answer', 'question', 'image'\)"):
        patch_pairs(vlm, pairs, groups=("everything",))  # type: ignore[arg-type]
    with pytest.raises(vrp.ConfigError, match=r"profile: resid_pre/answer was not patched"):
        result.profile(Component.RESID_PRE, "answer")
