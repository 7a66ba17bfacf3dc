"""The one dataset protocol every benchmark satisfies, and its implementation.

A dataset is a sequence of questions about images. `Question` holds the text and labels only (cheap:
metrics and statistics read these); `Sample` adds the image and, for synthetic data, the scene graph.
`QuestionDataset` serves both file-backed POPE data (images opened one at a time, when a sample is
read) and in-memory synthetic data (images drawn from the scene when a sample is read).
"""

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
from PIL import Image

from ..core import ConfigError
from ._scene import Scene

POPE_SPLITS: tuple[str, ...] = ("random", "popular", "adversarial")
SPLITS: tuple[str, ...] = (*POPE_SPLITS, "counting", "spatial")


@dataclass(frozen=True, kw_only=True)
class Question:
    """One question with its ground truth, without pixels."""

    question_id: int  # unique within its split (POPE numbers from 1)
    image_name: str  # file name of the image, relative to the image folder
    question: str
    answer: str  # "yes" / "no", or the count as a decimal string for the counting split
    split: str  # "random", "popular", "adversarial", "counting", "spatial" (or a file's own name)
    category: str  # the object asked about for POPE splits; "counting" or "spatial" otherwise

    @property
    def label(self) -> int:
        """The answer as an integer: 1 for "yes", 0 for "no", the count for counting questions."""
        if self.answer == "yes":
            return 1
        return 0 if self.answer == "no" else int(self.answer)


@dataclass(frozen=True, kw_only=True)
class Sample(Question):
    """A question with its image and, for synthetic data, its scene graph."""

    image: Image.Image = field(repr=False, compare=False)  # RGB
    scene: Scene | None = None  # None for real POPE files (no scene graph)


@runtime_checkable
class Dataset(Protocol):
    """What every benchmark offers downstream code."""

    @property
    def questions(self) -> tuple[Question, ...]:
        """All questions, without loading any image."""
        ...

    @property
    def scenes(self) -> Mapping[str, Scene]:
        """Scene graph per image name; empty when there are none (real POPE files)."""
        ...

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Sample: ...

    def __iter__(self) -> Iterator[Sample]: ...

    def batches(
        self, batch_size: int, *, shuffle_seed: int | None = None, drop_last: bool = False
    ) -> Iterator[list[Sample]]:
        """Samples in lists of `batch_size` (the last one shorter unless `drop_last`)."""
        ...


ImageLoader = Callable[[str], Image.Image]
"""Maps an image name to its RGB image."""


class QuestionDataset:
    """Questions plus a way to get each image: the `Dataset` implementation of this package.

    Args:
      questions: the questions, in order.
      load_image: returns the RGB image for an image name; called once per sample read.
      scenes: scene graph per image name (synthetic data), or None.
    """

    def __init__(
        self,
        questions: Sequence[Question],
        load_image: ImageLoader,
        scenes: Mapping[str, Scene] | None = None,
    ) -> None:
        self._questions = tuple(questions)
        self._load_image = load_image
        self._scenes: Mapping[str, Scene] = dict(scenes) if scenes is not None else {}

    @property
    def questions(self) -> tuple[Question, ...]:
        """All questions, without loading any image."""
        return self._questions

    @property
    def scenes(self) -> Mapping[str, Scene]:
        """Scene graph per image name; empty for real POPE files."""
        return self._scenes

    @property
    def splits(self) -> tuple[str, ...]:
        """Split names in order of first appearance."""
        return tuple(dict.fromkeys(q.split for q in self._questions))

    def __len__(self) -> int:
        return len(self._questions)

    def __getitem__(self, index: int) -> Sample:
        q = self._questions[index]
        return Sample(
            **{name: getattr(q, name) for name in Question.__dataclass_fields__},
            image=self._load_image(q.image_name),
            scene=self._scenes.get(q.image_name),
        )

    def __iter__(self) -> Iterator[Sample]:
        for i in range(len(self._questions)):
            yield self[i]

    def __repr__(self) -> str:
        return f"QuestionDataset(n={len(self)}, splits={list(self.splits)})"

    def batches(
        self, batch_size: int, *, shuffle_seed: int | None = None, drop_last: bool = False
    ) -> Iterator[list[Sample]]:
        """Yields lists of `batch_size` samples, images loaded one batch at a time.

        Args:
          batch_size: samples per batch, >= 1.
          shuffle_seed: if given, a fixed random order from this seed; else dataset order.
          drop_last: skip a final batch shorter than `batch_size`.

        Raises:
          ConfigError: `batch_size` < 1.
        """
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1; got {batch_size}.")
        order = np.arange(len(self))
        if shuffle_seed is not None:
            order = np.random.default_rng(shuffle_seed).permutation(len(self))
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            if drop_last and len(chunk) < batch_size:
                return
            yield [self[int(i)] for i in chunk]

    def subset(self, *, split: str | None = None, category: str | None = None) -> "QuestionDataset":
        """The questions of one split and/or one category, sharing this dataset's images.

        Args:
          split: keep only this split (all if None).
          category: keep only this question category (all if None).

        Returns:
          A new dataset over the kept questions, in their original order.

        Raises:
          ConfigError: nothing matches (the message lists what exists).
        """
        kept = [
            q
            for q in self._questions
            if (split is None or q.split == split) and (category is None or q.category == category)
        ]
        if not kept:
            raise ConfigError(
                f"no question has split={split!r} and category={category!r}. Splits here: "
                f"{list(self.splits)}; categories: {sorted({q.category for q in self._questions})}."
            )
        return QuestionDataset(kept, self._load_image, self._scenes)
