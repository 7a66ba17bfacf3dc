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

from ..core import ConfigError, DataError, to_rgb
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
"""Maps an image name to its image (any PIL mode: the dataset converts it with `vrp.to_rgb`)."""


class QuestionDataset:
    """Questions plus a way to get each image: the `Dataset` implementation of this package.

    Every image is passed through `vrp.to_rgb` when a sample is read, whatever the loader, so
    all datasets give the RGB pixels `VLM.encode` would see (transparency composited onto white).

    Args:
      questions: the questions, in order.
      load_image: returns the image for an image name; called once per sample read.
      scenes: scene graph per image name (synthetic data), or None.

    Raises:
      ConfigError: `load_image` is not callable.
    """

    def __init__(
        self,
        questions: Sequence[Question],
        load_image: ImageLoader,
        scenes: Mapping[str, Scene] | None = None,
    ) -> None:
        if not callable(load_image):
            raise ConfigError(
                f"load_image must map an image name to a PIL image; got {type(load_image).__name__}"
                ". Pass a function, e.g. lambda name: PIL.Image.open(folder / name)."
            )
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
        """The sample at `index` (negative counts from the end), its image loaded now.

        Raises:
          ConfigError: `index` is not an integer (slice with `subset` or `batches` instead).
          IndexError: `index` is out of range (Python's sequence protocol).
          DataError: the image cannot be loaded (missing, corrupt or empty file; not an image).
        """
        if not isinstance(index, int | np.integer) or isinstance(index, bool):
            raise ConfigError(
                f"dataset index must be an integer; got {type(index).__name__} {index!r:.40}. "
                "Select questions with subset(split=..., category=...) or iterate batches()."
            )
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for a dataset of {len(self)} samples.")
        q = self._questions[index]
        return Sample(
            **{name: getattr(q, name) for name in Question.__dataclass_fields__},
            image=self._image(q),
            scene=self._scenes.get(q.image_name),
        )

    def _image(self, question: Question) -> Image.Image:
        try:
            return to_rgb(self._load_image(question.image_name))
        except DataError as error:
            raise DataError(
                f"question {question.question_id} ({question.split}), image "
                f"{question.image_name!r}: {error}"
            ) from None

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
          ConfigError: `batch_size` is not an integer >= 1, or `shuffle_seed` is negative.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(
                f"batch_size must be an integer >= 1; got {batch_size!r}. Pass e.g. batch_size=16."
            )
        if shuffle_seed is not None and shuffle_seed < 0:
            raise ConfigError(
                f"shuffle_seed must be >= 0 (or None for dataset order); got {shuffle_seed}."
            )
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
