"""Attention patterns and knockouts without eager attention: recomputed from the attention block's
inputs at the requested layers, they equal what eager attention returns, and the model keeps SDPA."""

import pytest
import torch

import vrp.models as models
from tests.conftest import QUESTIONS, random_images
from tests.models.test_conformance import _hook_reference
from vrp.core import Component, ImageTokens, LastToken, Site, Tower
from vrp.interventions import AttentionKnockout, Capture, graph, run_graph

ATOL = 1e-5


@pytest.fixture(scope="module", params=models.families())
def pair(request: pytest.FixtureRequest) -> tuple[models.VLM, models.VLM]:
    """The same tiny model (same seed, same weights) under eager and under SDPA attention."""
    name = f"tiny/{request.param}"
    return models.load(name, attn_implementation="eager"), models.load(
        name, attn_implementation="sdpa"
    )


def _pattern_sites(vlm: models.VLM) -> list[Site]:
    return [s for tower in Tower for s in vlm.sites(tower) if s.component is Component.ATTN_PATTERN]


def test_patterns_under_sdpa_equal_eager_weights(pair: tuple[models.VLM, models.VLM]) -> None:
    eager, sdpa = pair
    inputs = sdpa.encode(random_images(3), QUESTIONS[:3])  # rows of different lengths: padding
    sites = _pattern_sites(sdpa)
    nodes = tuple(Capture(site=s, name=str(i)) for i, s in enumerate(sites))
    result = run_graph(sdpa, graph(*nodes), inputs)
    assert sdpa.hf.config._attn_implementation == "sdpa"  # the rest of the model kept SDPA
    references = _hook_reference(eager, sites, inputs)  # eager attention's own weights, hooked
    for i, (site, reference) in enumerate(zip(sites, references, strict=True)):
        got = result[str(i)]
        if site.tower is Tower.LANGUAGE:  # padding queries attend nowhere: compare real rows
            real = inputs.attention_mask.bool()[:, None, :, None]
            got, reference = got * real, reference * real
        torch.testing.assert_close(got, reference, atol=ATOL, rtol=0, msg=str(site))


def test_knockout_under_sdpa_equals_eager(pair: tuple[models.VLM, models.VLM]) -> None:
    eager, sdpa = pair
    inputs = sdpa.encode(random_images(2), QUESTIONS[:2])
    node = AttentionKnockout(layer=1, queries=LastToken(), keys=ImageTokens(), heads=(0, 2))
    expected = run_graph(eager, graph(node), inputs).answer_logits["main"]
    got = run_graph(sdpa, graph(node), inputs).answer_logits["main"]
    torch.testing.assert_close(got, expected, atol=ATOL, rtol=0)
    assert (got - sdpa.answer_logits(inputs)).abs().max() > 1e-4  # the knockout did something


def test_knockout_under_sdpa_without_padding(pair: tuple[models.VLM, models.VLM]) -> None:
    """A batch without padding gets no mask under SDPA (causal by flag): one is built for it."""
    eager, sdpa = pair
    inputs = sdpa.encode(random_images(1), QUESTIONS[:1])
    node = AttentionKnockout(layer=0, queries=LastToken(), keys=ImageTokens())
    expected = run_graph(eager, graph(node), inputs).answer_logits["main"]
    got = run_graph(sdpa, graph(node), inputs).answer_logits["main"]
    torch.testing.assert_close(got, expected, atol=ATOL, rtol=0)
