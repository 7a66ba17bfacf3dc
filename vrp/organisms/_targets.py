"""Teacher-forced targets: prompt + answer sequences and next-token labels aligned with the logits.

The loss is computed here, not by passing ``labels`` to the Hugging Face model: its loss shifts the
labels by one position internally, so labels placed on the answer position *and* shifted again train
the wrong position (the bug recorded in the organism notes). `next_token_labels` does the one shift
explicitly: ``labels[:, t]`` is the token the logits at position ``t`` must predict, that is
``input_ids[:, t + 1]`` wherever position ``t + 1`` holds a target token, and -100 elsewhere.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float, Int
from PIL.Image import Image
from torch import Tensor

from ..core import ShapeError
from ..models import VLM, VlmInputs

IGNORE = -100
"""Label of positions that carry no loss (the value Hugging Face and PyTorch ignore)."""

_SEQ_KEYS = ("input_ids", "attention_mask", "token_type_ids", "mm_token_type_ids")
"""Processor outputs laid out ``batch seq`` (the others hold one entry per image)."""
_TARGET_FILL = {"attention_mask": 1, "token_type_ids": 1}
"""Values of the target positions for ``batch seq`` processor outputs other than input_ids (0 if
absent here). PaliGemma's ``token_type_ids`` is 1 on the answer: a causal suffix after the
bidirectional prefix, exactly as its processor's ``suffix`` and its generation loop mark answers."""


@dataclass(frozen=True, kw_only=True)
class TargetBatch:
    """A left-padded batch of prompt + target rows and the labels of the target tokens."""

    inputs: VlmInputs  # the model inputs: each row's prompt followed by its target tokens
    target_mask: Bool[Tensor, "batch seq"]  # positions holding target tokens (answer + eos)
    labels: Int[Tensor, "batch seq"]  # next-token labels aligned with the logits (see module doc)


def next_token_labels(
    input_ids: Int[Tensor, "batch seq"], target_mask: Bool[Tensor, "batch seq"]
) -> Int[Tensor, "batch seq"]:
    """Labels aligned with the logits: position ``t`` predicts the target token at ``t + 1``.

    Args:
      input_ids: the token ids fed to the model.
      target_mask: which positions of `input_ids` are target tokens.

    Returns:
      ``input_ids[:, t + 1]`` at each position ``t`` whose successor is a target, IGNORE elsewhere
      (always IGNORE at the last position).
    """
    labels = torch.full_like(input_ids, IGNORE)
    labels[:, :-1] = torch.where(target_mask[:, 1:], input_ids[:, 1:], IGNORE)
    return labels


def target_loss(
    logits: Float[Tensor, "batch seq vocab"], labels: Int[Tensor, "batch seq"]
) -> Float[Tensor, ""]:
    """Mean cross-entropy of the logits against already aligned labels (no further shift).

    Raises:
      ShapeError: no position carries a label (nothing to learn from).
    """
    if not bool((labels != IGNORE).any()):
        raise ShapeError("no position carries a label: every target is empty.")
    return F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=IGNORE)


def encode_with_targets(
    vlm: VLM, images: Sequence[Image], questions: Sequence[str], targets: Sequence[str]
) -> TargetBatch:
    """Encodes each (image, question) with the family's prompt, appends the target and end-of-sequence.

    The prompt part is exactly what `VLM.encode` gives at inference; the target tokens follow it,
    and rows are left-padded as a whole, so the answer sits where generation would put it.

    Args:
      vlm: the model handle (its adapter, processor and tokenizer are used).
      images: one image per row.
      questions: the questions (wrapped in the family's prompt).
      targets: the text each row must continue with (a one-word answer or a caption).

    Returns:
      The inputs, the target mask and the aligned labels.
    """
    prompts = vlm.encode(images, questions)
    tokenizer = vlm.tokenizer
    ids = [
        tokenizer.encode(t, add_special_tokens=False) + [tokenizer.eos_token_id] for t in targets
    ]
    real = prompts.attention_mask.sum(dim=1).tolist()
    width = max(int(n) + len(t) for n, t in zip(real, ids, strict=True))
    seq_keys = [k for k in _SEQ_KEYS if k in prompts.data]
    data = {k: v for k, v in prompts.data.items() if k not in seq_keys}
    rows: dict[str, list[Tensor]] = {k: [] for k in (*seq_keys, "image_mask", "target_mask")}
    for i, (n, target) in enumerate(zip(real, ids, strict=True)):
        extra = torch.tensor(target, dtype=torch.long)
        pad = width - int(n) - len(target)
        for key in seq_keys:
            value = prompts.data[key][i, -int(n) :]
            fill = extra if key == "input_ids" else torch.full_like(extra, _TARGET_FILL.get(key, 0))
            pad_value = tokenizer.pad_token_id if key == "input_ids" else 0
            rows[key].append(_left_pad(torch.cat([value, fill.to(value.dtype)]), pad, pad_value))
        image = prompts.image_mask[i, -int(n) :]
        no, yes = (
            torch.zeros(len(target), dtype=torch.bool),
            torch.ones(len(target), dtype=torch.bool),
        )
        rows["image_mask"].append(_left_pad(torch.cat([image, no]), pad, False))
        target_mask = torch.cat([torch.zeros_like(image), yes])
        rows["target_mask"].append(_left_pad(target_mask, pad, False))
    data.update({k: torch.stack(rows[k]) for k in seq_keys})
    inputs = VlmInputs(
        data=data,
        image_mask=torch.stack(rows["image_mask"]),
        grids=prompts.grids,
        prompts=prompts.prompts,
    )
    target_mask = torch.stack(rows["target_mask"])
    return TargetBatch(
        inputs=inputs,
        target_mask=target_mask,
        labels=next_token_labels(data["input_ids"], target_mask),
    )


def _left_pad(value: Tensor, n: int, fill: int | bool) -> Tensor:
    return torch.cat([torch.full((n,), fill, dtype=value.dtype), value]) if n else value
