"""Stage 3 self-consistency: do K sampled answers to one question agree?

Answers are compared after `normalise_answer` (lower-case, punctuation removed, spaces collapsed),
optionally after a `parse` callable that maps free text to a label first, such as the POPE yes/no
parser in `vrp.data`. Parsing comes first because parsers read the raw text (POPE keeps the text
before the first '.', which normalising would remove).
"""

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from jaxtyping import Bool

from vrp.core import ShapeError

_SPACES = re.compile(r"\s+")


@dataclass(frozen=True, kw_only=True)
class SelfConsistency:
    """Agreement among the K sampled answers to one question."""

    score: float  # S_SC: share of the K samples equal to the majority answer, in [1/K, 1]
    majority: str  # the majority answer, normalised (ties: see `self_consistency`)
    all_agree: bool  # every sample gave the majority answer
    counts: tuple[tuple[str, int], ...]  # each distinct answer with its count, most frequent first
    k: int  # number of samples


@dataclass(frozen=True, kw_only=True)
class AgreementPrecision:
    """Accuracy of the majority answer on the questions where all K samples agree."""

    precision: float  # share correct among the all-agree questions; NaN when n_agree is 0
    n_agree: int  # questions where all K samples agree
    n: int  # questions in total
    coverage: float  # n_agree / n


def normalise_answer(text: str) -> str:
    """Lower-cases `text`, deletes punctuation (any Unicode P* character) and collapses spaces.

    Args:
      text: a generated answer.

    Returns:
      The normalised answer, e.g. ``"  Yes, it IS. "`` -> ``"yes it is"``.
    """
    kept = "".join(c for c in text.lower() if not unicodedata.category(c).startswith("P"))
    return _SPACES.sub(" ", kept).strip()


def self_consistency(
    samples: Sequence[str], *, parse: Callable[[str], str] | None = None
) -> SelfConsistency:
    """Scores the agreement of K sampled answers with their majority answer.

    Ties for the majority go to the answer that appears first among `samples`: deterministic,
    and it favours the greedy answer if the caller puts it first. The score does not depend on
    the tie-break.

    Args:
      samples: the K sampled answers to one question (K >= 1), raw text.
      parse: maps a raw answer to a label before normalising (e.g. the POPE yes/no parser);
        None compares the normalised text itself.

    Returns:
      S_SC, the majority answer, the all-agree flag and the answer counts.

    Raises:
      ShapeError: `samples` is a single string or is empty.
    """
    if isinstance(samples, str):
        raise ShapeError(
            "samples must be a sequence of K answer strings, but got one string. Wrap it in a "
            "list: self_consistency([answer])."
        )
    if len(samples) == 0:
        raise ShapeError("samples must hold at least one answer, but it is empty.")
    answers = [normalise_answer(parse(s) if parse is not None else s) for s in samples]
    counts = Counter(answers).most_common()  # count descending, first appearance on ties
    majority, top = counts[0]
    return SelfConsistency(
        score=top / len(answers),
        majority=majority,
        all_agree=top == len(answers),
        counts=tuple(counts),
        k=len(answers),
    )


def agreement_precision(
    results: Sequence[SelfConsistency], correct: Sequence[bool] | Bool[np.ndarray, " n"]
) -> AgreementPrecision:
    """Precision of the majority answer on the questions where all K samples agree.

    Args:
      results: one `SelfConsistency` per question.
      correct: whether each question's majority answer is correct, in the same order.

    Returns:
      The precision with its counts (report n next to it).

    Raises:
      ShapeError: `results` and `correct` differ in length.
    """
    if len(results) != len(correct):
        raise ShapeError(
            f"correct must hold one label per result, but got {len(correct)} labels for "
            f"{len(results)} results."
        )
    agree = [bool(ok) for r, ok in zip(results, correct, strict=True) if r.all_agree]
    n = len(results)
    return AgreementPrecision(
        precision=sum(agree) / len(agree) if agree else math.nan,
        n_agree=len(agree),
        n=n,
        coverage=len(agree) / n if n else math.nan,
    )
