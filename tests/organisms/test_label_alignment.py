"""The training loss reads each target token from the logits of the position before it, once."""

import pytest
import torch

from tests.conftest import random_images
from vrp.core import ShapeError
from vrp.models import VLM
from vrp.organisms import IGNORE, encode_with_targets, next_token_labels, target_loss

QUESTIONS = ["Is there a red circle in the image?", "How many blue squares are there?"]
TARGETS = ["yes", "2"]


def test_labels_sit_one_position_before_their_token() -> None:
    ids = torch.tensor([[0, 11, 12, 13, 21, 22], [11, 12, 13, 14, 15, 31]])
    targets = torch.tensor([[0, 0, 0, 0, 1, 1], [0, 0, 0, 0, 0, 1]], dtype=torch.bool)
    labels = next_token_labels(ids, targets)
    assert labels.tolist() == [
        [IGNORE, IGNORE, IGNORE, 21, 22, IGNORE],
        [IGNORE, IGNORE, IGNORE, IGNORE, 31, IGNORE],
    ]


def test_loss_is_zero_for_logits_that_predict_the_next_token_and_high_if_shifted_twice() -> None:
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    targets = torch.tensor([[0, 0, 1, 1, 1]], dtype=torch.bool)
    logits = torch.full((1, 5, 10), -30.0)
    for t in range(4):  # a perfect model: position t puts all mass on token t + 1
        logits[0, t, ids[0, t + 1]] = 30.0
    assert float(target_loss(logits, next_token_labels(ids, targets))) < 1e-6
    shifted_again = next_token_labels(next_token_labels(ids, targets).clamp(min=0), targets)
    assert float(target_loss(logits, shifted_again)) > 10.0


def test_matches_the_loss_hugging_face_computes_from_unshifted_labels(vlm_words: VLM) -> None:
    batch = encode_with_targets(vlm_words, random_images(2, 64), QUESTIONS, TARGETS)
    logits = vlm_words.hf(**batch.inputs.data).logits
    hf_labels = torch.where(batch.target_mask, batch.inputs.input_ids, IGNORE)  # HF shifts these
    expected = vlm_words.hf(**batch.inputs.data, labels=hf_labels).loss
    torch.testing.assert_close(target_loss(logits, batch.labels), expected)


def test_first_target_is_trained_at_the_position_inference_reads(vlm_words: VLM) -> None:
    images = random_images(2, 64)
    batch = encode_with_targets(vlm_words, images, QUESTIONS, TARGETS)
    logits = vlm_words.hf(**batch.inputs.data).logits
    first = batch.target_mask.int().argmax(dim=1) - 1  # the position before the first target
    rows = torch.arange(2)
    tok = vlm_words.tokenizer.convert_tokens_to_ids
    assert batch.labels[rows, first].tolist() == [tok("yes"), tok("2")]
    inference = vlm_words.answer_logits(vlm_words.encode(images, QUESTIONS))
    torch.testing.assert_close(logits[rows, first], inference, atol=1e-4, rtol=1e-4)


def test_target_tokens_follow_the_prompt_and_end_with_eos(vlm_words: VLM) -> None:
    images = random_images(2, 64)
    batch = encode_with_targets(vlm_words, images, QUESTIONS, TARGETS)
    prompt = vlm_words.encode(images, QUESTIONS)
    tokenizer = vlm_words.tokenizer
    for row in range(2):
        ids = batch.inputs.input_ids[row][batch.inputs.attention_mask[row].bool()]
        plain = prompt.input_ids[row][prompt.attention_mask[row].bool()]
        assert torch.equal(ids[: len(plain)], plain)
        assert tokenizer.convert_ids_to_tokens(ids[len(plain) :]) == [TARGETS[row], "</s>"]
    assert int(batch.target_mask.sum()) == 4
    assert torch.equal(batch.inputs.image_mask.sum(dim=1), prompt.image_mask.sum(dim=1))
    if vlm_words.family == "paligemma":  # the answer is PaliGemma's causal suffix
        types = batch.inputs.data["token_type_ids"]
        assert torch.equal(types.bool() & batch.inputs.attention_mask.bool(), batch.target_mask)


def test_an_empty_target_is_explained() -> None:
    with pytest.raises(ShapeError, match=r"no position carries a label"):
        target_loss(torch.zeros(1, 3, 5), torch.full((1, 3), IGNORE))
