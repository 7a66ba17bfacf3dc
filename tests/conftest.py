"""Shared fixtures: tiny random VLMs of every family and deterministic images."""

import numpy as np
import pytest
import torch
from PIL import Image

import vrp.models as models

torch.set_num_threads(1)


def random_images(n: int, size: int = 32, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)) for _ in range(n)
    ]


QUESTIONS = (
    "is there a red circle ?",
    "how many blue square are there ?",
    "is the green triangle left of the yellow cross ?",
    "is there a cross in the image ?",
)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def tiny_vlms() -> dict[str, models.VLM]:
    return {family: models.load(f"tiny/{family}") for family in models.families()}


@pytest.fixture(params=models.families())
def vlm(request: pytest.FixtureRequest, tiny_vlms: dict[str, models.VLM]) -> models.VLM:
    return tiny_vlms[request.param]
