"""Causal ablation studies with controls: does removing these units change the answers?

Each study runs the model on yes/no questions with and without an intervention and compares
per-question correctness with the exact McNemar test. Targets are judged against controls drawn at
random (same size, same layer), as the VRP study's neuron ablations and attention-guided patch
masking require: a drop means little unless random units of the same size do not cause it.

The studies are thin: `condition_outcomes` (in `_outcomes`) computes each question's correctness
under every condition, batch by batch, and `summarise_study` / `summarise_dimension_point` turn
outcome arrays into the statistics, so a caller holding outcomes on disk (the study's causal
stage) gets the same numbers without running the model again.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from jaxtyping import Bool, Float
from numpy.typing import ArrayLike
from torch import Tensor

from vrp import AllTokens, Component, ConfigError, DataError, Positions, ShapeError, Site, Tower
from vrp.core import TidyRecords
from vrp.data import Sample
from vrp.interventions import Capture, Graph, Node, run_graph
from vrp.models import VLM, VlmInputs
from vrp.pipeline import require_yes_no
from vrp.stats import Estimate, mcnemar_exact, mean_estimate, permutation_test, proportion

from ._masking import MaskingConfig
from ._outcomes import (
    Arm,
    baseline_arm,
    bypass_arms,
    condition_outcomes,
    control_sets,
    dims_arms,
    masking_arms,
    neuron_arms,
)


@dataclass(frozen=True, kw_only=True)
class AblationStudy(TidyRecords):
    """A target intervention against random controls of the same size.

    Attributes:
      baseline: accuracy without intervention.
      target: accuracy change under the target intervention (exact McNemar; negative = drop).
      controls: the accuracy change under each random control.
      control_mean: mean change over the controls.
      p_vs_controls: share of controls whose change is at most the target's (+1 smoothed): small
        when the target hurts more than random units do; NaN without controls.
      label: what was ablated.
      baseline_correct: each question's correctness without intervention.
      target_correct: each question's correctness under the target.
      control_correct: each question's correctness under each control.
    """

    baseline: Estimate
    target: Estimate
    controls: tuple[Estimate, ...]
    control_mean: float
    p_vs_controls: float
    label: str
    baseline_correct: Bool[np.ndarray, " question"] = field(compare=False, repr=False)
    target_correct: Bool[np.ndarray, " question"] = field(compare=False, repr=False)
    control_correct: tuple[Bool[np.ndarray, " question"], ...] = field(compare=False, repr=False)

    def to_records(self) -> list[dict[str, Any]]:
        """One row per question per condition: condition ("baseline", "target", "control"),
        draw (the control's index, else 0), question (index in the study's samples), correct."""
        arms = [("baseline", 0, self.baseline_correct), ("target", 0, self.target_correct)]
        arms += [("control", d, c) for d, c in enumerate(self.control_correct)]
        return [
            {"label": self.label, "condition": name, "draw": draw, "question": i, "correct": bool(ok)}
            for name, draw, correct in arms
            for i, ok in enumerate(correct)
        ]  # fmt: skip


def _as_correct(values: ArrayLike, name: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1 or arr.size == 0 or not np.isin(arr, (0, 1)).all():
        raise DataError(
            f"{name} must be a non-empty 1-D vector of per-question correctness (bool or 0/1); "
            f"got shape {arr.shape}. Pass one entry per question."
        )
    return arr.astype(bool)


def summarise_study(
    baseline: ArrayLike,
    target: ArrayLike,
    controls: Sequence[ArrayLike] = (),
    label: str = "",
) -> AblationStudy:
    """An `AblationStudy` from per-question correctness: the baseline accuracy (Wilson CI), the
    target's and each control's paired change (exact McNemar, Agresti-Min CI), and the share of
    controls that hurt at least as much as the target.

    Args:
      baseline: correctness of each question without intervention.
      target: correctness of the same questions under the target intervention.
      controls: correctness under each random control (same questions).
      label: what was ablated.

    Raises:
      DataError: an input is not a non-empty 1-D vector of 0/1.
      ShapeError: the inputs differ in length.
    """
    before = _as_correct(baseline, "baseline")
    after = _as_correct(target, "target")
    others = [_as_correct(c, f"controls[{i}]") for i, c in enumerate(controls)]
    sizes = {len(before), len(after), *(len(c) for c in others)}
    if len(sizes) != 1:
        raise ShapeError(
            f"summarise_study pairs questions: baseline has {len(before)}, target {len(after)}, "
            f"controls {[len(c) for c in others]} entries. Pass outcomes of the same questions."
        )
    target_change = mcnemar_exact(before, after)
    changes = [mcnemar_exact(before, c) for c in others]
    at_most = sum(c.estimate <= target_change.estimate for c in changes)
    return AblationStudy(
        baseline=proportion(int(before.sum()), before.size),
        target=target_change,
        controls=tuple(changes),
        control_mean=float(np.mean([c.estimate for c in changes])) if changes else float("nan"),
        p_vs_controls=(at_most + 1) / (len(changes) + 1) if changes else float("nan"),
        label=label,
        baseline_correct=before,
        target_correct=after,
        control_correct=tuple(others),
    )


BatchNodes = Callable[[VlmInputs, int], Sequence[Node]]
"""Maps (a batch's inputs, its index) to the nodes applied to that batch."""


def answer_correctness(
    vlm: VLM, batches: Sequence[tuple[VlmInputs, np.ndarray]], nodes: BatchNodes | None = None
) -> np.ndarray:
    """Per-question correctness of the yes/no answers (`VLM.says_yes`), under `nodes` if given.

    Args:
      batches: (inputs, truth) pairs; truth is True where the right answer is "yes".
      nodes: the interventions per batch (none: the plain model).
    """
    correct = []
    for index, (inputs, truth) in enumerate(batches):
        chosen = tuple(nodes(inputs, index)) if nodes else ()
        logits = run_graph(vlm, Graph(nodes=chosen), inputs).answer_logits["main"]
        correct.append(vlm.says_yes(logits).cpu().numpy() == truth)
    return np.concatenate(correct)


def _outcomes(
    vlm: VLM, samples: Sequence[Sample], arms: Sequence[Arm], batch_size: int
) -> np.ndarray:
    """Correctness `(arm, question)` over every batch of `samples`."""
    require_yes_no(samples, "Ablation studies")
    blocks = [condition_outcomes(vlm, samples[i : i + batch_size], arms).correct
              for i in range(0, len(samples), batch_size)]  # fmt: skip
    return np.concatenate(blocks, axis=1)


@dataclass(frozen=True, kw_only=True)
class NeuronAblationConfig:
    """How `neuron_ablation` ablates and draws its controls.

    Attributes:
      n_controls: random neuron sets of the same size and layer.
      mode: "zero", or "mean" (each unit's mean over every real token of the samples).
      positions: where to ablate (all tokens by default; `LastToken()` for the answer position).
      batch_size: questions per trace.
      seed: seeds the control draws (`control_sets`).
    """

    n_controls: int = 20
    mode: Literal["zero", "mean"] = "zero"
    positions: Positions = field(default_factory=AllTokens)
    batch_size: int = 32
    seed: int = 0


def neuron_ablation(
    vlm: VLM,
    samples: Sequence[Sample],
    *,
    layer: int,
    neurons: Sequence[int],
    config: NeuronAblationConfig | None = None,
) -> AblationStudy:
    """Ablates MLP `neurons` of language `layer` against random sets of the same size.

    Raises:
      ConfigError: no neurons, more neurons than the layer has, or too many to draw controls.
      DataError: a sample is not a yes/no question.
    """
    require_yes_no(samples, "Ablation studies")
    width = vlm.adapter.shape(Tower.LANGUAGE).d_mlp
    if not neurons or len(neurons) > width:
        raise ConfigError(f"neuron_ablation needs 1..{width} neurons, got {len(neurons)}.")
    config = config or NeuronAblationConfig()
    targets = [int(u) for u in neurons]
    controls = control_sets(width, targets, config.n_controls, config.seed)
    means = None
    if config.mode == "mean":
        batches = [vlm.encode([s.image for s in samples[i : i + config.batch_size]],
                              [s.question for s in samples[i : i + config.batch_size]])
                   for i in range(0, len(samples), config.batch_size)]  # fmt: skip
        means = unit_means(vlm, batches, layer)
    arms = [baseline_arm(), *neuron_arms(layer, targets, controls, positions=config.positions,
                                         means=means)]  # fmt: skip
    correct = _outcomes(vlm, samples, arms, config.batch_size)
    label = f"{config.mode}-ablate {len(targets)} neurons of L{layer}"
    return summarise_study(correct[0], correct[1], list(correct[2:]), label)


def unit_means(vlm: VLM, batches: Sequence[VlmInputs], layer: int) -> Float[Tensor, " d_mlp"]:
    """Each MLP neuron's mean activation at `layer` over every real (non-padding) token."""
    site = Site(layer=layer, component=Component.MLP_NEURONS)
    total, count = None, 0
    for inputs in batches:
        values = run_graph(vlm, Graph(nodes=(Capture(site=site, name="n"),)), inputs)["n"]
        real = inputs.attention_mask.bool()
        summed = values[real].sum(dim=0)
        total = summed if total is None else total + summed
        count += int(real.sum())
    if total is None:
        raise DataError("unit_means needs at least one batch; got none.")
    return total / count


def attention_guided_masking(
    vlm: VLM, samples: Sequence[Sample], config: MaskingConfig | None = None
) -> dict[str, AblationStudy]:
    """Masks the most-attended `fraction` of each question's image patches (by the answer-to-image
    attention map), against the least-attended fraction and random fractions of the same size.

    Returns:
      {"top": ..., "bottom": ...}: each a study whose controls are the random masks.

    Raises:
      DataError: a sample is not a yes/no question.
    """
    config = config or MaskingConfig()
    arms = [baseline_arm(), *masking_arms(config)]
    correct = _outcomes(vlm, samples, arms, config.batch_size)
    baseline, top, bottom, randoms = correct[0], correct[1], correct[2], list(correct[3:])
    what = f"{config.fraction:.0%} of image patches ({config.level} level)"
    return {
        "top": summarise_study(baseline, top, randoms, f"mask the top-attended {what}"),
        "bottom": summarise_study(baseline, bottom, randoms, f"mask the least-attended {what}"),
    }


@dataclass(frozen=True, kw_only=True)
class DimensionAblationPoint:
    """Accuracy after zeroing a random `fraction` of the hidden dimensions at one layer.

    Attributes:
      fraction: share of the ``d_model`` dimensions zeroed (the same draw at every position).
      n_dims: how many dimensions that is.
      accuracy: accuracy averaged over the draws: each question's share of draws answered
        right, averaged over questions, with a bootstrap CI over questions (the draws of one
        question are not independent trials, so a binomial interval over draws x questions
        would be too narrow).
      change: paired per-question change against the unablated model, averaged over the draws
        (permutation p-value, bootstrap CI).
    """

    fraction: float
    n_dims: int
    accuracy: Estimate
    change: Estimate


def summarise_dimension_point(
    baseline: ArrayLike, draws: Sequence[ArrayLike], *, fraction: float, n_dims: int, seed: int = 0
) -> DimensionAblationPoint:
    """A `DimensionAblationPoint` from per-question correctness without intervention and under
    each random draw of `n_dims` dimensions.

    Raises:
      DataError: an input is not a 1-D 0/1 vector, there is no draw, or fewer than 2 questions.
      ShapeError: the inputs differ in length.
    """
    before = _as_correct(baseline, "baseline").astype(float)
    if not draws:
        raise DataError("summarise_dimension_point needs at least one draw; got none.")
    after = np.stack([_as_correct(d, f"draws[{i}]") for i, d in enumerate(draws)])
    if after.shape[1] != before.size:
        raise ShapeError(
            f"baseline has {before.size} questions, the draws {after.shape[1]}: pass outcomes "
            "of the same questions."
        )
    return DimensionAblationPoint(
        fraction=float(fraction),
        n_dims=int(n_dims),
        accuracy=mean_estimate(after.mean(axis=0), seed=seed),
        change=permutation_test(after.mean(axis=0), before, paired=True, seed=seed),
    )


def scaled_random_ablation(
    vlm: VLM,
    samples: Sequence[Sample],
    *,
    layer: int,
    fractions: Sequence[float] = (0.1, 0.25, 0.5, 0.75, 1.0),
    n_draws: int = 5,
    batch_size: int = 32,
    seed: int = 0,
) -> tuple[DimensionAblationPoint, ...]:
    """Zeroes random sets of residual-stream dimensions after language `layer`, a growing share
    at a time: the VRP study's test of how distributed (early fusion) or concentrated (late
    fusion) the answer's encoding is.

    Raises:
      ConfigError: a fraction outside (0, 1], or fewer than one draw.
      DataError: a sample is not a yes/no question.
    """
    require_yes_no(samples, "Ablation studies")
    width = vlm.adapter.shape(Tower.LANGUAGE).d_model
    arms = [baseline_arm(), *dims_arms(layer, width, fractions, n_draws=n_draws, seed=seed)]
    correct = _outcomes(vlm, samples, arms, batch_size)
    points = []
    for i, fraction in enumerate(fractions):
        draws = correct[1 + i * n_draws : 1 + (i + 1) * n_draws]
        points.append(summarise_dimension_point(
            correct[0], list(draws), fraction=fraction,
            n_dims=max(1, round(fraction * width)), seed=seed,
        ))  # fmt: skip
    return tuple(points)


def mlp_bypass(
    vlm: VLM, samples: Sequence[Sample], *, layer: int, batch_size: int = 32
) -> AblationStudy:
    """Removes language `layer`'s MLP block (its output zeroed at every position), the study's
    "MLP bypass": the accuracy change with the exact McNemar test (no random controls).

    Raises:
      DataError: a sample is not a yes/no question.
      GraphError: the layer does not exist.
    """
    correct = _outcomes(vlm, samples, [baseline_arm(), *bypass_arms([layer])], batch_size)
    return summarise_study(correct[0], correct[1], [], f"bypass the MLP of L{layer}")
