"""Generation dynamics at the answer position, against hand-computed values and scipy."""

import math

import pytest
import torch
from scipy.stats import entropy as scipy_entropy

from vrp.core import ConfigError, ShapeError
from vrp.signals import (
    SignalError,
    answer_logprob,
    logit_gap,
    truth_margin,
    vocab_entropy,
    yes_no_margin,
)


def test_answer_logprob_of_one_token() -> None:
    logits = torch.log(torch.tensor([[0.5, 0.25, 0.25], [0.1, 0.1, 0.8]]))
    result = answer_logprob(logits[:, None], torch.tensor([[0], [2]]))
    torch.testing.assert_close(result, torch.log(torch.tensor([0.5, 0.8])))


def test_answer_logprob_averages_unmasked_tokens() -> None:
    probs = torch.tensor(
        [
            [[0.5, 0.5, 0.0 + 1e-30], [0.2, 0.8, 1e-30]],
            [[0.25, 0.25, 0.5], [0.9, 0.05, 0.05]],  # second step is padding
        ]
    )
    tokens = torch.tensor([[0, 1], [2, 0]])
    mask = torch.tensor([[True, True], [True, False]])
    result = answer_logprob(torch.log(probs), tokens, mask)
    expected = torch.tensor([(math.log(0.5) + math.log(0.8)) / 2, math.log(0.5)])
    torch.testing.assert_close(result, expected)


def test_vocab_entropy_matches_scipy() -> None:
    logits = 3 * torch.randn(4, 50)
    reference = scipy_entropy(torch.softmax(logits.double(), -1).numpy(), axis=-1)
    torch.testing.assert_close(vocab_entropy(logits.double()), torch.from_numpy(reference))


def test_vocab_entropy_of_masked_tokens() -> None:
    logits = torch.tensor([[0.0, 0.0, float("-inf"), float("-inf")]])
    torch.testing.assert_close(vocab_entropy(logits), torch.tensor([math.log(2)]))


def test_logit_gap() -> None:
    logits = torch.tensor([[1.0, 4.0, 2.5, -1.0], [3.0, 3.0, 0.0, 0.0]])
    torch.testing.assert_close(logit_gap(logits), torch.tensor([1.5, 0.0]))


def test_truth_margin_on_answer_and_layer_logits() -> None:
    logits = torch.tensor([[1.0, 4.0, 2.5], [3.0, 3.0, 0.0]])
    torch.testing.assert_close(
        truth_margin(logits, torch.tensor([1, 2])), torch.tensor([1.5, -3.0])
    )
    stacked = torch.stack([logits, -logits], dim=1)  # batch layer vocab
    result = truth_margin(stacked, torch.tensor([1, 2]))
    torch.testing.assert_close(result, torch.tensor([[1.5, -3.0], [-3.0, 3.0]]))


def test_yes_no_margin_logsumexp_and_max() -> None:
    logits = torch.log(torch.tensor([[0.3, 0.1, 0.2, 0.4]]))  # yes: ids 0, 1; no: id 2
    result = yes_no_margin(logits, [0, 1], [2])
    torch.testing.assert_close(result, torch.log(torch.tensor([0.4 / 0.2])))
    result = yes_no_margin(logits, [0, 1], [2], reduce="max")
    torch.testing.assert_close(result, torch.log(torch.tensor([0.3 / 0.2])))


def test_id_errors() -> None:
    logits = torch.zeros(2, 5)
    with pytest.raises(SignalError, match=r"ids in 0..4 .* span 1..7"):
        truth_margin(logits, torch.tensor([1, 7]))
    with pytest.raises(SignalError, match="tokens must hold token ids"):
        answer_logprob(logits[:, None], torch.tensor([[5], [0]]))
    with pytest.raises(ConfigError, match="yes_ids must name at least one token id"):
        yes_no_margin(logits, [], [1])
    with pytest.raises(ConfigError, match=r"no_ids must hold token ids in 0..4, but got \[9\]"):
        yes_no_margin(logits, [0], [9])
    with pytest.raises(ConfigError, match=r"disjoint, but both hold \[1\]"):
        yes_no_margin(logits, [0, 1], [1, 2])


def test_shape_errors() -> None:
    mask = torch.tensor([[True, False, False], [False, False, False]])
    with pytest.raises(ShapeError, match=r"rows \[1\] mark none"):
        answer_logprob(torch.zeros(2, 3, 5), torch.zeros(2, 3, dtype=torch.long), mask)
    with pytest.raises(ShapeError, match="at least 2 vocab entries, but got 1"):
        logit_gap(torch.zeros(3, 1))
    with pytest.raises(ShapeError, match="at least 2 vocab entries, but got 1"):
        truth_margin(torch.zeros(3, 1), torch.zeros(3, dtype=torch.long))


@pytest.mark.usefixtures("without_runtime_checks")  # the hook would refuse these first
def test_inputs_are_never_broadcast_against_the_logits() -> None:
    logits = torch.randn(4, 5)
    with pytest.raises(
        ShapeError,
        match=r"target must have shape \(4,\) \(\[batch\], one token id "
        r"per row of logits\), but it has shape \(1,\)\. .*never broadcast",
    ):
        truth_margin(logits, torch.tensor([3]))  # used to score row 0's target on every row
    with pytest.raises(ShapeError, match=r"target must have shape \(4,\).*has shape \(4, 1\)"):
        truth_margin(torch.randn(4, 2, 5), torch.zeros(4, 1, dtype=torch.long))
    with pytest.raises(ShapeError, match=r"\[batch \*rest vocab\], but got 1-D.*logits\[None\]"):
        truth_margin(torch.randn(5), torch.tensor([1]))
    steps = torch.randn(4, 3, 10)
    with pytest.raises(ShapeError, match=r"tokens must have shape \(4, 3\).*has shape \(1, 3\)"):
        answer_logprob(steps, torch.zeros(1, 3, dtype=torch.long))  # used to return one row
    with pytest.raises(ShapeError, match=r"mask must have shape \(4, 3\).*has shape \(1, 3\)"):
        answer_logprob(steps, torch.zeros(4, 3, dtype=torch.long), torch.ones(1, 3, dtype=bool))
