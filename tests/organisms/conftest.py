"""Fixtures of the organism tests: tiny trainable VLMs over the organisms' vocabulary, a tiny recipe."""

import dataclasses

import pytest

from vrp.models import VLM, ModelSpec, build_vlm, families
from vrp.organisms import ORGANISM_WORDS, BatchMix, Recipe, recipe

TINY_SPEC = ModelSpec(image_size=64, patch_size=16)
"""Tiny widths, but the organisms' 64 px images and 16 image tokens."""


@pytest.fixture(scope="session")
def word_vlms() -> dict[str, VLM]:
    """Tiny random VLMs of every family whose tokenizer covers the organisms' words."""
    return {f: build_vlm(f, TINY_SPEC, words=ORGANISM_WORDS, seed=0) for f in families()}


def tiny_recipe(family: str = "llava", steps: int = 20) -> Recipe:
    """The shipped recipe at tiny sizes: small batches, short shards, frequent checkpoints."""
    return dataclasses.replace(
        recipe(family).with_steps(steps),
        spec=TINY_SPEC,
        warmup=5,
        mix=BatchMix(caption=4, pope=8, counting=4, spatial=4),
        alignment_mix=BatchMix(caption=6, pope=6, counting=2, spatial=2),
        steps_per_shard=5,
        checkpoint_every=10,
    )


@pytest.fixture(params=families())
def vlm_words(request: pytest.FixtureRequest, word_vlms: dict[str, VLM]) -> VLM:
    return word_vlms[request.param]
