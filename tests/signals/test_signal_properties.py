"""Property tests: every signal is finite and in range on realistic random inputs."""

import math
import warnings

import torch
from hypothesis import given, settings, strategies as st

from vrp import UndefinedSignalWarning
from vrp.signals import (
    Dbscan,
    MassComponents,
    answer_logprob,
    attention_structure,
    average_heads,
    cluster_count,
    component_attribution,
    image_attention,
    logit_gap,
    logit_lens,
    self_consistency,
    spatial_entropy,
    truth_margin,
    vocab_entropy,
    yes_no_margin,
)

SETTINGS = settings(max_examples=25, deadline=None)
seeds = st.integers(min_value=0, max_value=2**31 - 1)


def _patterns(gen: torch.Generator, n_layer: int, seq: int, sharpness: float) -> list[torch.Tensor]:
    """Causal softmax patterns [1 head seq key] from random scores; sharper means peakier."""
    causal = torch.ones(seq, seq, dtype=torch.bool).tril()
    patterns = []
    for _ in range(n_layer):
        scores = sharpness * torch.randn(1, 3, seq, seq, generator=gen)
        patterns.append(torch.softmax(scores.masked_fill(~causal, float("-inf")), dim=-1))
    return patterns


@SETTINGS
@given(seed=seeds, grid_h=st.integers(2, 8), grid_w=st.integers(2, 8), sharpness=st.floats(0, 30))
def test_stage1_is_finite_and_in_range(
    seed: int, grid_h: int, grid_w: int, sharpness: float
) -> None:
    gen = torch.Generator().manual_seed(seed)
    n_cells, n_layer = grid_h * grid_w, 4
    seq = n_cells + 5
    mask = torch.zeros(1, seq, dtype=torch.bool)
    mask[0, 2 : 2 + n_cells] = True
    head_maps = image_attention(
        _patterns(gen, n_layer, seq, sharpness), mask, torch.tensor([-1]), (grid_h, grid_w)
    )
    defined = Dbscan().defined_on((grid_h, grid_w), warn=False)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        structure = attention_structure(average_heads(head_maps))
    assert [w.category for w in record] == ([] if defined else [UndefinedSignalWarning])
    nats = torch.cat([structure.entropy.nats, structure.layer_entropy.nats.flatten()])
    assert bool(torch.isfinite(nats).all())
    assert bool((nats >= 0).all()) and bool((nats <= math.log(n_cells) + 1e-9).all())
    if defined:
        assert 0 <= int(structure.clusters_dbscan[0]) <= n_cells
    else:
        assert math.isnan(float(structure.clusters_dbscan[0]))
    assert 0 <= int(structure.clusters_components[0]) < n_cells
    assert bool(torch.isfinite(structure.evolution.delta).all())
    assert 1 <= int(structure.evolution.early_locking_layer[0]) < n_layer


@SETTINGS
@given(seed=seeds, power=st.floats(0.5, 12))
def test_entropy_and_clusters_on_peaky_maps(seed: int, power: float) -> None:
    gen = torch.Generator().manual_seed(seed)
    maps = torch.rand(3, 24, 24, generator=gen) ** power + 1e-12
    result = spatial_entropy(maps)
    assert bool(((result.normalised >= 0) & (result.normalised <= 1)).all())
    for method in (Dbscan(), MassComponents(), MassComponents(connectivity=4)):
        counts = cluster_count(maps, method=method)
        assert bool(((counts >= 0) & (counts <= 576)).all())


@SETTINGS
@given(seed=seeds, scale=st.floats(0.01, 50), vocab=st.integers(2, 300))
def test_generation_signals_are_finite(seed: int, scale: float, vocab: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    logits = scale * torch.randn(4, vocab, generator=gen)
    target = torch.randint(vocab, (4,), generator=gen)
    entropy = vocab_entropy(logits)
    assert bool(((entropy >= -1e-5) & (entropy <= math.log(vocab) + 1e-5)).all())
    assert bool((logit_gap(logits) >= 0).all())
    margin = truth_margin(logits, target)
    assert bool(torch.isfinite(margin).all())
    assert ((margin > 0) == (logits.argmax(-1) == target)).all() or bool((margin == 0).any())
    logprob = answer_logprob(logits[:, None], target[:, None])
    assert bool(torch.isfinite(logprob).all()) and bool((logprob <= 0).all())
    assert bool(torch.isfinite(yes_no_margin(logits, [0], [vocab - 1])).all())


@SETTINGS
@given(seed=seeds, scale=st.floats(0.1, 100))
def test_lens_and_attribution_are_finite(seed: int, scale: float) -> None:
    gen = torch.Generator().manual_seed(seed)
    batch, n_layer, d_model, vocab = 2, 5, 16, 40
    resid = scale * torch.randn(batch, n_layer, d_model, generator=gen)
    w_u = torch.randn(d_model, vocab, generator=gen)
    norm = torch.nn.RMSNorm(d_model)
    target = torch.randint(vocab, (batch,), generator=gen)
    lens = logit_lens(resid, w_u, target=target, norm=norm, yes_ids=[0, 1], no_ids=[2])
    assert lens.yes_no is not None
    assert bool(torch.isfinite(lens.margin).all() & torch.isfinite(lens.yes_no).all())
    attn, mlp = resid, scale * torch.randn(batch, n_layer, d_model, generator=gen)
    result = component_attribution(attn, mlp, w_u[:, target].T, gamma=norm.weight.detach())
    assert bool(((result.mlp_share >= 0) & (result.mlp_share <= 1)).all())


@SETTINGS
@given(
    answers=st.lists(
        st.sampled_from(["Yes", "yes.", "No", "no!", "maybe", "Two cats"]), min_size=1, max_size=12
    ),
    seed=seeds,
)
def test_self_consistency_is_in_range_and_order_free(answers: list[str], seed: int) -> None:
    result = self_consistency(answers)
    assert 1 / len(answers) <= result.score <= 1 and result.all_agree == (result.score == 1)
    shuffled = [
        answers[i]
        for i in torch.randperm(len(answers), generator=torch.Generator().manual_seed(seed))
    ]
    assert self_consistency(shuffled).score == result.score
