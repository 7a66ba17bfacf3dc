"""Fixtures shared by the signal tests."""

from collections.abc import Iterator

import jaxtyping
import pytest
import torch


@pytest.fixture(autouse=True)
def _seed() -> Iterator[None]:
    """Seeds torch so that every random tensor in a test is reproducible."""
    torch.manual_seed(0)
    yield


@pytest.fixture
def without_runtime_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Switches the jaxtyping + beartype hook off, to reach the checks that run without it.

    Under pytest the hook rejects mismatched shapes and wrong types before our own checks run; in
    production there is no hook, and those checks are what the user sees.
    """
    monkeypatch.setattr(jaxtyping.config, "jaxtyping_disable", True)
