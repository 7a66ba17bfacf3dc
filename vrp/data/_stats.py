"""Descriptive statistics of a benchmark: sizes, balance, categories, and negative-sampling checks.

The co-occurrence check is what tells POPE's splits apart: for each "no" question it measures how
often the absent object appears alongside the image's present objects elsewhere in the split
(mean over present objects ``p`` of P(object | p)), and how frequent the absent object is overall.
Adversarial negatives should score highest on the first, popular negatives on the second.

Array axes: ``category`` indexes the object categories given to the function.
"""

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from jaxtyping import Int

from ..core import DataError
from ._dataset import Dataset, Question
from ._scene import Scene

_NON_OBJECT_SPLITS = ("counting", "spatial")  # splits whose category is not an object name


def cooccurrence_counts(
    present: Sequence[Iterable[str]], categories: Sequence[str]
) -> Int[np.ndarray, "category category"]:
    """Counts images holding both categories; the diagonal counts images holding each one.

    Args:
      present: per image, the categories present in it.
      categories: the categories indexing the result's rows and columns.

    Returns:
      Symmetric counts ``C[a, b]`` = number of images containing both ``a`` and ``b``.

    Raises:
      DataError: an image holds a category missing from `categories`.
    """
    index = {c: i for i, c in enumerate(categories)}
    indicator = np.zeros((len(present), len(categories)), dtype=np.int64)
    for row, cats in enumerate(present):
        for cat in cats:
            if cat not in index:
                given = ", ".join(list(index)[:5]) + (", ..." if len(index) > 5 else "")
                raise DataError(
                    f"image {row} holds category {cat!r}, which is not among the {len(index)} "
                    f"categories given ({given}). Pass every category."
                )
            indicator[row, index[cat]] = 1
    return indicator.T @ indicator


@dataclass(frozen=True, kw_only=True)
class SplitStats:
    """Statistics of one split."""

    split: str
    n: int  # questions
    n_images: int  # distinct images asked about
    answers: Mapping[str, int]  # answer -> number of questions, sorted by answer
    categories: Mapping[str, int]  # question category -> number of questions, sorted by name
    negative_cooccurrence: float | None  # mean P(absent object | present object); None if no "no"
    negative_frequency: float | None  # mean share of the split's images holding the absent object


@dataclass(frozen=True, kw_only=True)
class BenchmarkStats:
    """Statistics of a whole benchmark, split by split."""

    splits: tuple[SplitStats, ...]
    n_images: int
    has_scenes: bool  # presence from scene graphs (True) or from "yes" questions only (False)
    objects_per_image: float | None  # mean objects per scene; None without scene graphs
    small_share: float | None  # share of objects drawn small (hard case); None without scenes
    occluded_share: float | None  # share of objects partly covered by another; None without scenes


def benchmark_stats(dataset: Dataset) -> BenchmarkStats:
    """Sizes, answer balance, categories and negative-sampling statistics of every split.

    Without scene graphs (real POPE files), an image's present objects are those of its "yes"
    questions; POPE asks about 3 of them, so co-occurrence is then an estimate.

    Args:
      dataset: any benchmark; only its questions and scene graphs are read, never its images.

    Returns:
      One `SplitStats` per split, in order of first appearance.

    Raises:
      DataError: `dataset` is not a `Dataset` (e.g. a list of questions) or holds no questions.
    """
    if not isinstance(dataset, Dataset):
        raise DataError(
            f"expected a vrp.data.Dataset (questions, scenes, samples); got "
            f"{type(dataset).__name__}. Read one with read_pope / read_benchmark or make one "
            "with generate."
        )
    questions = dataset.questions
    if not questions:
        raise DataError("the dataset holds no questions; statistics need at least one.")
    present = _presence(questions, dataset.scenes)
    splits = tuple(dict.fromkeys(q.split for q in questions))
    per_split = tuple(
        _split_stats(split, [q for q in questions if q.split == split], present) for split in splits
    )
    scenes = dataset.scenes
    objects = [o for s in scenes.values() for o in s.objects]
    return BenchmarkStats(
        splits=per_split,
        n_images=len({q.image_name for q in questions}),
        has_scenes=bool(scenes),
        objects_per_image=len(objects) / len(scenes) if scenes else None,
        small_share=float(np.mean([o.small for o in objects])) if objects else None,
        occluded_share=float(np.mean([o.occluded for o in objects])) if objects else None,
    )


def _presence(
    questions: Sequence[Question], scenes: Mapping[str, Scene]
) -> dict[str, frozenset[str]]:
    if scenes:
        return {name: scene.categories for name, scene in scenes.items()}
    found: dict[str, set[str]] = {}
    for q in questions:
        found.setdefault(q.image_name, set())
        if q.answer == "yes" and q.split not in _NON_OBJECT_SPLITS:
            found[q.image_name].add(q.category)
    return {name: frozenset(cats) for name, cats in found.items()}


def _split_stats(
    split: str, questions: list[Question], present: Mapping[str, frozenset[str]]
) -> SplitStats:
    images = sorted({q.image_name for q in questions})
    cooc = freq = None
    negatives = [q for q in questions if q.answer == "no"]
    if split not in _NON_OBJECT_SPLITS and negatives:
        sets = [present.get(name, frozenset()) for name in images]
        categories = sorted(set().union(*sets) | {q.category for q in questions})
        counts = cooccurrence_counts(sets, categories)
        cooc, freq = _negative_scores(negatives, present, categories, counts, len(images))
    return SplitStats(
        split=split,
        n=len(questions),
        n_images=len(images),
        answers=dict(sorted(Counter(q.answer for q in questions).items(), key=_answer_key)),
        categories=dict(sorted(Counter(q.category for q in questions).items())),
        negative_cooccurrence=cooc,
        negative_frequency=freq,
    )


def _negative_scores(
    negatives: list[Question],
    present: Mapping[str, frozenset[str]],
    categories: list[str],
    counts: np.ndarray,
    n_images: int,
) -> tuple[float, float]:
    index = {c: i for i, c in enumerate(categories)}
    occurrences = np.diag(counts).astype(np.float64)
    cooc, freq = [], []
    for q in negatives:
        obj = index[q.category]
        rows = [index[p] for p in sorted(present.get(q.image_name, frozenset()))]
        if rows:
            cooc.append(float(np.mean(counts[rows, obj] / np.maximum(occurrences[rows], 1.0))))
        freq.append(occurrences[obj] / n_images)
    return (float(np.mean(cooc)) if cooc else 0.0), float(np.mean(freq))


def _answer_key(item: tuple[str, int]) -> tuple[int, int, str]:
    answer = item[0]
    return (0, int(answer), "") if answer.isdigit() else (1, 0, answer)
