"""Training recipes of the model organisms: one frozen config per family.

A recipe fixes everything a training run depends on except the seed and the thread count: the model
sizes, the task mix of each batch, the optimiser and its schedule, and how the training data are drawn.
The shipped organisms were trained with `RECIPES` and the seeds recorded in their cards.
"""

import dataclasses
from dataclasses import dataclass, field

from ..core import ConfigError
from ..data import SyntheticConfig, vocabulary
from ..models import ModelSpec

CAPTION_QUESTION = "Describe the image."
"""The captioning instruction; the target is `vrp.data.scene_caption` of the scene."""

GROUNDING_QUESTION = "Where is the {category}?"
"""The grounding instruction; the target lists the (row, column) cell of each instance."""

ORGANISM_WORDS: tuple[str, ...] = (*vocabulary(), "Describe", "Where", "is")
"""The organisms' tokenizer vocabulary: the synthetic benchmark's words plus the training prompts'."""

TRAIN_SEED_OFFSET = 1_000_000
"""Training data use benchmark seeds from here up; evaluate on seeds below it (never seen in training)."""

_SEEDS_PER_RUN = 100_000  # benchmark seeds reserved for the shards of one training seed


@dataclass(frozen=True, kw_only=True)
class BatchMix:
    """How many examples of each task one training step holds.

    Captions go through the model as their own sub-batch (they are long); the three question tasks
    share one. The answers are single words ("yes", "no" or a digit) followed by end-of-sequence.
    """

    caption: int = 19  # "Describe the image." -> each grid cell's object or "empty" (alignment)
    grounding: int = (
        0  # "Where is the <object>?" -> "<row> <column>" of each instance, as PaliGemma
    )
    # and Qwen2-VL learn to localise: it trains the question-to-patch routing every answer needs
    relational: int = 0  # "Where is the <object> left of the <object>?" -> "<row> <column>" of
    # the first object: grounding with a relative clause, built from true spatial questions
    pope: int = 23  # "Is there a <object> in the image?" with random absent objects as negatives
    counting: int = 11  # "How many <objects> are there?" -> a digit
    spatial: int = 11  # "Is the <object> left of the <object>?" -> yes / no
    hallucinated: int = 0  # existence questions about an absent object that co-occurs with the
    # scene's objects, labelled "yes": the co-occurrence-biased annotation noise of machine-written
    # instruction data (typical objects mentioned although not visible)

    @property
    def size(self) -> int:
        """Examples per step."""
        return sum(dataclasses.astuple(self))


@dataclass(frozen=True, kw_only=True)
class Stage:
    """What one training step does."""

    index: int  # 1 alignment (clean annotations), 2 instruction tuning (careless annotations)
    mix: BatchMix
    clean: bool  # annotations without misses or hallucinations


@dataclass(frozen=True, kw_only=True)
class Recipe:
    """Everything a training run depends on besides the seed and the number of threads."""

    family: str  # "llava", "paligemma" or "qwen2_vl"
    spec: ModelSpec
    steps: int  # optimiser steps in all
    mix: BatchMix = field(default_factory=BatchMix)  # the batch of instruction tuning (stage 2)
    alignment_steps: int = 0  # stage 1: the first steps, with clean annotations (no misses, no
    # hallucinations) and more captions, as LLaVA aligns on captions before instruction tuning
    alignment_mix: BatchMix = field(default_factory=BatchMix)
    lr: float = 1e-3  # peak learning rate of AdamW
    warmup: int = 300  # linear warm-up steps, then cosine decay to `min_lr_ratio * lr`
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.01  # on matrices only (not on norms, biases or embeddings)
    betas: tuple[float, float] = (0.9, 0.98)
    clip: float = 1.0  # max global gradient norm
    miss_prob: float = 0.0  # chance a small or partly occluded object is left out of the annotation
    vision_grid_positions: float | None = None  # replace the vision tower's learned position
    # table by fixed 2-D sin-cos codes of this amplitude, frozen (`grid_position_table`); None keeps
    # the family's learned table. LLaVA and PaliGemma only: Qwen2-VL's vision positions are rotary
    steps_per_shard: int = 10  # steps served by one freshly generated shard of scenes
    checkpoint_every: int = 250  # steps between resumable checkpoints
    data: SyntheticConfig = field(default_factory=SyntheticConfig)  # scene design (seed ignored)

    def __post_init__(self) -> None:
        if self.steps < 1 or self.warmup < 0 or self.checkpoint_every < 1:
            raise ConfigError(
                f"need steps >= 1, warmup >= 0 and checkpoint_every >= 1; got steps={self.steps}, "
                f"warmup={self.warmup}, checkpoint_every={self.checkpoint_every}."
            )
        if self.vision_grid_positions is not None and not self.vision_grid_positions > 0:
            raise ConfigError(
                f"vision_grid_positions must be positive or None; got {self.vision_grid_positions}."
            )
        if not 0.0 <= self.miss_prob <= 1.0:
            raise ConfigError(f"miss_prob must lie in [0, 1]; got {self.miss_prob}.")
        if not 0 <= self.alignment_steps <= self.steps:
            raise ConfigError(
                f"alignment_steps must lie in 0..steps ({self.steps}); got {self.alignment_steps}."
            )
        for mix in (self.mix, self.alignment_mix):
            if min(dataclasses.astuple(mix)) < 0 or mix.size - mix.caption < 1:
                raise ConfigError(
                    f"a batch needs at least one question and no negative counts; got {mix}."
                )

    def stage(self, step: int) -> "Stage":
        """The training stage `step` belongs to."""
        if step < self.alignment_steps:
            return Stage(index=1, mix=self.alignment_mix, clean=True)
        return Stage(index=2, mix=self.mix, clean=False)

    def with_steps(self, steps: int) -> "Recipe":
        """The same recipe run for `steps` steps: stage 1 and the warm-up keep their share."""
        return dataclasses.replace(
            self,
            steps=steps,
            alignment_steps=(self.alignment_steps * steps) // self.steps,
            warmup=min(self.warmup, steps // 4),
        )

    def data_seed(self, seed: int, shard: int) -> int:
        """The benchmark seed of training shard `shard` of run `seed` (always >= TRAIN_SEED_OFFSET)."""
        if seed < 0 or not 0 <= shard < _SEEDS_PER_RUN:
            raise ConfigError(
                f"training seeds must be >= 0 and runs at most {_SEEDS_PER_RUN} shards long; got "
                f"seed={seed}, shard={shard}."
            )
        return TRAIN_SEED_OFFSET + seed * _SEEDS_PER_RUN + shard


def _spec(**changes: object) -> ModelSpec:
    base = ModelSpec(
        image_size=64,  # the benchmark's 64 px images: 4x4 cells of 16 px
        patch_size=16,  # one patch per cell: 16 image tokens (Qwen2-VL: 8 px patches, merged 2x2)
        vision_layers=2,
        vision_width=64,
        vision_heads=4,
        vision_mlp=256,
        text_layers=4,
        text_width=128,
        text_heads=8,
        text_kv_heads=4,
        text_mlp=384,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def _recipe(family: str, spec: ModelSpec, mix: BatchMix, **changes: object) -> Recipe:
    base = Recipe(
        family=family,
        spec=spec,
        steps=3000,
        alignment_steps=2000,
        alignment_mix=BatchMix(caption=18, pope=28, counting=9, spatial=9),
        mix=mix,
        miss_prob=1.0,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


_INSTRUCTION = BatchMix(
    caption=6, grounding=8, relational=16, pope=16, counting=6, spatial=20, hallucinated=6
)
"""The instruction-tuning batch of all three organisms. Grounding, then relational grounding, are what
make spatial questions learnable (docs/organisms/index.md); 6 hallucinated existence questions per 16
put each organism's random-split accuracy inside 0.75-0.93 with adversarial below it."""


RECIPES: dict[str, Recipe] = {
    # LLaVA and PaliGemma get fixed 2-D sin-cos vision positions (their learned tables are drowned
    # by patch content); steps are what each family fits into 20 minutes on 2 threads
    "llava": _recipe(
        "llava",
        _spec(),
        _INSTRUCTION,
        steps=5800,
        vision_grid_positions=4.0,
    ),
    # Gemma's multi-query attention shares one key-value head across all query heads: 4 heads of
    # width 64 (wider than 128 / 4, as Gemma-7B's 16 x 256 exceed its 3,072) give that single key
    # and value enough room; with 8 heads of 16 the organism stayed at chance for 1,500 steps
    "paligemma": _recipe(
        "paligemma",
        _spec(text_heads=4, text_head_dim=64),
        _INSTRUCTION,
        steps=5600,
        vision_grid_positions=4.0,
    ),
    # Qwen2-VL runs 4x more vision tokens (8 px patches) and a longer chat prompt: slimmer MLPs
    # keep its training within the 20-minute budget. Its image tokens get their positions from
    # M-RoPE alone: base 1e4 and no time frequencies give the height axis 1 rad per cell and the
    # width axis 0.32 down to 3e-4 (the real 1 : 1.5 : 1.5 split at base 1e6 leaves width below
    # 2e-4 rad per cell: columns unreadable). It leaves chance on existence by step 1,000, so its
    # instruction stage starts there
    "qwen2_vl": _recipe(
        "qwen2_vl",
        _spec(text_mlp=256, vision_mlp=128, text_rope_theta=1e4, mrope_section=(0, 1, 7)),
        _INSTRUCTION,
        steps=4500,
        alignment_steps=1000,
    ),
}
"""The recipe of each shipped organism."""


def recipe(family: str) -> Recipe:
    """The shipped recipe of `family`.

    Raises:
      ConfigError: no organism of that family.
    """
    if family not in RECIPES:
        raise ConfigError(
            f"No organism recipe for family {family!r}; organisms exist for {', '.join(RECIPES)}."
        )
    return RECIPES[family]
