"""Shared fixtures: a small synthetic config, its in-memory dataset and its written folder."""

from pathlib import Path

import pytest

from vrp.data import QuestionDataset, SyntheticConfig, generate, write_benchmark

SMALL = SyntheticConfig(seed=3, n_per_split=48, n_counting=16, n_spatial=16)


@pytest.fixture(scope="session")
def small_config() -> SyntheticConfig:
    return SMALL


@pytest.fixture(scope="session")
def small_dataset() -> QuestionDataset:
    return generate(SMALL)


@pytest.fixture(scope="session")
def small_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_benchmark(SMALL, tmp_path_factory.mktemp("bench") / "small")
