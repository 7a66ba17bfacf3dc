"""Stage 3 generation dynamics, read off the logits at the answer position.

All functions take logits, not probabilities, and work in float32 at least. `truth_margin` and
`yes_no_margin` accept any axes between ``batch`` and ``vocab``, so the logit lens reuses them on
``[batch layer vocab]``. Their return shape is written ``" batch *rest"``: the leading space
keeps pyflakes from reading ``batch *rest`` as a product of undefined names.
"""

from collections.abc import Sequence
from typing import Literal

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from vrp.core import ConfigError, ShapeError
from vrp.core.types import AnswerLogits

from ._checks import check_id_set, check_ids, check_shape, upcast


def answer_logprob(
    logits: Float[Tensor, "batch seq vocab"],
    tokens: Int[Tensor, "batch seq"],
    mask: Bool[Tensor, "batch seq"] | None = None,
) -> Float[Tensor, " batch"]:
    """Mean log-probability of the answer's tokens (P_tok), in nats.

    Args:
      logits: at each answer step, the logits that predicted that step's token (already shifted:
        ``logits[:, t]`` scores ``tokens[:, t]``). For a one-token answer pass
        ``answer_logits[:, None]`` and ``token_ids[:, None]``.
      tokens: the answer's token ids.
      mask: True at real answer tokens, False at padding (answers of different lengths); None
        means every position counts.

    Returns:
      The mean over each row's answer tokens of log softmax(logits)[token].

    Raises:
      ShapeError: `tokens` or `mask` is not ``[batch seq]`` like `logits`, or a row of `mask`
        marks no token.
      SignalError: a token id outside the vocabulary.
    """
    steps = tuple(logits.shape[:-1])
    check_shape(tokens, steps, "tokens", "[batch seq], one id per answer step of logits")
    if mask is not None:
        check_shape(mask, steps, "mask", "[batch seq], like tokens")
    check_ids(tokens, logits.shape[-1], "tokens")
    logp = torch.log_softmax(upcast(logits), dim=-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    if mask is None:
        return logp.mean(dim=-1)
    counts = mask.sum(dim=-1)
    if bool((counts == 0).any()):
        raise ShapeError(
            "every row of mask must mark at least one answer token, but rows "
            f"{torch.nonzero(counts == 0)[:, 0].tolist()} mark none."
        )
    return torch.where(mask, logp, 0.0).sum(dim=-1) / counts


def vocab_entropy(logits: AnswerLogits) -> Float[Tensor, " batch"]:
    """Entropy of the full next-token distribution at the answer position, in nats.

    Args:
      logits: answer-position logits; -inf entries (masked tokens) count as probability 0.

    Returns:
      -sum p log p over the vocabulary, one per row.
    """
    logp = torch.log_softmax(upcast(logits), dim=-1)
    p = logp.exp()
    return -torch.where(p > 0, p * logp, 0.0).sum(dim=-1)


def logit_gap(logits: AnswerLogits) -> Float[Tensor, " batch"]:
    """Top-1 minus top-2 logit at the answer position (0 when the two best tie).

    Args:
      logits: answer-position logits, at least two entries per row.

    Returns:
      The gap between the best and second-best logit, one per row.

    Raises:
      ShapeError: the vocabulary has fewer than 2 entries.
    """
    if logits.shape[-1] < 2:
        raise ShapeError(f"logit_gap needs at least 2 vocab entries, but got {logits.shape[-1]}.")
    top = upcast(logits).topk(2, dim=-1).values
    return top[..., 0] - top[..., 1]


def truth_margin(
    logits: Float[Tensor, "batch *rest vocab"], target: Int[Tensor, " batch"]
) -> Float[Tensor, " batch *rest"]:
    """Logit of the correct token minus the largest logit of any other token.

    Positive iff the correct token wins the argmax. Any axes between ``batch`` and ``vocab``
    (layers, for the logit lens) share the row's target.

    Args:
      logits: logits with the vocabulary last, at least two entries.
      target: the correct answer's token id for each row.

    Returns:
      The margin, with the vocab axis reduced.

    Raises:
      ShapeError: `logits` has fewer than 2 axes or 2 vocab entries, or `target` is not one id
        per row (a single target is not broadcast to every row).
      SignalError: a target id outside the vocabulary.
    """
    if logits.ndim < 2:
        raise ShapeError(
            f"truth_margin needs logits of shape [batch *rest vocab], but got {logits.ndim}-D "
            f"logits of shape {tuple(logits.shape)}. Add the batch axis: logits[None]."
        )
    vocab = logits.shape[-1]
    if vocab < 2:
        raise ShapeError(f"truth_margin needs at least 2 vocab entries, but got {vocab}.")
    check_shape(target, logits.shape[:1], "target", "[batch], one token id per row of logits")
    check_ids(target, vocab, "target")
    logits = upcast(logits)
    index = target.view(-1, *([1] * (logits.ndim - 1))).expand(*logits.shape[:-1], 1)
    correct = logits.gather(-1, index).squeeze(-1)
    others = logits.scatter(-1, index, float("-inf")).amax(dim=-1)
    return correct - others


def yes_no_margin(
    logits: Float[Tensor, "batch *rest vocab"],
    yes_ids: Sequence[int],
    no_ids: Sequence[int],
    *,
    reduce: Literal["logsumexp", "max"] = "logsumexp",
) -> Float[Tensor, " batch *rest"]:
    """Score of the "yes" tokens minus that of the "no" tokens.

    With "logsumexp" (default) each side is logsumexp of its logits, so the margin is
    log P(any yes token) - log P(any no token): every spelling ("Yes", " yes", ...) adds its
    probability, and the softmax normaliser cancels. With "max" each side is its best spelling.

    Args:
      logits: logits with the vocabulary last.
      yes_ids: token ids that spell "yes" (non-empty).
      no_ids: token ids that spell "no" (non-empty, disjoint from `yes_ids`).
      reduce: how a side's logits combine, "logsumexp" or "max".

    Returns:
      The margin, positive when the model leans "yes".

    Raises:
      ConfigError: an empty id set, an id outside the vocabulary, or an id on both sides.
    """
    vocab = logits.shape[-1]
    yes = check_id_set(yes_ids, vocab, "yes_ids")
    no = check_id_set(no_ids, vocab, "no_ids")
    if set(yes) & set(no):
        raise ConfigError(
            f"yes_ids and no_ids must be disjoint, but both hold {sorted(set(yes) & set(no))}."
        )
    yes_logits, no_logits = upcast(logits[..., list(yes)]), upcast(logits[..., list(no)])
    if reduce == "max":
        return yes_logits.amax(dim=-1) - no_logits.amax(dim=-1)
    return torch.logsumexp(yes_logits, dim=-1) - torch.logsumexp(no_logits, dim=-1)


def best_spelling(
    logits: AnswerLogits,
    yes_ids: Sequence[int],
    no_ids: Sequence[int],
    says_yes: Bool[Tensor, " batch"],
) -> Int[Tensor, " batch"]:
    """Per row, the highest-scoring spelling of the answer `says_yes` names.

    With `says_yes` from the model's own "max" margin this is the answer token greedy decoding
    emits (whenever it emits a yes/no spelling at all); with `says_yes` from the ground truth it
    is the correct answer in the spelling the model prefers (the logit lens's target). Models
    differ in spelling: the organisms answer "yes", LLaVA-1.5 "Yes".

    Args:
      logits: answer-position logits.
      yes_ids: the token ids that spell "yes" (see `yes_no_margin`).
      no_ids: the token ids that spell "no".
      says_yes: which answer to spell, one flag per row.

    Returns:
      One token id per row, on the logits' device.

    Raises:
      ConfigError: bad id sets (see `yes_no_margin`).
      ShapeError: `says_yes` is not one flag per row.
    """
    vocab = logits.shape[-1]
    yes = torch.tensor(check_id_set(yes_ids, vocab, "yes_ids"), device=logits.device)
    no = torch.tensor(check_id_set(no_ids, vocab, "no_ids"), device=logits.device)
    check_shape(says_yes, logits.shape[:1], "says_yes", "[batch], one flag per row of logits")
    best_yes = yes[logits[:, yes].argmax(dim=-1)]
    best_no = no[logits[:, no].argmax(dim=-1)]
    return torch.where(says_yes.to(logits.device), best_yes, best_no)
