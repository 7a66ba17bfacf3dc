"""Per-question outcomes of causal conditions, one batch at a time: the engine of every ablation
study in this package and of the VRP study's causal stage.

An `Arm` is one condition: the plain model (baseline), image patches masked by attention rank or
at random (token or pixel level), or fixed intervention nodes applied to every question (neuron
ablation, dimension ablation, MLP bypass). `condition_outcomes` runs many arms on one batch,
stacked as runs of a few traces, and returns each question's correctness under each arm.

Why outcomes rather than accuracies: a study that keeps every question's correctness under every
condition can be summarised again (by split, by category, against other controls) without
running the model, and resumed batch by batch. So every random choice is drawn from a generator
seeded by the study's seed and a stable key (the arm's, and for per-question draws the
question's split and id): a question's outcome never depends on how the questions were batched.
"""

import dataclasses
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

import numpy as np
from jaxtyping import Bool, Int
from torch import Tensor

from vrp import AllTokens, Component, ConfigError, Positions, Site, to_rgb
from vrp.core import TidyRecords
from vrp.data import Question, Sample
from vrp.interventions import (
    ExecutionConfig,
    Graph,
    ImagePatchMask,
    MeanAblate,
    Node,
    Zero,
    run_graph,
)
from vrp.models import VLM, VlmInputs
from vrp.pipeline import answer_attention, require_yes_no

from ._masking import MaskingConfig, paint_patches

Family: TypeAlias = Literal["baseline", "masking", "neurons", "dims", "bypass"]
FAMILIES: tuple[Family, ...] = ("baseline", "masking", "neurons", "dims", "bypass")
_CONDITIONS = {
    "baseline": ("none",),
    "masking": ("top", "bottom", "random"),
    "neurons": ("none", "top", "random"),
    "dims": ("random",),
    "bypass": ("bypass",),
}


@dataclass(frozen=True, kw_only=True)
class Arm:
    """One condition of a causal study (build arms with the `*_arms` helpers).

    Attributes:
      family: "baseline", "masking", "neurons", "dims" or "bypass".
      condition: "none" (baseline); "top", "bottom" or "random" (masking); "top" or "random"
        (neurons), or "none" for the plain model run beside them (the baseline of questions
        that only a neuron study runs, in the same batches as its ablations); "random" (dims);
        "bypass".
      level: what the family varies: "token" / "pixel" (masking), "L<layer>" (neurons, bypass),
        the fraction of dimensions (dims, e.g. "0.25"); "" for the baseline.
      draw: index of a random draw (0 for arms without randomness).
      nodes: the nodes applied to every question (neurons, dims, bypass); () otherwise.
      masking: how a masking arm masks (its `level` equals `masking.level`); None otherwise.

    Raises:
      ConfigError: an unknown family or condition, or fields that do not fit the family.
    """

    family: Family
    condition: str
    level: str = ""
    draw: int = 0
    nodes: tuple[Node, ...] = ()
    masking: MaskingConfig | None = None

    def __post_init__(self) -> None:
        if self.family not in _CONDITIONS or self.condition not in _CONDITIONS[self.family]:
            raise ConfigError(
                f"Arm: family {self.family!r} with condition {self.condition!r} is not a causal "
                f"condition; expected one of {_CONDITIONS}."
            )
        level = None if self.masking is None else self.masking.level
        if (self.family == "masking") != (level is not None) or level not in (None, self.level):
            raise ConfigError(
                f"Arm {self.key}: a masking arm needs a MaskingConfig of the same level, and "
                f"only a masking arm takes one; got masking={self.masking!r}."
            )
        plain = self.family in ("baseline", "masking") or self.condition == "none"
        if plain != (not self.nodes):
            raise ConfigError(
                f"Arm {self.key}: neurons, dims and bypass arms need nodes; baseline, masking "
                f"and 'none' arms take none. Got {len(self.nodes)} nodes."
            )

    @property
    def key(self) -> str:
        """A stable name, e.g. "masking/random/token/2"."""
        return f"{self.family}/{self.condition}/{self.level}/{self.draw}"


def stable_key(text: str) -> int:
    """A non-negative integer for `text`, the same in every process (unlike `hash`)."""
    return zlib.crc32(text.encode("utf-8"))


def seeded_rng(seed: int, *keys: str) -> np.random.Generator:
    """A numpy Generator seeded by `seed` and the stable keys `keys`."""
    return np.random.default_rng([seed, *(stable_key(k) for k in keys)])


def question_key(question: Question) -> str:
    """A question's identity within a study: its split and id (ids repeat across splits)."""
    return f"{question.split}/{question.question_id}"


# ----- arm constructors ----------------------------------------------------------------------------
def baseline_arm() -> Arm:
    """The plain model."""
    return Arm(family="baseline", condition="none")


def masking_arms(config: MaskingConfig) -> tuple[Arm, ...]:
    """Top-attended, least-attended and `config.n_random` random masks at `config.level`.

    Random draw `d` of a question is the same at the token and the pixel level (its seed does
    not include the level), so the two implementations are compared on the same patches.
    """
    which = [("top", 0), ("bottom", 0), *(("random", d) for d in range(config.n_random))]
    return tuple(
        Arm(family="masking", condition=c, level=config.level, draw=d, masking=config)
        for c, d in which
    )


def neuron_arms(
    layer: int,
    targets: Sequence[int],
    controls: Sequence[Sequence[int]],
    *,
    positions: Positions | None = None,
    means: Tensor | None = None,
) -> tuple[Arm, ...]:
    """Ablation of MLP neurons `targets` of language `layer` ("top") and of each control set
    ("random", one draw each): zeroed, or set to `means` (one value per neuron of the layer).

    Raises:
      ConfigError: no targets, or a control set of another size.
    """
    if not targets or any(len(c) != len(targets) for c in controls):
        raise ConfigError(
            f"neuron_arms needs targets and controls of one size; got {len(targets)} targets and "
            f"control sizes {sorted({len(c) for c in controls})}."
        )
    positions = positions or AllTokens()

    def arm(units: Sequence[int], condition: str, draw: int) -> Arm:
        site = Site(layer=layer, component=Component.MLP_NEURONS, neurons=tuple(map(int, units)),
                    positions=positions)  # fmt: skip
        node: Node = Zero(site=site)
        if means is not None:
            node = MeanAblate(site=site, mean=means[list(map(int, units))])
        return Arm(family="neurons", condition=condition, level=f"L{layer}", draw=draw,
                   nodes=(node,))  # fmt: skip

    return (arm(targets, "top", 0), *(arm(c, "random", d) for d, c in enumerate(controls)))


def control_sets(
    width: int, targets: Sequence[int], n: int, seed: int
) -> tuple[tuple[int, ...], ...]:
    """`n` random sets of `len(targets)` units drawn from the other `width - len(targets)` units
    (seeded by `seed` and the key "neurons/random").

    Raises:
      ConfigError: the targets leave fewer other units than one set needs.
    """
    others = np.setdiff1d(np.arange(width), np.asarray(list(targets), dtype=int))
    if len(others) < len(targets):
        raise ConfigError(
            f"Random controls are drawn from the other {len(others)} neurons; {len(targets)} "
            "targets leave too few. Ablate at most half of the layer."
        )
    rng = seeded_rng(seed, "neurons/random")
    return tuple(
        tuple(int(u) for u in rng.choice(others, size=len(targets), replace=False))
        for _ in range(n)
    )


def dims_arms(
    layer: int, width: int, fractions: Sequence[float], *, n_draws: int, seed: int
) -> tuple[Arm, ...]:
    """Zeroing of random sets of the residual stream's `width` dimensions after language `layer`:
    `n_draws` sets per fraction, each seeded by `seed` and the key "dims/<fraction>/<draw>".

    Raises:
      ConfigError: a fraction outside (0, 1], or fewer than one draw.
    """
    if n_draws < 1 or any(not 0 < f <= 1 for f in fractions):
        raise ConfigError(
            f"Dimension ablation needs fractions in (0, 1] and n_draws >= 1; got "
            f"{list(fractions)} and {n_draws}."
        )
    arms = []
    for fraction in fractions:
        n_dims = max(1, round(fraction * width))
        for draw in range(n_draws):
            rng = seeded_rng(seed, f"dims/{fraction:g}/{draw}")
            dims = tuple(int(d) for d in np.sort(rng.choice(width, n_dims, replace=False)))
            node = Zero(site=Site(layer=layer, component=Component.RESID_POST, dims=dims))
            arms.append(Arm(family="dims", condition="random", level=f"{fraction:g}", draw=draw,
                            nodes=(node,)))  # fmt: skip
    return tuple(arms)


def bypass_arms(layers: Sequence[int]) -> tuple[Arm, ...]:
    """Removal of each layer's MLP block (its output zeroed at every position)."""
    return tuple(
        Arm(family="bypass", condition="bypass", level=f"L{layer}",
            nodes=(Zero(site=Site(layer=layer, component=Component.MLP_OUT)),))
        for layer in layers
    )  # fmt: skip


# ----- the engine ----------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class Outcomes(TidyRecords):
    """Each question's correctness under each arm of one batch.

    Attributes:
      arms: the conditions, one per row of `correct`.
      questions: the questions (without pixels), one per column of `correct`.
      correct: whether the answer under the arm is right.
    """

    arms: tuple[Arm, ...]
    questions: tuple[Question, ...]
    correct: Bool[np.ndarray, "arm question"] = field(compare=False)

    def of(self, arm: Arm) -> Bool[np.ndarray, " question"]:
        """The correctness under `arm` (the first arm equal to it).

        Raises:
          ConfigError: `arm` is not one of the arms.
        """
        for index, mine in enumerate(self.arms):
            if mine.key == arm.key and mine == arm:
                return self.correct[index]
        raise ConfigError(f"Arm {arm.key} is not among these outcomes' {len(self.arms)} arms.")

    def to_records(self) -> list[dict[str, Any]]:
        """One row per question per arm: question_id, split, category, family, condition,
        level, draw, correct (in arm order, then question order)."""
        return [
            {"question_id": q.question_id, "split": q.split, "category": q.category,
             "family": arm.family, "condition": arm.condition, "level": arm.level,
             "draw": arm.draw, "correct": bool(ok)}
            for arm, row in zip(self.arms, self.correct, strict=True)
            for q, ok in zip(self.questions, row, strict=True)
        ]  # fmt: skip


def as_question(sample: Question) -> Question:
    """The question of a sample, without its image (what outcomes keep)."""
    return Question(**{f.name: getattr(sample, f.name) for f in dataclasses.fields(Question)})


def attention_order(vlm: VLM, inputs: VlmInputs) -> Int[Tensor, "batch patch"]:
    """Each row's image patches (row-major grid indices) from most to least attended by the
    answer position (the layer- and head-averaged map of `vrp.pipeline.answer_attention`)."""
    return answer_attention(vlm, inputs).mean.flatten(1).argsort(dim=1, descending=True)


def masked_patches(
    arm: Arm, order: Int[Tensor, "batch patch"], questions: Sequence[Question]
) -> list[tuple[int, ...]]:
    """The patches a masking arm masks in each row: the top or bottom `fraction` of `order`, or
    a random set of that size drawn per question (seed, arm, question)."""
    config = arm.masking
    if config is None:
        raise ConfigError(f"Arm {arm.key} is not a masking arm.")
    n_patches = order.shape[1]
    k = max(1, round(config.fraction * n_patches))
    if arm.condition == "top":
        return [tuple(int(p) for p in row[:k]) for row in order.tolist()]
    if arm.condition == "bottom":
        return [tuple(int(p) for p in row[n_patches - k :]) for row in order.tolist()]
    picks = []
    for question in questions:
        rng = seeded_rng(config.seed, f"masking/random/{arm.draw}", question_key(question))
        picks.append(tuple(int(p) for p in np.sort(rng.choice(n_patches, k, replace=False))))
    return picks


def condition_outcomes(
    vlm: VLM,
    samples: Sequence[Sample],
    arms: Sequence[Arm],
    *,
    conditions_per_trace: int = 16,
    config: ExecutionConfig | None = None,
) -> "Outcomes":
    """Each question's correctness (`VLM.says_yes` against the truth) under each arm.

    The arms run as named runs of one graph, `conditions_per_trace` at a time; masking arms share
    one attention pass; pixel-level masks repaint the images and encode them again.

    Args:
      vlm: the model.
      samples: one batch of yes/no questions.
      arms: the conditions (e.g. `baseline_arm()` and `masking_arms(...)`).
      conditions_per_trace: arms stacked into one trace (bounds memory with `config`).
      config: execution settings passed to `run_graph` (e.g. a memory budget).

    Returns:
      The outcomes: one row of `correct` per arm, in the order of `arms`, one column per sample.

    Raises:
      DataError: a sample is not a yes/no question.
      ConfigError: no arms, or `conditions_per_trace` < 1.
      GraphError: an arm's nodes do not fit the model.
    """
    require_yes_no(samples, "Causal conditions")
    if not arms or conditions_per_trace < 1:
        raise ConfigError(
            f"condition_outcomes needs at least one arm and conditions_per_trace >= 1; got "
            f"{len(arms)} arms and {conditions_per_trace}."
        )
    truth = np.array([s.answer == "yes" for s in samples])
    inputs = vlm.encode([s.image for s in samples], [s.question for s in samples])
    order = attention_order(vlm, inputs) if any(a.masking for a in arms) else None
    out: list[np.ndarray] = []
    for start in range(0, len(arms), conditions_per_trace):
        chunk = arms[start : start + conditions_per_trace]
        names = [f"arm{start + i}" for i in range(len(chunk))]
        runs, nodes = {}, []
        for name, arm in zip(names, chunk, strict=True):
            runs[name], arm_nodes = _arm_run(vlm, arm, samples, inputs, order)
            nodes += [dataclasses.replace(node, run=name) for node in arm_nodes]
        logits = run_graph(vlm, Graph(nodes=tuple(nodes), runs=tuple(names)), runs, config)
        out += [vlm.says_yes(logits.answer_logits[n]).cpu().numpy() == truth for n in names]
    return Outcomes(arms=tuple(arms), questions=tuple(map(as_question, samples)),
                    correct=np.stack(out))  # fmt: skip


def _arm_run(
    vlm: VLM, arm: Arm, samples: Sequence[Sample], inputs: VlmInputs, order: Tensor | None
) -> tuple[VlmInputs, tuple[Node, ...]]:
    """The inputs of an arm's run and the nodes applied to it (with run "main")."""
    if arm.masking is None:
        return inputs, arm.nodes
    assert order is not None  # computed whenever an arm masks
    patches = masked_patches(arm, order, samples)
    if arm.masking.level == "token":
        return inputs, (ImagePatchMask(patches=tuple(patches), fill=arm.masking.fill),)
    images = [to_rgb(s.image) for s in samples]
    painted = [paint_patches(image, grid, p, arm.masking.grey, region=vlm.image_region(image.size))
               for image, grid, p in zip(images, inputs.grids, patches, strict=True)]  # fmt: skip
    return vlm.encode(painted, [s.question for s in samples]), ()
