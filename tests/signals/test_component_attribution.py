"""Component attribution with planted attention and MLP outputs, and the norm linearisation."""

import math

import pytest
import torch

import vrp.signals._components
from vrp.core import ShapeError
from vrp.signals import SignalError, component_attribution, unembed_direction


def test_planted_outputs_give_the_known_share() -> None:
    direction = torch.tensor([[1.0, 0.0]])
    attn = torch.tensor([[[1.0, 7.0], [-1.0, 2.0]]])  # contributions 1, -1: sum |.| = 2
    mlp = torch.tensor([[[3.0, -4.0], [0.0, 5.0]]])  # contributions 3, 0: sum |.| = 3
    result = component_attribution(attn, mlp, direction, layers=[4, 5])
    torch.testing.assert_close(result.attn, torch.tensor([[1.0, -1.0]]))
    torch.testing.assert_close(result.mlp, torch.tensor([[3.0, 0.0]]))
    torch.testing.assert_close(result.mlp_share, torch.tensor([0.6]))
    assert result.layers == (4, 5)


def test_zero_contributions_give_an_undefined_share() -> None:
    zeros = torch.zeros(1, 2, 3)
    result = component_attribution(zeros, zeros, torch.ones(1, 3))
    assert math.isnan(float(result.mlp_share[0]))


def test_unembed_direction_for_a_token_and_a_contrast() -> None:
    w_u = torch.arange(12.0).view(3, 4)  # d_model 3, vocab 4
    torch.testing.assert_close(unembed_direction(w_u, torch.tensor([1])), w_u[:, 1][None])
    contrast = unembed_direction(w_u, torch.tensor([3, 0]), torch.tensor([0, 2]))
    torch.testing.assert_close(
        contrast, torch.stack([w_u[:, 3] - w_u[:, 0], w_u[:, 0] - w_u[:, 2]])
    )


@pytest.mark.parametrize("center", [False, True], ids=["rmsnorm", "layernorm"])
def test_linearised_norm_adds_up_to_the_logit(center: bool) -> None:
    batch, n_layer, d_model, vocab = 3, 4, 8, 10
    embed = torch.randn(batch, d_model, dtype=torch.float64)
    attn = torch.randn(batch, n_layer, d_model, dtype=torch.float64)
    mlp = torch.randn(batch, n_layer, d_model, dtype=torch.float64)
    gamma = torch.rand(d_model, dtype=torch.float64) + 0.5
    w_u = torch.randn(d_model, vocab, dtype=torch.float64)
    final = embed + attn.sum(dim=1) + mlp.sum(dim=1)
    if center:
        centred = final - final.mean(-1, keepdim=True)
        scale = torch.sqrt(centred.pow(2).mean(-1) + 1e-5)
        normed = torch.nn.functional.layer_norm(final, (d_model,), gamma, eps=1e-5)
    else:
        scale = torch.sqrt(final.pow(2).mean(-1) + 1e-6)
        normed = final / scale[:, None] * gamma
    target, foil = torch.tensor([1, 5, 9]), torch.tensor([0, 0, 3])
    direction = unembed_direction(w_u, target, foil)
    logits, rows = normed @ w_u, torch.arange(batch)
    logit_diff = logits[rows, target] - logits[rows, foil]
    result = component_attribution(attn, mlp, direction, gamma=gamma, scale=scale, center=center)
    embed_part = component_attribution(
        embed[:, None], embed[:, None] * 0, direction, gamma=gamma, scale=scale, center=center
    ).attn[:, 0]
    total = result.attn.sum(1) + result.mlp.sum(1) + embed_part
    torch.testing.assert_close(total, logit_diff)


def test_scale_must_be_positive() -> None:
    with pytest.raises(SignalError, match="positive divisor per row, but its minimum is 0"):
        component_attribution(
            torch.rand(2, 1, 3),
            torch.rand(2, 1, 3),
            torch.rand(2, 3),
            scale=torch.tensor([1.0, 0.0]),
        )


@pytest.mark.usefixtures("without_runtime_checks")  # the hook would refuse these first
def test_inputs_must_match_the_attention_stack() -> None:
    attn, direction = torch.randn(4, 3, 6), torch.randn(4, 6)
    with pytest.raises(
        ShapeError,
        match=r"mlp_out must have shape \(4, 3, 6\) \(\[batch layer "
        r"d_model\] like attn_out: the same layers\), but it has shape \(4, 2, 6\)",
    ):
        component_attribution(attn, torch.randn(4, 2, 6), direction)  # 3 vs 2 layers
    with pytest.raises(ShapeError, match=r"direction must have shape \(4, 6\).*\(1, 6\)"):
        component_attribution(attn, attn, torch.randn(1, 6))  # one direction for every row
    with pytest.raises(ShapeError, match=r"gamma must have shape \(6,\).*\(1,\)"):
        component_attribution(attn, attn, direction, gamma=torch.ones(1))
    with pytest.raises(ShapeError, match=r"scale must have shape \(4,\).*\(1,\)"):
        component_attribution(attn, attn, direction, scale=torch.ones(1))
    with pytest.raises(ShapeError, match=r"attn_out must be \[batch layer d_model\].*\(4, 6\)"):
        component_attribution(attn[:, 0], attn[:, 0], direction)
    w_u = torch.randn(6, 10)
    with pytest.raises(ShapeError, match=r"foil must have shape \(3,\).*has shape \(1,\)"):
        unembed_direction(w_u, torch.tensor([1, 2, 3]), torch.tensor([4]))
    with pytest.raises(ShapeError, match=r"target must be \[batch\].*\(3, 1\)"):
        unembed_direction(w_u, torch.tensor([[1], [2], [3]]))


def test_a_per_dimension_gain_can_change_ranking_and_share_a_scalar_cannot() -> None:
    attn = torch.tensor([[[1.0, 0.0], [0.5, 0.0]]], dtype=torch.float64)  # writes dimension 0
    mlp = torch.tensor([[[0.0, 1.1], [0.0, 0.6]]], dtype=torch.float64)  # writes dimension 1
    direction = torch.ones(1, 2, dtype=torch.float64)
    plain = component_attribution(attn, mlp, direction)
    scalar = component_attribution(attn, mlp, direction, gamma=torch.full((2,), 3.0))
    torch.testing.assert_close(scalar.mlp_share, plain.mlp_share)  # one factor for every part
    assert float(plain.mlp[0, 0]) > float(plain.attn[0, 0])  # plain: layer 0's MLP ranks first
    gain = torch.tensor([1.0, 0.5], dtype=torch.float64)
    weighted = component_attribution(attn, mlp, direction, gamma=gain)
    assert float(weighted.mlp[0, 0]) < float(weighted.attn[0, 0])  # with the gain: attention
    assert float(plain.mlp_share[0]) > 0.5 > float(weighted.mlp_share[0])
    doc = " ".join((vrp.signals._components.__doc__ or "").split())
    assert "ranks components the same way" not in doc
    assert "gain that differs across dimensions" in doc and "0.492 to 0.523" in doc
