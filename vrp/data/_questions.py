"""Questions about synthetic scenes: POPE's three negative-sampling splits, counting and spatial.

POPE (Li et al., 2023) asks, per image, about 3 present objects ("yes") and 3 absent ones ("no").
The three splits share the yes questions and differ only in how absent objects are chosen:
random (uniform), popular (most frequent over the dataset), adversarial (co-occurring most with the
image's present objects). Frequencies and co-occurrences are counted over the split's own scenes.
"""

import math
from collections.abc import Sequence
from typing import TypeVar

import numpy as np

from ..core import ConfigError
from ._config import SyntheticConfig
from ._dataset import POPE_SPLITS, Question
from ._scene import Scene
from ._stats import cooccurrence_counts
from ._vocab import counting_question, pope_question, spatial_question

T = TypeVar("T")

_STREAM_POSITIVES, _STREAM_COUNTING, _STREAM_SPATIAL = 1, 2, 3
_STREAM_NEGATIVES = 10  # + index of the split in POPE_SPLITS


def n_scenes(config: SyntheticConfig) -> int:
    """Scenes to draw: enough for POPE's yes questions and about two counting / spatial questions each."""
    pope = math.ceil(config.n_per_split // 2 / config.positives_per_scene)
    return max(pope, math.ceil(config.n_counting / 2), math.ceil(config.n_spatial / 2))


def pope_scene_count(config: SyntheticConfig) -> int:
    """How many of the first scenes the POPE splits use."""
    return math.ceil(config.n_per_split // 2 / config.positives_per_scene)


def pope_questions(scenes: Sequence[Scene], config: SyntheticConfig) -> dict[str, list[Question]]:
    """The random, popular and adversarial POPE splits over `scenes`.

    Args:
      scenes: the split's scenes (each with at least ``positives_per_scene`` distinct categories).
      config: supplies the seed, the categories and ``n_per_split``.

    Returns:
      Split name -> questions, yes and no interleaved per image, ids from 1.
    """
    categories = config.categories
    counts = cooccurrence_counts([s.categories for s in scenes], categories)
    rng = np.random.default_rng([config.seed, _STREAM_POSITIVES])
    remaining = config.n_per_split // 2
    positives = []
    for scene in scenes:
        k = min(config.positives_per_scene, remaining)
        positives.append([str(c) for c in rng.choice(sorted(scene.categories), k, replace=False)])
        remaining -= k
    splits = {}
    for index, split in enumerate(POPE_SPLITS):
        split_rng = np.random.default_rng([config.seed, _STREAM_NEGATIVES + index])
        questions: list[Question] = []
        for scene, yes in zip(scenes, positives, strict=False):
            no = _negatives(split, scene, len(yes), categories, counts, split_rng)
            for obj_yes, obj_no in zip(yes, no, strict=True):
                for obj, answer in ((obj_yes, "yes"), (obj_no, "no")):
                    questions.append(_pope(len(questions) + 1, scene, obj, answer, split))
        splits[split] = questions
    return splits


def _negatives(
    split: str,
    scene: Scene,
    k: int,
    categories: tuple[str, ...],
    counts: np.ndarray,
    rng: np.random.Generator,
) -> list[str]:
    present = scene.categories
    absent = [i for i, c in enumerate(categories) if c not in present]
    if split == "random":
        return [categories[absent[int(j)]] for j in rng.choice(len(absent), k, replace=False)]
    frequency = np.diag(counts)
    if split == "popular":
        ranked = sorted(absent, key=lambda i: (-frequency[i], i))
    else:  # adversarial: summed co-occurrence with every present object
        rows = [categories.index(c) for c in sorted(present)]
        together = counts[rows].sum(axis=0)
        ranked = sorted(absent, key=lambda i: (-together[i], -frequency[i], i))
    return [categories[i] for i in ranked[:k]]


def _pope(question_id: int, scene: Scene, obj: str, answer: str, split: str) -> Question:
    return Question(
        question_id=question_id,
        image_name=scene.image,
        question=pope_question(obj),
        answer=answer,
        split=split,
        category=obj,
    )


def counting_questions(scenes: Sequence[Scene], config: SyntheticConfig) -> list[Question]:
    """``n_counting`` "How many X are there?" questions spread evenly over `scenes`.

    Each scene offers its present categories and one absent category (answer "0"), shuffled.

    Raises:
      ConfigError: the scenes cannot supply that many distinct questions.
    """
    rng = np.random.default_rng([config.seed, _STREAM_COUNTING])
    pools = []
    for scene in scenes:
        present = sorted(scene.categories)
        absent = [c for c in config.categories if c not in scene.categories]
        pool = [*present, absent[int(rng.integers(len(absent)))]]
        pools.append([pool[int(i)] for i in rng.permutation(len(pool))])
    picked = _round_robin(pools, config.n_counting, rng, "counting")
    return [
        Question(
            question_id=i + 1,
            image_name=scenes[s].image,
            question=counting_question(obj),
            answer=str(scenes[s].count(obj)),
            split="counting",
            category="counting",
        )
        for i, (s, obj) in enumerate(picked)
    ]


def spatial_questions(scenes: Sequence[Scene], config: SyntheticConfig) -> list[Question]:
    """``n_spatial`` "Is the X left of the Y?" questions, half yes, half no.

    Only objects whose category occurs once in the scene are named ("the X" must be unambiguous).
    Truth comes from grid cells: X is left of Y iff X's column is smaller; pairs in the same column
    are never asked about left/right (and the same rows never about above/below).

    Raises:
      ConfigError: the scenes cannot supply that many distinct questions.
    """
    rng = np.random.default_rng([config.seed, _STREAM_SPATIAL])
    yes_pools, no_pools = [], []
    for scene in scenes:
        yes, no = _spatial_candidates(scene)
        yes_pools.append([yes[int(i)] for i in rng.permutation(len(yes))])
        no_pools.append([no[int(i)] for i in rng.permutation(len(no))])
    half = config.n_spatial // 2
    picked = [(s, item, "yes") for s, item in _round_robin(yes_pools, half, rng, "spatial")]
    picked += [(s, item, "no") for s, item in _round_robin(no_pools, half, rng, "spatial")]
    picked.sort(key=lambda p: p[0])  # stable: grouped by image, as in POPE files
    return [
        Question(
            question_id=i + 1,
            image_name=scenes[s].image,
            question=spatial_question(*triple),
            answer=answer,
            split="spatial",
            category="spatial",
        )
        for i, (s, triple, answer) in enumerate(picked)
    ]


def _spatial_candidates(
    scene: Scene,
) -> tuple[list[tuple[str, str, str]], list[tuple[str, str, str]]]:
    unique = [o for o in scene.objects if scene.count(o.category) == 1]
    unique.sort(key=lambda o: o.cell)
    yes: list[tuple[str, str, str]] = []
    no: list[tuple[str, str, str]] = []
    for a in unique:
        for b in unique:
            if a is b:
                continue
            (ra, ca), (rb, cb) = a.cell, b.cell
            deltas = {"left": cb - ca, "right": ca - cb, "above": rb - ra, "below": ra - rb}
            for relation, delta in deltas.items():
                if delta:  # same column (row): left/right (above/below) would be ambiguous
                    (yes if delta > 0 else no).append((a.category, relation, b.category))
    return yes, no


def _round_robin(
    pools: list[list[T]], n: int, rng: np.random.Generator, what: str
) -> list[tuple[int, T]]:
    """Takes ``n`` items, one per pool per pass (pools visited in a random order)."""
    order = [int(i) for i in rng.permutation(len(pools))]
    picked: list[tuple[int, T]] = []
    depth = 0
    while len(picked) < n:
        before = len(picked)
        for s in order:
            if depth < len(pools[s]) and len(picked) < n:
                picked.append((s, pools[s][depth]))
        if len(picked) == before:
            raise ConfigError(
                f"the {len(pools)} scenes offer only {len(picked)} distinct {what} questions of "
                f"the {n} asked. Ask for fewer, or raise n_per_split or max_objects."
            )
        depth += 1
    return picked
