"""Logit lens on a tiny planted residual stream and unembedding whose margins are known."""

import pytest
import torch

from vrp.core import ConfigError, ShapeError
from vrp.signals import logit_lens, peak_integration_layer, visual_attribution

# d_model 3, vocab 4: token i reads residual coordinate i (i < 3), token 3 always scores 0
W_U = torch.cat([torch.eye(3), torch.zeros(3, 1)], dim=1)
RESID = torch.tensor(
    [
        [[1.0, 0.0, 0.0], [1.0, 2.0, 0.0], [0.0, 5.0, 1.0]],  # target 1: margins -1, 1, 4
        [[0.0, 0.0, 3.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.5]],  # target 2: margins 3, 1, -0.5
    ]
)
TARGET = torch.tensor([1, 2])


def test_truth_margin_per_layer_and_peak() -> None:
    lens = logit_lens(RESID, W_U, target=TARGET)
    torch.testing.assert_close(lens.margin, torch.tensor([[-1.0, 1.0, 4.0], [3.0, 1.0, -0.5]]))
    # increases: row 0 +2 at layer 1, +3 at layer 2; row 1 -2, -1.5 (largest is at layer 2)
    assert lens.peak_layer.tolist() == [2, 2]
    torch.testing.assert_close(lens.peak_increase, torch.tensor([3.0, -1.5]))
    assert lens.yes_no is None and lens.layers == (0, 1, 2)


def test_norm_yes_no_and_callable_unembedding_agree() -> None:
    head = torch.nn.Linear(3, 4, bias=False)
    with torch.no_grad():
        head.weight.copy_(W_U.T)
    double = lambda h: 2 * h  # noqa: E731
    from_matrix = logit_lens(RESID, W_U, target=TARGET, norm=double, yes_ids=[1], no_ids=[0])
    from_module = logit_lens(RESID, head, target=TARGET, norm=double, yes_ids=[1], no_ids=[0])
    expected = 2 * torch.tensor([[-1.0, 1.0, 4.0], [3.0, 1.0, -0.5]])
    torch.testing.assert_close(from_matrix.margin, expected)
    torch.testing.assert_close(from_module.margin, expected)
    assert from_module.yes_no is not None and from_matrix.yes_no is not None
    torch.testing.assert_close(from_module.yes_no, from_matrix.yes_no)
    torch.testing.assert_close(from_matrix.yes_no[0], 2 * torch.tensor([-1.0, 1.0, 5.0]))
    assert not from_module.margin.requires_grad


def test_peak_layer_with_labels_and_visual_attribution() -> None:
    with_image = torch.tensor([[0.0, 0.5, 3.0, 3.2], [1.0, 1.0, 1.0, 1.0]])
    blank = torch.tensor([[0.0, 0.4, 0.6, 0.8], [1.0, 0.0, 0.0, 0.0]])
    attribution = visual_attribution(with_image, blank)
    torch.testing.assert_close(
        attribution, torch.tensor([[0.0, 0.1, 2.4, 2.4], [0.0, 1.0, 1.0, 1.0]])
    )
    peaks = peak_integration_layer(attribution, layers=[12, 13, 14, 15])
    assert peaks.tolist() == [14, 13]


def test_lens_errors() -> None:
    with pytest.raises(ConfigError, match="pass both yes_ids and no_ids"):
        logit_lens(RESID, W_U, target=TARGET, yes_ids=[1])
    with pytest.raises(ShapeError, match=r"returned \(2, 2, 4\) for \(2, 3\)"):
        logit_lens(RESID, lambda h: (h @ W_U)[:, None].expand(2, 2, 4), target=TARGET)
    with pytest.raises(ShapeError, match="at least 2 layers, but got 1"):
        logit_lens(RESID[:, :1], W_U, target=TARGET)


@pytest.mark.usefixtures("without_runtime_checks")
def test_visual_attribution_refuses_to_broadcast() -> None:
    with pytest.raises(ShapeError, match=r"same shape, but got \(2, 3\) and \(1, 3\)"):
        visual_attribution(torch.zeros(2, 3), torch.zeros(1, 3))


@pytest.mark.usefixtures("without_runtime_checks")
def test_lens_inputs_must_agree_on_batch_and_d_model() -> None:
    with pytest.raises(ShapeError, match=r"target must have shape \(2,\).*has shape \(1,\)"):
        logit_lens(RESID, W_U, target=torch.tensor([1]))
    with pytest.raises(ShapeError, match=r"\[d_model vocab\] with d_model = 3.*\(4, 3\).*\.T"):
        logit_lens(RESID, W_U.T, target=TARGET)
    with pytest.raises(ShapeError, match=r"resid must be \[batch layer d_model\].*\(2, 3\)"):
        logit_lens(RESID[:, 0], W_U, target=TARGET)
