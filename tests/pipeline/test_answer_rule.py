"""One rule for the yes/no answer: the spelling the model scores highest, as greedy decoding picks.

`answer_logprob` and everything that reads the answer's token must score the answer the model
actually gives, in the spelling it uses (the organisms answer in lower case, LLaVA-1.5 "Yes").
"""

import warnings

import numpy as np
import pytest
import torch

import vrp
from vrp.data import SyntheticConfig, generate
from vrp.models import builtin_names
from vrp.organisms._card import FAMILIES  # the families with an organism recipe
from vrp.pipeline import SignalConfig, batch_signals
from vrp.signals import best_spelling, yes_no_margin


@pytest.fixture(scope="module")
def questions():
    dataset = generate(SyntheticConfig(n_per_split=8, n_counting=0, n_spatial=8, seed=4_242))
    return [s for s in dataset if s.split in ("adversarial", "spatial")][:16]


@pytest.mark.parametrize("family", FAMILIES)
def test_answer_logprob_is_the_greedy_answer_tokens_logprob(
    family: str, questions, load_model
) -> None:
    name = f"organism/{family}"
    if name not in builtin_names():
        pytest.skip(f"{name} is not shipped in this checkout")
    vlm = load_model(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", vrp.UndefinedSignalWarning)  # C_k on the 4x4 grid
        rows = batch_signals(vlm, questions, SignalConfig(samples=0)).samples
    inputs = vlm.encode([s.image for s in questions], [s.question for s in questions])
    out = vlm.hf.generate(
        **inputs.data,
        max_new_tokens=1,
        do_sample=False,
        output_scores=True,
        return_dict_in_generate=True,
        pad_token_id=vlm.tokenizer.pad_token_id,
    )
    greedy = out.sequences[:, -1]
    spellings = set(vlm.answer_tokens.yes) | set(vlm.answer_tokens.no)
    assert set(greedy.tolist()) <= spellings, "the organism answered outside yes/no"
    logprob = torch.log_softmax(out.scores[0].float(), -1).gather(1, greedy[:, None])[:, 0]
    np.testing.assert_allclose([r.answer_logprob for r in rows], logprob.cpu().numpy(), atol=1e-4)
    said_yes = [t in vlm.answer_tokens.yes for t in greedy.tolist()]
    assert [r.answer for r in rows] == ["yes" if y else "no" for y in said_yes]
    assert max(r.answer_logprob for r in rows) > -5  # not the -20 nats of an unused spelling


def test_best_spelling_follows_the_models_casing() -> None:
    logits = torch.full((3, 10), -5.0)
    logits[0, 3] = 4.0  # "yes" spelled with id 3 wins
    logits[1, 1] = 2.0  # "Yes" (id 1) beats "yes" (id 3)
    logits[1, 3] = 1.0
    logits[2, 7] = 3.0  # "no" spelled with id 7
    yes, no = (1, 3), (2, 7)
    margin = yes_no_margin(logits, yes, no, reduce="max")
    chosen = best_spelling(logits, yes, no, margin > 0)
    assert chosen.tolist() == [3, 1, 7]
    truth = torch.tensor([False, False, True])
    # the other side's spellings all tie at -5 here: ties go to the spelling listed first
    assert best_spelling(logits, yes, no, truth).tolist() == [2, 2, 1]


def test_vlm_answer_token_agrees_with_says_yes(tiny_vlms) -> None:
    vlm = tiny_vlms["llava"]
    logits = torch.randn(6, vlm.adapter.unembedding(vlm.hf).shape[1])
    tokens = vlm.answer_token(logits).tolist()
    said = vlm.says_yes(logits).tolist()
    assert [t in vlm.answer_tokens.yes for t in tokens] == said
    union = list(vlm.answer_tokens.yes + vlm.answer_tokens.no)
    best = [union[int(i)] for i in logits[:, union].argmax(-1)]
    assert tokens == best  # the argmax over every spelling, as greedy decoding over yes/no
