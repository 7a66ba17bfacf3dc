"""Attention patterns under flash attention's mask contract, emulated on the CPU.

Flash attention kernels need CUDA, but what the pattern recomputation sees under them is plain:
transformers' flash mask function hands each attention block only a 2-D ``batch key`` padding
mask (or none), and causality comes from the block's `is_causal` flag. Here an attention function
registered under its own name receives exactly that (transformers' own `flash_attention_mask`)
and computes with SDPA, so the recomputed patterns meet the flash inputs on every family.
"""

import pytest
import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, flash_attention_mask

import vrp.models as models
from tests.conftest import QUESTIONS, random_images
from vrp.core import Component, GraphError, ImageTokens, LastToken, Site
from vrp.interventions import AttentionKnockout, Capture, graph, run_graph

NAME = "vrp_test_padding_mask"
"""Not containing "flash": transformers would look for a flash kernel."""


def _padding_only(module, query, key, value, attention_mask, **kwargs):  # type: ignore[no-untyped-def]
    """SDPA given what flash attention is given: a 2-D padding mask, causal by the block's flag."""
    assert attention_mask is None or attention_mask.dim() == 2, "not the flash mask contract"
    queries, keys = query.shape[2], key.shape[2]
    causal = kwargs.pop("is_causal", None)
    causal = module.is_causal if causal is None else causal
    full = torch.ones(queries, keys, dtype=torch.bool, device=query.device)
    full = (full.tril(keys - queries) if causal else full)[None, None]
    if attention_mask is not None:
        full = full & attention_mask[:, None, None, -keys:].bool()
    return sdpa_attention_forward(module, query, key, value, full, **kwargs)


AttentionInterface.register(NAME, _padding_only)
AttentionMaskInterface.register(NAME, flash_attention_mask)


@pytest.fixture(scope="module", params=models.families())
def pair(request: pytest.FixtureRequest) -> tuple[models.VLM, models.VLM]:
    """The same tiny model under eager attention and under the flash mask contract."""
    eager = models.load(f"tiny/{request.param}", attn_implementation="eager")
    padded = models.load(f"tiny/{request.param}", attn_implementation="sdpa")
    padded.hf.set_attn_implementation(NAME)
    return eager, padded


def test_the_emulation_is_the_model(pair: tuple[models.VLM, models.VLM]) -> None:
    eager, padded = pair
    inputs = padded.encode(random_images(3), QUESTIONS[:3])
    torch.testing.assert_close(
        padded.answer_logits(inputs), eager.answer_logits(inputs), atol=1e-5, rtol=0
    )


def test_patterns_from_a_padding_mask_equal_eager(pair: tuple[models.VLM, models.VLM]) -> None:
    eager, padded = pair
    inputs = padded.encode(random_images(3), QUESTIONS[:3])  # rows of different lengths: padding
    sites = [
        Site(layer=i, component=Component.ATTN_PATTERN) for i in range(padded.adapter.n_layers)
    ]
    nodes = graph(*(Capture(site=s, name=str(i)) for i, s in enumerate(sites)))
    got, expected = run_graph(padded, nodes, inputs), run_graph(eager, nodes, inputs)
    real = inputs.attention_mask.bool()[:, None, :, None]  # padding queries attend nowhere
    for i in range(len(sites)):
        torch.testing.assert_close(got[str(i)] * real, expected[str(i)] * real, atol=1e-5, rtol=0)


def test_knockouts_under_flash_attention_are_refused(tiny_vlms: dict[str, models.VLM]) -> None:
    vlm = tiny_vlms["llava"]
    node = AttentionKnockout(layer=0, queries=LastToken(), keys=ImageTokens())
    config = vlm.hf.config
    previous = config._attn_implementation
    config._attn_implementation = "flash_attention_2"  # what a CUDA load sets; never run here
    try:
        with pytest.raises(GraphError, match=r"knockouts edit the attention mask.*'sdpa'"):
            graph(node).validate(vlm)
    finally:
        config._attn_implementation = previous
