"""Causal ablation studies with controls: does removing these units change the answers?

Each study runs the model on yes/no questions with and without an intervention and compares
per-question correctness with the exact McNemar test. Targets are judged against controls drawn at
random (same size, same layer), as the VRP study's neuron ablations and attention-guided patch
masking require: a drop means little unless random units of the same size do not cause it.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from jaxtyping import Float
from PIL import Image, ImageDraw
from torch import Tensor

from vrp import AllTokens, Component, ConfigError, DataError, Positions, Site, Tower, to_rgb
from vrp.data import Sample
from vrp.interventions import (
    Capture,
    Graph,
    ImagePatchMask,
    MeanAblate,
    Node,
    Zero,
    run_graph,
)
from vrp.models import VLM, VlmInputs
from vrp.pipeline import answer_attention, require_yes_no
from vrp.stats import Estimate, mcnemar_exact, permutation_test, proportion


@dataclass(frozen=True, kw_only=True)
class AblationStudy:
    """A target intervention against random controls of the same size.

    Attributes:
      baseline: accuracy without intervention.
      target: accuracy change under the target intervention (exact McNemar; negative = drop).
      controls: the accuracy change under each random control.
      control_mean: mean change over the controls.
      p_vs_controls: share of controls whose change is at most the target's (+1 smoothed): small
        when the target hurts more than random units do; NaN without controls.
      label: what was ablated.
    """

    baseline: Estimate
    target: Estimate
    controls: tuple[Estimate, ...]
    control_mean: float
    p_vs_controls: float
    label: str


def _batches(vlm: VLM, samples: Sequence[Sample], size: int) -> list[tuple[VlmInputs, np.ndarray]]:
    out = []
    for start in range(0, len(samples), size):
        chunk = samples[start : start + size]
        inputs = vlm.encode([s.image for s in chunk], [s.question for s in chunk])
        out.append((inputs, np.array([s.answer == "yes" for s in chunk])))
    return out


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
        correct.append(vlm.says_yes(logits).numpy() == truth)
    return np.concatenate(correct)


def _study(
    baseline: np.ndarray, target: np.ndarray, controls: list[np.ndarray], label: str
) -> AblationStudy:
    target_change = mcnemar_exact(baseline, target)
    changes = [mcnemar_exact(baseline, c) for c in controls]
    at_most = sum(c.estimate <= target_change.estimate for c in changes)
    return AblationStudy(
        baseline=proportion(int(baseline.sum()), baseline.size),
        target=target_change,
        controls=tuple(changes),
        control_mean=float(np.mean([c.estimate for c in changes])) if changes else float("nan"),
        p_vs_controls=(at_most + 1) / (len(changes) + 1) if changes else float("nan"),
        label=label,
    )


@dataclass(frozen=True, kw_only=True)
class NeuronAblationConfig:
    """How `neuron_ablation` ablates and draws its controls.

    Attributes:
      n_controls: random neuron sets of the same size and layer.
      mode: "zero", or "mean" (each unit's mean over every real token of the samples).
      positions: where to ablate (all tokens by default; `LastToken()` for the answer position).
      batch_size: questions per trace.
      seed: seeds the control draws.
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
      ConfigError: no neurons, or more neurons than the layer has.
      DataError: a sample is not a yes/no question.
    """
    require_yes_no(samples, "Ablation studies")
    width = vlm.adapter.shape(Tower.LANGUAGE).d_mlp
    if not neurons or len(neurons) > width:
        raise ConfigError(f"neuron_ablation needs 1..{width} neurons, got {len(neurons)}.")
    config = config or NeuronAblationConfig()
    batches = _batches(vlm, samples, config.batch_size)
    rng = np.random.default_rng(config.seed)
    means = (
        unit_means(vlm, [inputs for inputs, _ in batches], layer) if config.mode == "mean" else None
    )

    def ablate(units: Sequence[int]) -> BatchNodes:
        site = Site(layer=layer, component=Component.MLP_NEURONS, neurons=tuple(units),
                    positions=config.positions)  # fmt: skip
        node: Node = (
            Zero(site=site) if means is None else MeanAblate(site=site, mean=means[list(units)])
        )
        return lambda inputs, index: (node,)

    others = np.setdiff1d(np.arange(width), np.asarray(neurons))
    if len(others) < len(neurons):
        raise ConfigError(
            f"Random controls are drawn from the other {len(others)} neurons of L{layer}; "
            f"{len(neurons)} targets leave too few. Ablate at most half of the layer."
        )
    controls = [rng.choice(others, size=len(neurons), replace=False).tolist()
                for _ in range(config.n_controls)]  # fmt: skip
    return _study(
        answer_correctness(vlm, batches),
        answer_correctness(vlm, batches, ablate([int(u) for u in neurons])),
        [answer_correctness(vlm, batches, ablate(c)) for c in controls],
        f"{config.mode}-ablate {len(neurons)} neurons of L{layer}",
    )


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


@dataclass(frozen=True, kw_only=True)
class MaskingConfig:
    """How `attention_guided_masking` masks.

    Attributes:
      fraction: share of the image's patches masked per question.
      n_random: random masks of the same size (the controls).
      level: "token" replaces the projected image tokens (with `fill`); "pixel" paints the
        patches' pixels grey (`grey`) before the processor.
      fill: token-level replacement, "mean" of the image's tokens or "zero".
      grey: pixel-level grey value.
      batch_size: questions per trace.
      seed: seeds the random masks.
    """

    fraction: float = 0.3
    n_random: int = 5
    level: Literal["token", "pixel"] = "token"
    fill: Literal["zero", "mean"] = "mean"
    grey: int = 128
    batch_size: int = 16
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.fraction < 1:
            raise ConfigError(f"fraction must lie in (0, 1), got {self.fraction}.")
        if self.level not in ("token", "pixel"):
            raise ConfigError(f"level must be 'token' or 'pixel', got {self.level!r}.")


def paint_patches(
    image: Image.Image, grid: tuple[int, int], patches: Sequence[int], grey: int = 128
) -> Image.Image:
    """A copy of `image` with the grid cells `patches` (row-major) painted uniform grey.

    The grid is laid over the whole image, as the processors of the three families see a square
    image (they resize it whole), so cell (r, c) covers rows r*H/gh..(r+1)*H/gh of the picture.
    The copy is made with `vrp.to_rgb` (transparency composited onto white), as every vrp path does.

    Raises:
      DataError: `image` is empty or cannot be decoded.
    """
    out = to_rgb(image)
    draw = ImageDraw.Draw(out)
    rows, cols = grid
    width, height = out.size
    for patch in patches:
        r, c = divmod(int(patch), cols)
        box = (c * width / cols, r * height / rows, (c + 1) * width / cols, (r + 1) * height / rows)
        draw.rectangle(
            (round(box[0]), round(box[1]), round(box[2]) - 1, round(box[3]) - 1),
            fill=(grey, grey, grey),
        )
    return out


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
    require_yes_no(samples, "Ablation studies")
    config = config or MaskingConfig()
    batches = _batches(vlm, samples, config.batch_size)
    orders = [answer_attention(vlm, inputs).mean.flatten(1).argsort(dim=1, descending=True)
              for inputs, _ in batches]  # fmt: skip
    n_tokens = orders[0].shape[1]
    k = max(1, round(config.fraction * n_tokens))
    rng = np.random.default_rng(config.seed)

    def masked(pick: Callable[[torch.Tensor], Sequence[int]]) -> np.ndarray:
        chosen = [[[int(p) for p in pick(order)] for order in batch] for batch in orders]
        if config.level == "pixel":
            return _pixel_masked(vlm, samples, batches, chosen, config)

        def nodes(inputs: VlmInputs, index: int) -> list[Node]:
            return [ImagePatchMask(patches=tuple(map(tuple, chosen[index])), fill=config.fill)]

        return answer_correctness(vlm, batches, nodes)

    baseline = answer_correctness(vlm, batches)
    randoms = [masked(lambda order: rng.choice(n_tokens, size=k, replace=False).tolist())
               for _ in range(config.n_random)]  # fmt: skip
    top = masked(lambda order: order[:k].tolist())
    bottom = masked(lambda order: order[-k:].tolist())
    what = f"{config.fraction:.0%} of image patches ({config.level} level)"
    return {
        "top": _study(baseline, top, randoms, f"mask the top-attended {what}"),
        "bottom": _study(baseline, bottom, randoms, f"mask the least-attended {what}"),
    }


def _pixel_masked(
    vlm: VLM,
    samples: Sequence[Sample],
    batches: Sequence[tuple[VlmInputs, np.ndarray]],
    chosen: list[list[list[int]]],
    config: MaskingConfig,
) -> np.ndarray:
    painted = []
    for index, (inputs, truth) in enumerate(batches):
        start = index * config.batch_size
        rows = samples[start : start + inputs.batch_size]
        images = [paint_patches(s.image, inputs.grids[0], patches, config.grey)
                  for s, patches in zip(rows, chosen[index], strict=True)]  # fmt: skip
        painted.append((vlm.encode(images, [s.question for s in rows]), truth))
    return answer_correctness(vlm, painted)


@dataclass(frozen=True, kw_only=True)
class DimensionAblationPoint:
    """Accuracy after zeroing a random `fraction` of the hidden dimensions at one layer.

    Attributes:
      fraction: share of the ``d_model`` dimensions zeroed (the same draw at every position).
      n_dims: how many dimensions that is.
      accuracy: mean accuracy over the draws (proportion of the pooled answers, Wilson CI).
      change: paired per-question change against the unablated model, averaged over the draws
        (permutation p-value, bootstrap CI).
    """

    fraction: float
    n_dims: int
    accuracy: Estimate
    change: Estimate


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
    if n_draws < 1 or any(not 0 < f <= 1 for f in fractions):
        raise ConfigError(
            f"scaled_random_ablation needs fractions in (0, 1] and n_draws >= 1; got "
            f"{list(fractions)} and {n_draws}."
        )
    width = vlm.adapter.shape(Tower.LANGUAGE).d_model
    batches = _batches(vlm, samples, batch_size)
    baseline = answer_correctness(vlm, batches).astype(float)
    rng = np.random.default_rng(seed)
    points = []
    for fraction in fractions:
        n_dims = max(1, round(fraction * width))
        draws = [answer_correctness(vlm, batches, _zero_dims(layer, rng.choice(width, n_dims, replace=False)))
                 for _ in range(n_draws)]  # fmt: skip
        pooled = np.concatenate(draws)
        per_question = np.mean(draws, axis=0)
        points.append(DimensionAblationPoint(
            fraction=float(fraction),
            n_dims=n_dims,
            accuracy=proportion(int(pooled.sum()), pooled.size),
            change=permutation_test(per_question, baseline, paired=True, seed=seed),
        ))  # fmt: skip
    return tuple(points)


def _zero_dims(layer: int, dims: np.ndarray) -> BatchNodes:
    site = Site(layer=layer, component=Component.RESID_POST, dims=tuple(int(d) for d in dims))
    node = Zero(site=site)
    return lambda inputs, index: (node,)


def mlp_bypass(
    vlm: VLM, samples: Sequence[Sample], *, layer: int, batch_size: int = 32
) -> AblationStudy:
    """Removes language `layer`'s MLP block (its output zeroed at every position), the study's
    "MLP bypass": the accuracy change with the exact McNemar test (no random controls).

    Raises:
      DataError: a sample is not a yes/no question.
      GraphError: the layer does not exist.
    """
    require_yes_no(samples, "Ablation studies")
    batches = _batches(vlm, samples, batch_size)
    node = Zero(site=Site(layer=layer, component=Component.MLP_OUT))
    bypassed = answer_correctness(vlm, batches, lambda inputs, index: (node,))
    return _study(answer_correctness(vlm, batches), bypassed, [], f"bypass the MLP of L{layer}")
