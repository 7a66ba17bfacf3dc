"""The causal-conditions engine: outcome arrays summarise to the same studies as whole-sample
runs, random draws do not depend on batching, and planted masks behave as they must."""

import dataclasses

import numpy as np
import pytest

import vrp
from circuits import (
    Arm,
    MaskingConfig,
    attention_order,
    baseline_arm,
    bypass_arms,
    condition_outcomes,
    control_sets,
    dims_arms,
    masked_patches,
    masking_arms,
    neuron_arms,
    summarise_dimension_point,
    summarise_study,
)
from vrp.data import SyntheticConfig, generate
from vrp.stats import mcnemar_exact, mean_estimate, permutation_test


@pytest.fixture(scope="module")
def samples():
    dataset = generate(SyntheticConfig(n_per_split=8, n_counting=0, n_spatial=0, seed=11))
    return [s for s in dataset if s.split in ("adversarial", "popular")]


@pytest.fixture(scope="module")
def organism(load_model):
    return load_model("organism/llava")


def test_summarise_study_from_outcome_arrays() -> None:
    rng = np.random.default_rng(0)
    before = rng.random(40) < 0.7
    after = before & (rng.random(40) < 0.8)
    controls = [before ^ (rng.random(40) < 0.1) for _ in range(4)]
    study = summarise_study(before, after, controls, "planted")
    assert study.target == mcnemar_exact(before, after)
    assert study.controls == tuple(mcnemar_exact(before, c) for c in controls)
    at_most = sum(mcnemar_exact(before, c).estimate <= study.target.estimate for c in controls)
    assert study.p_vs_controls == (at_most + 1) / 5
    assert study.baseline.estimate == before.mean() and study.baseline.n == 40
    records = study.to_records()
    assert len(records) == 40 * 6
    assert {r["condition"] for r in records} == {"baseline", "target", "control"}
    assert [r["correct"] for r in records if r["condition"] == "target"] == after.tolist()
    third = [r["correct"] for r in records if r["condition"] == "control" and r["draw"] == 2]
    assert third == controls[2].tolist()


def test_summarise_errors() -> None:
    with pytest.raises(vrp.ShapeError, match=r"baseline has 3, target 2"):
        summarise_study([1, 0, 1], [1, 0])
    with pytest.raises(vrp.DataError, match=r"target must be a non-empty 1-D vector"):
        summarise_study([1, 0], [0.5, 1])
    with pytest.raises(vrp.DataError, match=r"at least one draw"):
        summarise_dimension_point([1, 0], [], fraction=0.5, n_dims=3)


def test_dimension_point_from_outcome_arrays() -> None:
    before = np.array([1, 1, 0, 1, 0, 1], dtype=bool)
    draws = [np.array([1, 0, 0, 1, 0, 0], dtype=bool), np.array([1, 1, 0, 0, 0, 1], dtype=bool)]
    point = summarise_dimension_point(before, draws, fraction=0.25, n_dims=8, seed=2)
    # accuracy: per-question share of draws answered right, averaged; n counts questions
    assert point.accuracy.estimate == pytest.approx(5 / 12) and point.accuracy.n == 6
    assert str(point.accuracy) == str(mean_estimate(np.mean(draws, axis=0), seed=2))
    expected = permutation_test(np.mean(draws, axis=0), before.astype(float), paired=True, seed=2)
    assert point.change == expected


def test_arm_validation() -> None:
    with pytest.raises(vrp.ConfigError, match=r"family 'masking' with condition 'none'"):
        Arm(family="masking", condition="none")
    with pytest.raises(vrp.ConfigError, match=r"masking arm needs a MaskingConfig of the same"):
        Arm(family="masking", condition="top", level="pixel", masking=MaskingConfig())
    with pytest.raises(vrp.ConfigError, match=r"bypass arms need nodes"):
        Arm(family="bypass", condition="bypass", level="L0")
    plain = Arm(family="neurons", condition="none", level="L0")  # a neuron run's own baseline
    with pytest.raises(vrp.ConfigError, match=r"'none' arms take none. Got 1 nodes"):
        Arm(
            family="neurons",
            condition="none",
            level="L0",
            nodes=neuron_arms(0, [1], [[2]])[0].nodes,
        )
    assert plain.key == "neurons/none/L0/0"
    with pytest.raises(vrp.ConfigError, match=r"targets and controls of one size"):
        neuron_arms(0, [1, 2], [[3]])
    with pytest.raises(vrp.ConfigError, match=r"drawn from the other 2 neurons"):
        control_sets(6, [0, 1, 2, 3], 2, seed=0)
    with pytest.raises(vrp.ConfigError, match=r"fractions in \(0, 1\]"):
        dims_arms(0, 32, [0.0], n_draws=1, seed=0)


def test_seeded_draws_are_stable_and_keyed() -> None:
    assert control_sets(48, [0, 1], 3, seed=4) == control_sets(48, [0, 1], 3, seed=4)
    assert control_sets(48, [0, 1], 3, seed=4) != control_sets(48, [0, 1], 3, seed=5)
    first = dims_arms(1, 32, [0.25, 0.5], n_draws=2, seed=0)
    again = dims_arms(1, 32, [0.5], n_draws=2, seed=0)  # 0.5 alone: the same draws
    assert [a.nodes[0].site.dims for a in first[2:]] == [a.nodes[0].site.dims for a in again]
    assert first[2].nodes[0].site.dims != first[3].nodes[0].site.dims
    assert [a.level for a in first] == ["0.25", "0.25", "0.5", "0.5"]


def test_random_masks_do_not_depend_on_batching(vlm, samples) -> None:
    config = MaskingConfig(n_random=2, seed=3)
    arm = masking_arms(config)[3]  # random draw 1
    inputs = vlm.encode([s.image for s in samples], [s.question for s in samples])
    order = attention_order(vlm, inputs)
    whole = masked_patches(arm, order, samples)
    tail = masked_patches(arm, order[5:], samples[5:])
    assert whole[5:] == tail and len(set(whole)) > 1  # per-question draws, not per-batch
    pixel = dataclasses.replace(
        arm, level="pixel", masking=dataclasses.replace(config, level="pixel")
    )
    assert masked_patches(pixel, order, samples) == whole  # same patches at both levels
    top, bottom = masking_arms(config)[:2]
    k = round(0.3 * order.shape[1])
    assert masked_patches(top, order, samples)[0] == tuple(order[0, :k].tolist())
    assert masked_patches(bottom, order, samples)[0] == tuple(order[0, -k:].tolist())


def test_outcomes_records_and_baseline(vlm, samples) -> None:
    arms = [baseline_arm(), *bypass_arms([0])]
    out = condition_outcomes(vlm, samples[:6], arms)
    assert out.correct.shape == (2, 6)
    plain = vlm.says_yes(vlm.answer_logits(vlm.encode([s.image for s in samples[:6]],
                                                      [s.question for s in samples[:6]])))  # fmt: skip
    truth = np.array([s.answer == "yes" for s in samples[:6]])
    np.testing.assert_array_equal(out.of(baseline_arm()), plain.cpu().numpy() == truth)
    records = out.to_records()
    assert len(records) == 12 and records[6]["family"] == "bypass" and records[6]["level"] == "L0"
    assert records[7]["question_id"] == samples[1].question_id


def test_planted_masking_all_image_tokens(organism, samples) -> None:
    """Zero-masking every image token removes the image: the answer no longer depends on it (two
    copies of a question with different images answer alike), and it changes more answers than
    masking nothing."""
    chosen = samples[:8]
    swapped = [
        dataclasses.replace(s, image=samples[(i + 3) % 16].image) for i, s in enumerate(chosen)
    ]
    everything = masking_arms(MaskingConfig(fraction=1.0, n_random=0, fill="zero"))[0]
    arms = [baseline_arm(), everything]
    mine, other = (
        condition_outcomes(organism, chosen, arms),
        condition_outcomes(organism, swapped, arms),
    )
    np.testing.assert_array_equal(mine.correct[1], other.correct[1])
    assert (mine.correct[0] != other.correct[0]).any()  # with the image, the images matter
    flips = (mine.correct[1] != mine.correct[0]).sum()
    assert flips > 0  # masking none flips nothing, by construction of the baseline
