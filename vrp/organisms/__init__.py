"""Model organisms: small trained LLaVA, PaliGemma and Qwen2-VL models that run anywhere.

Each organism is a real Hugging Face class (LlavaForConditionalGeneration,
PaliGemmaForConditionalGeneration, Qwen2VLForConditionalGeneration) with its real processor and a
local word-level tokenizer, trained on CPU in minutes on the synthetic benchmark of `vrp.data`, and
shipped in this package: ``vrp.load("organism/llava")`` works offline, through the same adapters as
real checkpoints. They are deliberately imperfect (random-split POPE accuracy between 0.75 and 0.93,
lower on the adversarial split), so that correct and wrong answers can both be studied. Model cards with their
measured metrics live in ``cards/``.
"""

from ._card import (
    build_card as build_card,
    card_markdown as card_markdown,
    ship as ship,
    shipped_card as shipped_card,
    write_card as write_card,
)
from ._data import Example as Example, StepBatch as StepBatch, TrainingStream as TrainingStream
from ._evaluate import (
    EVAL_SEED as EVAL_SEED,
    OrganismReport as OrganismReport,
    evaluate_organism as evaluate_organism,
    evaluation_set as evaluation_set,
    organism_answers as organism_answers,
)
from ._positions import (
    grid_position_table as grid_position_table,
    set_grid_positions as set_grid_positions,
)
from ._recipe import (
    CAPTION_QUESTION as CAPTION_QUESTION,
    ORGANISM_WORDS as ORGANISM_WORDS,
    RECIPES as RECIPES,
    TRAIN_SEED_OFFSET as TRAIN_SEED_OFFSET,
    BatchMix as BatchMix,
    Recipe as Recipe,
    recipe as recipe,
)
from ._targets import (
    IGNORE as IGNORE,
    TargetBatch as TargetBatch,
    encode_with_targets as encode_with_targets,
    next_token_labels as next_token_labels,
    target_loss as target_loss,
)
from ._train import (
    VALIDATION_SEED as VALIDATION_SEED,
    TrainingResult as TrainingResult,
    train as train,
    train_step as train_step,
)

__all__ = [
    "CAPTION_QUESTION",
    "EVAL_SEED",
    "IGNORE",
    "ORGANISM_WORDS",
    "RECIPES",
    "TRAIN_SEED_OFFSET",
    "VALIDATION_SEED",
    "BatchMix",
    "Example",
    "OrganismReport",
    "Recipe",
    "StepBatch",
    "TargetBatch",
    "TrainingResult",
    "TrainingStream",
    "build_card",
    "card_markdown",
    "encode_with_targets",
    "evaluate_organism",
    "evaluation_set",
    "grid_position_table",
    "next_token_labels",
    "organism_answers",
    "recipe",
    "set_grid_positions",
    "ship",
    "shipped_card",
    "target_loss",
    "train",
    "train_step",
    "write_card",
]
