"""Scoring an organism (or any VLM) on a fresh synthetic benchmark with POPE's parsing and metrics.

Two ways to read answers: ``"generate"`` decodes greedily and parses the text with POPE's rule (what a
user of the model sees), ``"logits"`` reads the answer position once: yes/no by the sign of the
yes-minus-no logit, counts by the best digit token (about four times faster, the same answers for a
model that always answers with one word).
"""

import dataclasses
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import torch

from ..core import ConfigError
from ..data import Dataset, EvaluationReport, SyntheticConfig, evaluate, generate
from ..models import VLM
from ..stats import Estimate, proportion
from ._recipe import TRAIN_SEED_OFFSET

EVAL_SEED = 2025
"""Benchmark seed of the model cards' evaluation (training uses seeds >= TRAIN_SEED_OFFSET)."""

Method = Literal["generate", "logits"]


@dataclass(frozen=True, kw_only=True)
class OrganismReport:
    """An evaluation of one model on one benchmark."""

    name: str  # the model's name
    method: str  # "generate" or "logits"
    seed: int | None  # the benchmark seed, if synthetic
    metrics: EvaluationReport  # per split: accuracy, precision, recall, F1, yes-ratio with CIs
    chance: Mapping[str, float]  # per split: accuracy of always giving the most common answer
    wrong: Estimate  # share of wrong answers over all questions
    answers: tuple[str, ...]  # the raw answers, in dataset order

    def accuracy(self, split: str) -> float:
        """Accuracy on `split`.

        Raises:
          ConfigError: the benchmark has no such split.
        """
        if split not in self.metrics.splits:
            raise ConfigError(
                f"no split {split!r} in this report; it has {', '.join(self.metrics.splits)}."
            )
        return self.metrics.splits[split].accuracy.estimate


def evaluation_set(
    *,
    n_per_split: int = 3000,
    n_counting: int = 1000,
    n_spatial: int = 1000,
    seed: int = EVAL_SEED,
    config: SyntheticConfig | None = None,
) -> Dataset:
    """A fresh synthetic benchmark (POPE splits, counting, spatial) for evaluating organisms.

    Args:
      n_per_split: questions per POPE split (even).
      n_counting: counting questions.
      n_spatial: spatial questions (even).
      seed: the benchmark seed; must be below TRAIN_SEED_OFFSET (those seeds are training data).
      config: the scene design (its sizes and seed are replaced); the default design if None.

    Raises:
      ConfigError: `seed` is a training seed, or the sizes are invalid.
    """
    if not 0 <= seed < TRAIN_SEED_OFFSET:
        raise ConfigError(
            f"evaluation seed {seed} is reserved for training data (seeds >= {TRAIN_SEED_OFFSET}) "
            f"or negative. Pick a seed in 0..{TRAIN_SEED_OFFSET - 1}."
        )
    base = config if config is not None else SyntheticConfig()
    return generate(
        dataclasses.replace(
            base, seed=seed, n_per_split=n_per_split, n_counting=n_counting, n_spatial=n_spatial
        )
    )


def as_method(text: str) -> Method:
    """`text` as an answer-reading method.

    Raises:
      ConfigError: neither "generate" nor "logits".
    """
    if text == "generate":
        return "generate"
    if text == "logits":
        return "logits"
    raise ConfigError(f"method must be 'generate' or 'logits'; got {text!r}.")


def organism_answers(
    vlm: VLM, dataset: Dataset, *, method: Method = "generate", batch_size: int = 64
) -> list[str]:
    """The model's raw answer to every question of `dataset`, in order.

    Raises:
      ConfigError: unknown method.
    """
    method = as_method(method)
    digits = _digit_tokens(vlm)
    answers: list[str] = []
    for batch in dataset.batches(batch_size):
        inputs = vlm.encode([s.image for s in batch], [s.question for s in batch])
        if method == "generate":
            answers += vlm.generate(inputs, max_new_tokens=3)
            continue
        logits = vlm.answer_logits(inputs)
        yes = (vlm.yes_no_margin(logits) > 0).tolist()
        count = logits[:, list(digits.values())].argmax(dim=-1).tolist()
        words = list(digits)
        answers += [
            words[c] if s.split == "counting" else ("yes" if y else "no")
            for s, y, c in zip(batch, yes, count, strict=True)
        ]
    return answers


def _digit_tokens(vlm: VLM) -> dict[str, int]:
    vocab = vlm.tokenizer.get_vocab()
    return {str(d): vocab[str(d)] for d in range(10) if str(d) in vocab}


@torch.no_grad()
def evaluate_organism(
    vlm: VLM,
    dataset: Dataset,
    *,
    method: Method = "generate",
    batch_size: int = 64,
    seed: int | None = None,
) -> OrganismReport:
    """Answers every question of `dataset` and scores the answers per split.

    Args:
      vlm: the model.
      dataset: the benchmark (e.g. `evaluation_set()`).
      method: "generate" (greedy decoding, POPE parsing) or "logits" (answer-position logits).
      batch_size: rows per forward pass.
      seed: the benchmark seed, recorded in the report.

    Returns:
      Metrics per split with CIs, the majority-answer baseline per split, the wrong-answer share.

    Raises:
      ConfigError: unknown method.
    """
    answers = organism_answers(vlm, dataset, method=method, batch_size=batch_size)
    metrics = evaluate(dataset.questions, answers)
    truth = [q.answer for q in dataset.questions]
    n_wrong = sum(p != t for p, t in zip(metrics.parsed, truth, strict=True))
    return OrganismReport(
        name=vlm.name,
        method=method,
        seed=seed,
        metrics=metrics,
        chance=_chance(dataset),
        wrong=proportion(n_wrong, len(truth)),
        answers=tuple(answers),
    )


def _chance(dataset: Dataset) -> dict[str, float]:
    by_split: dict[str, Counter[str]] = {}
    for q in dataset.questions:
        by_split.setdefault(q.split, Counter())[q.answer] += 1
    return {s: max(c.values()) / sum(c.values()) for s, c in by_split.items()}
