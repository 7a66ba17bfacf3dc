"""Integrated-gradients attribution (AtP-IG, EAP-IG): equal to a plain PyTorch reference loop,
complete (the input embeddings' scores sum to the clean-corrupt gap as the steps grow), and the
edges of a node sum to its node score."""

import pytest
import torch

import vrp
from circuits import attribution_patching, edge_attribution
from tests.conftest import random_images
from vrp import Component, ConfigError, Site

EMBED = Site(layer=0, component=Component.RESID_PRE)
QUESTIONS = ["is there a red circle ?", "is there a blue square ?"]


def _pair(vlm: vrp.VLM):
    return (vlm.encode(random_images(2, seed=1), QUESTIONS),
            vlm.encode(random_images(2, seed=2), QUESTIONS))  # fmt: skip


def _first_layer(vlm: vrp.VLM) -> torch.nn.Module:
    return vlm.hf.model.language_model.layers[0]  # LLaVA's decoder, named as a test may


def _embeddings(vlm: vrp.VLM, inputs) -> torch.Tensor:
    seen = []
    handle = _first_layer(vlm).register_forward_pre_hook(
        lambda m, args, kwargs: seen.append(
            (args[0] if args else kwargs["hidden_states"]).detach()
        ),
        with_kwargs=True,
    )
    with torch.no_grad():
        vlm.hf(**inputs.data)
    handle.remove()
    return seen[0]


def _reference_ig(vlm: vrp.VLM, clean, corrupt, steps: int) -> torch.Tensor:
    """Plain PyTorch: the embeddings replaced by a hook at each midpoint, autograd, averaged."""
    x_clean, x_corrupt = _embeddings(vlm, clean), _embeddings(vlm, corrupt)
    total = torch.zeros_like(x_clean)
    for i in range(steps):
        point = (x_corrupt + (i + 0.5) / steps * (x_clean - x_corrupt)).requires_grad_(True)

        def replace(module, args, kwargs, point=point):
            if args:
                return (point, *args[1:]), kwargs
            return args, {**kwargs, "hidden_states": point}

        handle = _first_layer(vlm).register_forward_pre_hook(replace, with_kwargs=True)
        try:
            logits = vlm.hf(**corrupt.data).logits[:, -1]
            vlm.yes_no_margin(logits).sum().backward()
        finally:
            handle.remove()
        total += point.grad
    real = corrupt.attention_mask.bool()[..., None]
    return torch.where(real, (x_clean - x_corrupt) * total / steps, 0.0).sum(dim=-1)


def test_ig_equals_a_plain_pytorch_loop() -> None:
    vlm = vrp.load("tiny/llava", dtype=torch.float64)
    clean, corrupt = _pair(vlm)
    ig = attribution_patching(vlm, clean, corrupt, [EMBED], vlm.yes_no_margin, ig_steps=3)
    reference = _reference_ig(vlm, clean, corrupt, 3)
    torch.testing.assert_close(ig.score(EMBED).double(), reference, atol=1e-6, rtol=1e-5)
    plain = attribution_patching(vlm, clean, corrupt, [EMBED], vlm.yes_no_margin)
    assert not torch.allclose(plain.score(EMBED).double(), reference, atol=1e-6)


@pytest.fixture(scope="module")
def organism() -> vrp.VLM:
    return vrp.load("organism/llava")


def test_ig_is_complete_where_plain_attribution_is_not(organism: vrp.VLM) -> None:
    clean, corrupt = _pair(organism)
    errors = {}
    for steps in (None, 16):
        a = attribution_patching(organism, clean, corrupt, [EMBED], organism.yes_no_margin,
                                 ig_steps=steps)  # fmt: skip
        gap = a.clean_metric - a.corrupt_metric
        errors[steps] = ((a.score(EMBED).sum(dim=1) - gap).abs() / gap.abs()).max().item()
    assert errors[16] < 0.03  # the midpoint rule's error at 16 steps on the trained organism
    assert errors[None] > 10 * errors[16]


def test_ig_edges_sum_to_the_node_score(organism: vrp.VLM) -> None:
    clean, corrupt = _pair(organism)
    edges = edge_attribution(organism, clean, corrupt, organism.yes_no_margin, ig_steps=4)
    node = attribution_patching(organism, clean, corrupt, [EMBED], organism.yes_no_margin,
                                ig_steps=4)  # fmt: skip
    torch.testing.assert_close(
        torch.nansum(edges.scores[:, 0, :], dim=1), node.score(EMBED).sum(dim=1).float(),
        atol=1e-4, rtol=1e-4,
    )  # fmt: skip


@pytest.mark.parametrize("steps", [0, -2, 1.5, True])
def test_ig_steps_are_checked(steps) -> None:
    vlm = vrp.load("tiny/llava")
    clean, corrupt = _pair(vlm)
    with pytest.raises(ConfigError, match=r"ig_steps must be None \(plain attribution"):
        attribution_patching(vlm, clean, corrupt, [EMBED], vlm.yes_no_margin, ig_steps=steps)
