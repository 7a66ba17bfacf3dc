"""Paired comparisons of two runs on the questions they share: rows matched by model, split and
question id; exact McNemar for accuracies (`vrp.stats.mcnemar_exact`) and a paired bootstrap
for differences of AUROC (each resample draws the same shared questions from both runs)."""

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats
from sklearn.metrics import roc_auc_score

from ..core import DataError
from ..stats import Estimate

Key = tuple[str, Any]
"""A question's identity within a model's rows: (split, question_id)."""


def keyed(rows: Sequence[dict[str, Any]], column: str) -> dict[Key, Any]:
    """`column` of each row by (split, question_id).

    Raises:
      DataError: two rows share a key (the matching would be ambiguous).
    """
    out: dict[Key, Any] = {}
    for row in rows:
        key = (str(row.get("split")), row.get("question_id"))
        if key in out:
            raise DataError(
                f"two rows share split {key[0]!r} and question_id {key[1]!r}: expected one row "
                "per question, so questions cannot be matched across runs. Check the benchmark "
                "for repeated question ids."
            )
        out[key] = row.get(column)
    return out


def matched(
    rows_a: Sequence[dict[str, Any]], rows_b: Sequence[dict[str, Any]], column: str
) -> tuple[list[Key], list[Any], list[Any]]:
    """The shared questions (sorted) and `column` in run A and in run B, aligned.

    Raises:
      DataError: a shared (split, question_id) has another label or category in each run: the
        runs asked different questions under one id (synthetic data with another seed).
    """
    a, b = keyed(rows_a, column), keyed(rows_b, column)
    shared = sorted(a.keys() & b.keys(), key=lambda k: (k[0], str(k[1])))
    _check_same_questions(rows_a, rows_b, shared)
    return shared, [a[k] for k in shared], [b[k] for k in shared]


def _check_same_questions(
    rows_a: Sequence[dict[str, Any]], rows_b: Sequence[dict[str, Any]], shared: list[Key]
) -> None:
    for column in ("label", "category"):
        if not (rows_a and column in rows_a[0] and rows_b and column in rows_b[0]):
            continue
        a, b = keyed(rows_a, column), keyed(rows_b, column)
        differ = [k for k in shared if a[k] != b[k]]
        if differ:
            split, qid = differ[0]
            raise DataError(
                f"{len(differ)} of {len(shared)} shared questions differ between the runs: "
                f"{split!r} question {qid} has {column} {a[differ[0]]!r} in run A and "
                f"{b[differ[0]]!r} in run B. Expected the same benchmark in both runs (the same "
                "POPE file, or synthetic data with the same seed and n); compare such runs."
            )


def _aurocs(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """AUROC of each row of `scores` (resamples x n) for the same row of `labels` (ties count
    one half); NaN where a row holds one class only."""
    ranks = stats.rankdata(scores, axis=1)
    pos = labels == 1
    m = pos.sum(axis=1)
    k = labels.shape[1] - m
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = ((ranks * pos).sum(axis=1) - m * (m + 1) / 2) / (m * k)
    return np.where((m > 0) & (k > 0), auc, np.nan)


def auroc_difference(
    scores_a: ArrayLike, labels_a: ArrayLike, scores_b: ArrayLike, labels_b: ArrayLike, *, n_resamples: int = 2000, seed: int = 0, confidence: float = 0.95,
) -> Estimate:  # fmt: skip
    """AUROC(B) - AUROC(A) on the same questions, with a paired bootstrap CI and p-value.

    Each run keeps its own scores and its own correctness labels (the runs may answer
    differently); a resample draws question indices once and uses them in both runs.

    Returns:
      The difference, its percentile interval, the two-sided bootstrap p-value of no
      difference, and n = the shared questions.

    Raises:
      DataError: the inputs differ in length, hold NaN, or a run's labels have one class only.
    """
    sa, sb = np.asarray(scores_a, float), np.asarray(scores_b, float)
    ya, yb = np.asarray(labels_a, int), np.asarray(labels_b, int)
    if not sa.size == sb.size == ya.size == yb.size or sa.size == 0:
        raise DataError(f"paired AUROC needs equal, non-empty inputs; got {sa.size}, {sb.size}.")
    if not (np.isfinite(sa).all() and np.isfinite(sb).all()):
        raise DataError("the signal is NaN on some shared questions in one of the runs.")
    if len(set(ya.tolist())) < 2 or len(set(yb.tolist())) < 2:
        raise DataError("one run answers every shared question right (or every one wrong).")
    point = float(roc_auc_score(yb, sb) - roc_auc_score(ya, sa))
    rng = np.random.default_rng(seed)
    index = rng.integers(0, sa.size, size=(n_resamples, sa.size))
    diffs = _aurocs(sb[index], yb[index]) - _aurocs(sa[index], ya[index])
    diffs = diffs[np.isfinite(diffs)]
    tail = 50 * (1 - confidence)
    low, high = np.percentile(diffs, [tail, 100 - tail])
    p = min(1.0, 2 * min(float(np.mean(diffs <= 0)), float(np.mean(diffs >= 0))))
    return Estimate(estimate=point, ci_low=float(low), ci_high=float(high), p_value=p,
                    n=int(sa.size), confidence=confidence,
                    method=f"AUROC difference B - A, paired bootstrap over shared questions "
                    f"({diffs.size} resamples with both classes), percentile CI")  # fmt: skip
