"""The run's questions as a lazy sequence: images are read per batch, never all at once."""

from collections.abc import Sequence
from typing import Any, overload

from ..data import Dataset, Sample, SyntheticConfig, generate, read_pope
from ._config import StudyConfig


class Samples(Sequence[Sample]):
    """Rows `indices` of `dataset`; indexing or slicing reads only the samples asked for."""

    def __init__(self, dataset: Dataset, indices: Sequence[int]) -> None:
        self.dataset = dataset
        self.indices = tuple(indices)

    def __len__(self) -> int:
        return len(self.indices)

    @overload
    def __getitem__(self, index: int) -> Sample: ...
    @overload
    def __getitem__(self, index: slice) -> list[Sample]: ...
    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return [self.dataset[i] for i in self.indices[index]]
        return self.dataset[self.indices[index]]

    def where(self, keep: Any) -> "Samples":
        """The rows whose `Question` satisfies `keep` (no image is read)."""
        questions = self.dataset.questions
        return Samples(self.dataset, [i for i in self.indices if keep(questions[i])])

    def batch_items(self, index: int, size: int) -> tuple[int, ...]:
        """The item ids of batch `index` (batches of `size` in order): each row's position in
        the dataset, unique per run even where question ids repeat across splits (synthetic
        splits number their questions from 1 each)."""
        return self.indices[index * size : (index + 1) * size]

    @property
    def questions(self) -> list[Any]:
        return [self.dataset.questions[i] for i in self.indices]


def study_samples(config: StudyConfig) -> Samples:
    """The questions of a run: the synthetic benchmark (`n` per split, all five splits), or the
    first `n` questions of a POPE file (all when `n` is None).

    Raises:
      DataError: the POPE file or an image of it is missing or malformed (checked up front).
    """
    if config.synthetic:
        n = config.n or 100
        dataset: Dataset = generate(
            SyntheticConfig(
                seed=config.seed, n_per_split=_even(n), n_counting=n, n_spatial=_even(n)
            )
        )
        return Samples(dataset, range(len(dataset)))
    dataset = read_pope(config.data, image_dir=config.images)
    count = len(dataset) if config.n is None else min(config.n, len(dataset))
    return Samples(dataset, range(count))


def _even(n: int) -> int:
    """POPE and spatial splits are balanced yes/no: an even count."""
    return n + n % 2


def yes_no_samples_count(samples: Samples) -> int:
    """How many of the run's questions are yes/no questions (the signal stages' share)."""
    return sum(q.answer in ("yes", "no") for q in samples.questions)
