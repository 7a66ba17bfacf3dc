"""Every dataset kind passes the same protocol checks."""

from pathlib import Path

import pytest

from vrp.core import ConfigError
from vrp.data import Dataset, QuestionDataset, Sample, read_benchmark, read_pope


@pytest.fixture(params=["in_memory", "benchmark_folder", "pope_file"])
def dataset(
    request: pytest.FixtureRequest, small_dataset: QuestionDataset, small_folder: Path
) -> Dataset:
    if request.param == "in_memory":
        return small_dataset
    if request.param == "benchmark_folder":
        return read_benchmark(small_folder)
    return read_pope(small_folder / "pope_popular.jsonl", image_dir=small_folder / "images")


def test_protocol(dataset: Dataset) -> None:
    assert isinstance(dataset, Dataset)
    samples = list(dataset)
    assert len(samples) == len(dataset) == len(dataset.questions)
    first = samples[0]
    assert isinstance(first, Sample) and first.image.mode == "RGB"
    assert first.question == dataset.questions[0].question and dataset[0].answer == first.answer
    assert first.split in ("random", "popular", "adversarial", "counting", "spatial")


def test_batches(dataset: Dataset) -> None:
    n = len(dataset)
    sizes = [len(b) for b in dataset.batches(5)]
    assert sum(sizes) == n and all(s == 5 for s in sizes[:-1])
    assert all(len(b) == 5 for b in dataset.batches(5, drop_last=True))
    shuffled = [s.question_id for b in dataset.batches(7, shuffle_seed=1) for s in b]
    again = [s.question_id for b in dataset.batches(7, shuffle_seed=1) for s in b]
    assert shuffled == again and len(shuffled) == n


def test_bad_batch_size(small_dataset: QuestionDataset) -> None:
    with pytest.raises(ConfigError, match=r"batch_size must be an integer >= 1; got 0"):
        next(small_dataset.batches(0))


def test_subset(small_dataset: QuestionDataset) -> None:
    spatial = small_dataset.subset(split="spatial")
    assert spatial.splits == ("spatial",) and len(spatial) == 16
    assert spatial[0].scene is not None
    with pytest.raises(ConfigError, match=r"no question has split='nope'.*Splits here"):
        small_dataset.subset(split="nope")
