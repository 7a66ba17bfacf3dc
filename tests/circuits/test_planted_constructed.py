"""Localisation on models whose structure is set by hand: a distributed encoding and a late
bottleneck, built from the same construction, must get different verdicts, with intervals, and
the heads that carry the information must be recovered.

The construction (a 4-layer LLaVA from `build_vlm`, its decoder weights overwritten): the
projector writes a constant image flag and an image-dependent signal into two residual
dimensions of the image tokens; text tokens carry a constant bias dimension. In every layer,
head 0's query (from the bias) matches the keys of image tokens (from the flag) in the slowest
rotary pair, so every text token attends uniformly to the image; its value reads the signal and
its output writes `weights[layer]` times it into an answer dimension, which the unembedding maps
to +yes / -no. Every other weight keeps 0.3 of its random value, so the rest of the network adds
noise to every profile. Hence:

- weights (w, w, w, w): each layer's head 0 moves the answer by the same amount: patching the
  attention output of any one layer at the answer position restores a quarter of the
  clean-corrupt gap ("distributed");
- weights (0, 0, 0, w): only the last layer can move it ("late bottleneck").
"""

import numpy as np
import pytest
import torch

from circuits import attribution_patching, corrupt_pairs, localise, patch_sweep
from vrp import Component, LastToken, Site, Tower
from vrp.models import ModelSpec, build_vlm
from vrp.organisms import evaluation_set

BIAS, FLAG, SIGNAL, ANSWER = 0, 1, 2, 3  # residual dimensions
NOISE = 0.3  # the share of their random values the other weights keep


def constructed(weights: tuple[float, ...]):
    """The model of the module docstring, head 0 of layer l writing `weights[l]`."""
    vlm = build_vlm("llava", ModelSpec(text_layers=len(weights)), seed=0)
    hf, lm = vlm.hf, vlm.hf.model.language_model  # LLaVA's module paths, named as a test may
    direction = torch.randn(hf.model.multi_modal_projector.linear_2.weight.shape[1],
                            generator=torch.Generator().manual_seed(0))  # fmt: skip
    with torch.no_grad():
        lm.embed_tokens.weight.zero_()
        lm.embed_tokens.weight[:, BIAS] = 1.0
        projector = hf.model.multi_modal_projector.linear_2
        projector.weight.zero_()
        projector.bias.zero_()
        projector.bias[FLAG] = 4.0
        projector.weight[SIGNAL] = 2.0 * direction / direction.norm()
        for layer, weight in zip(lm.layers, weights, strict=True):
            attention = layer.self_attn
            for linear in (attention.q_proj, attention.k_proj, attention.v_proj,
                           attention.o_proj, layer.mlp.down_proj):  # fmt: skip
                linear.weight.mul_(NOISE)
            attention.q_proj.weight[3] = 0.0
            attention.q_proj.weight[3, BIAS] = 1.0  # head 0, width 3: the slowest rotary pair
            attention.k_proj.weight[3] = 0.0
            attention.k_proj.weight[3, FLAG] = 1.0  # key-value head 0 (shared by heads 0 and 1)
            attention.v_proj.weight[0] = 0.0
            attention.v_proj.weight[0, SIGNAL] = 1.0
            attention.o_proj.weight[ANSWER] = 0.0
            attention.o_proj.weight[ANSWER, 0] = weight
        head = hf.lm_head.weight
        head.zero_()
        head[list(vlm.answer_tokens.yes), ANSWER] = 10.0
        head[list(vlm.answer_tokens.no), ANSWER] = -10.0
    return vlm


@pytest.fixture(scope="module")
def pairs():
    data = evaluation_set(n_per_split=20, n_counting=0, n_spatial=0, seed=5)
    return corrupt_pairs([data[i] for i in range(len(data))], kind="noise", seed=0,
                         noise_std=128.0)  # fmt: skip


def _encode(vlm, pairs):
    clean = vlm.encode([p.clean.image for p in pairs], [p.clean.question for p in pairs])
    corrupt = vlm.encode([p.corrupt.image for p in pairs], [p.corrupt.question for p in pairs])
    return clean, corrupt


def _profile(result) -> np.ndarray:
    """Per pair with a real gap: restored margin oriented to the clean answer, in units of the
    mean gap."""
    gap = result.clean_per_row - result.corrupt_per_row
    keep = gap.abs() >= 0.2 * gap.abs().mean()
    shift = torch.sign(gap)[None, :] * (result.per_row - result.corrupt_per_row[None, :])
    return (shift[:, keep].T / gap.abs()[keep].mean()).numpy()


LAYERS = 4
SITES = [Site(layer=layer, component=Component.ATTN_OUT, positions=LastToken())
         for layer in range(LAYERS)]  # fmt: skip


def test_distributed_and_late_verdicts_differ(pairs) -> None:
    verdicts = {}
    for name, weights in (("distributed", (0.1,) * LAYERS), ("late", (0.0, 0.0, 0.0, 0.4))):
        vlm = constructed(weights)
        clean, corrupt = _encode(vlm, pairs)
        profile = _profile(patch_sweep(vlm, clean, corrupt, SITES, vlm.yes_no_margin))
        assert len(profile) >= 20
        verdicts[name] = localise(profile, seed=0)
        if name == "distributed":
            np.testing.assert_allclose(profile.mean(axis=0), 0.25, atol=0.02)
    distributed, late = verdicts["distributed"], verdicts["late"]
    assert distributed.verdict == "distributed" and distributed.concentration_ci[1] <= 0.2
    assert late.verdict == "late bottleneck"
    assert late.concentration_ci[0] >= 0.5 and late.late_share_ci[0] > 0.5


def test_the_carrying_heads_are_recovered(pairs) -> None:
    vlm = constructed((0.1,) * LAYERS)
    clean, corrupt = _encode(vlm, pairs)
    n_heads = vlm.adapter.shape(Tower.LANGUAGE).n_heads
    planted = {(layer, 0) for layer in range(LAYERS)}
    cells = [Site(layer=layer, component=Component.HEAD_OUT, heads=(h,), positions=LastToken())
             for layer in range(LAYERS) for h in range(n_heads)]  # fmt: skip
    scores = np.abs(_profile(patch_sweep(vlm, clean, corrupt, cells, vlm.yes_no_margin)).mean(0))
    top = {(cells[i].layer, cells[i].heads[0]) for i in np.argsort(-scores)[: len(planted)]}
    assert top == planted  # exact patching: 100% recovered (the bar is 80%)
    whole = [Site(layer=layer, component=Component.HEAD_OUT) for layer in range(LAYERS)]
    atp = attribution_patching(vlm, clean, corrupt, whole, vlm.yes_no_margin)
    gap = atp.clean_metric - atp.corrupt_metric
    per_head = torch.stack([(torch.sign(gap)[:, None] * atp.score(s)[:, -1]).mean(dim=0)
                            for s in whole])  # fmt: skip
    order = torch.argsort(per_head.abs().flatten(), descending=True)[: len(planted)]
    assert {divmod(int(i), n_heads) for i in order} == planted  # and from one backward pass
