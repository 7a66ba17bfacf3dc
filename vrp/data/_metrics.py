"""POPE's metrics with sample sizes and 95% confidence intervals, per split and per category.

Accuracy, precision, recall, F1 (positive class "yes") and the yes-ratio, as in POPE; the point
values come from scikit-learn. Every metric is a `vrp.stats.Estimate` (no test, so ``p_value`` is
NaN). Intervals: Wilson score intervals for the proportions (accuracy, precision, recall,
yes-ratio; each with its own denominator as ``n``: questions, predicted "yes" for precision, true
"yes" for recall), and a percentile bootstrap for F1 (resampling questions, done exactly by drawing
the four confusion-matrix counts from a multinomial). Counting questions get exact-match accuracy
(Wilson) and mean absolute error (bootstrap). ``method`` is "wilson" or "bootstrap".
"""

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from ..core import ConfigError, DataError
from ..stats import Estimate, proportion
from ._dataset import Question
from ._parse import parse_count_answer, parse_pope_answer


@dataclass(frozen=True, kw_only=True)
class BinaryMetrics:
    """POPE's metrics for yes/no questions; "yes" is the positive class."""

    n: int
    accuracy: Estimate
    precision: Estimate
    recall: Estimate
    f1: Estimate
    yes_ratio: Estimate  # share of "yes" predictions (POPE reports it to expose yes-bias)


@dataclass(frozen=True, kw_only=True)
class CountMetrics:
    """Metrics for counting questions; unparsable answers count as wrong."""

    n: int
    accuracy: Estimate  # exact match
    mae: Estimate | None  # mean |predicted - true| over parsable answers; None if there are none
    n_unparsed: int


Metrics = BinaryMetrics | CountMetrics


@dataclass(frozen=True, kw_only=True)
class EvaluationReport:
    """Metrics of one set of model answers, per split and per (split, category)."""

    splits: Mapping[str, Metrics]
    categories: Mapping[tuple[str, str], Metrics]
    parsed: tuple[str, ...]  # each answer after parsing: "yes"/"no", a count, or "" (unparsable)


def _proportion(value: float, successes: int, n: int) -> Estimate:
    # the point value is scikit-learn's: it equals successes / n, except that with n == 0 it is 0
    # (zero_division=0) where `proportion` says NaN
    return replace(proportion(successes, n), estimate=float(value))


def _bootstrap(value: float, n: int, draws: np.ndarray) -> Estimate:
    low, high = np.percentile(draws, [2.5, 97.5])
    return Estimate(
        estimate=value,
        ci_low=float(low),
        ci_high=float(high),
        p_value=math.nan,
        n=n,
        method="bootstrap",
    )


def binary_metrics(
    y_true: Sequence[str], y_pred: Sequence[str], *, n_boot: int = 2000, seed: int = 0
) -> BinaryMetrics:
    """POPE's metrics of predicted against true "yes"/"no" labels.

    Args:
      y_true: ground-truth labels, "yes" or "no".
      y_pred: predicted labels (already parsed, e.g. by `parse_pope_answer`).
      n_boot: bootstrap resamples for the F1 interval.
      seed: seed of the bootstrap.

    Returns:
      The metrics; precision (recall) is 0 when nothing is predicted (truly) "yes", as
      scikit-learn's ``zero_division=0``.

    Raises:
      DataError: the sequences differ in length, are empty, or hold a label other than yes/no.
      ConfigError: `n_boot` < 1 or `seed` < 0.
    """
    from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

    _check_bootstrap(n_boot, seed)
    truth, pred = _binary_arrays(y_true, y_pred)
    n = len(truth)
    tp, fp = int(np.sum(truth & pred)), int(np.sum(~truth & pred))
    fn, tn = int(np.sum(truth & ~pred)), int(np.sum(~truth & ~pred))
    kw = {"pos_label": 1, "zero_division": 0.0}
    t, p = truth.astype(int), pred.astype(int)
    return BinaryMetrics(
        n=n,
        accuracy=_proportion(accuracy_score(t, p), tp + tn, n),
        precision=_proportion(precision_score(t, p, **kw), tp, tp + fp),
        recall=_proportion(recall_score(t, p, **kw), tp, tp + fn),
        f1=_f1_estimate(float(f1_score(t, p, **kw)), (tp, fp, fn, tn), n_boot, seed),
        yes_ratio=_proportion((tp + fp) / n, tp + fp, n),
    )


def _check_bootstrap(n_boot: int, seed: int) -> None:
    for name, value, low in (("n_boot", n_boot, 1), ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(
                f"{name} must be an integer >= {low}; got {value!r}. The defaults are n_boot=2000 "
                "resamples and seed=0."
            )


def _binary_arrays(y_true: Sequence[str], y_pred: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    if len(y_true) != len(y_pred) or not y_true:
        raise DataError(
            f"need as many predictions as labels, at least one; got {len(y_true)} labels and "
            f"{len(y_pred)} predictions."
        )
    bad = sorted({v for v in (*y_true, *y_pred) if v not in ("yes", "no")})
    if bad:
        raise DataError(
            f"labels must be 'yes' or 'no'; got {bad[:5]!r}. Parse raw answers with "
            "parse_pope_answer first."
        )
    return np.asarray(y_true) == "yes", np.asarray(y_pred) == "yes"


def _f1_estimate(
    value: float, cells: tuple[int, int, int, int], n_boot: int, seed: int
) -> Estimate:
    n = sum(cells)
    draws = np.random.default_rng(seed).multinomial(n, np.asarray(cells) / n, size=n_boot)
    tp, fp, fn = draws[:, 0], draws[:, 1], draws[:, 2]
    denominator = 2 * tp + fp + fn
    f1 = np.divide(2 * tp, denominator, out=np.zeros(n_boot), where=denominator > 0)
    return _bootstrap(value, n, f1)


def count_metrics(
    y_true: Sequence[int], y_pred: Sequence[int | None], *, n_boot: int = 2000, seed: int = 0
) -> CountMetrics:
    """Exact-match accuracy and mean absolute error of predicted counts.

    Args:
      y_true: true counts.
      y_pred: predicted counts, None where the answer held no number (counted wrong).
      n_boot: bootstrap resamples for the MAE interval.
      seed: seed of the bootstrap.

    Returns:
      Accuracy over all questions, MAE over the parsable ones.

    Raises:
      DataError: the sequences differ in length or are empty, a true count is not an integer
        >= 0, or a prediction is neither an integer nor None.
      ConfigError: `n_boot` < 1 or `seed` < 0.
    """
    _check_bootstrap(n_boot, seed)
    if len(y_true) != len(y_pred) or not y_true:
        raise DataError(
            f"need as many predictions as counts, at least one; got {len(y_true)} counts and "
            f"{len(y_pred)} predictions."
        )
    _check_counts(y_true, y_pred)
    n = len(y_true)
    correct = sum(p is not None and p == t for t, p in zip(y_true, y_pred, strict=True))
    errors = np.asarray(
        [abs(p - t) for t, p in zip(y_true, y_pred, strict=True) if p is not None], dtype=float
    )
    mae = None
    if errors.size:
        rng = np.random.default_rng(seed)
        boot = errors[rng.integers(0, errors.size, size=(n_boot, errors.size))].mean(axis=1)
        mae = _bootstrap(float(errors.mean()), errors.size, boot)
    return CountMetrics(
        n=n,
        accuracy=_proportion(correct / n, correct, n),
        mae=mae,
        n_unparsed=n - errors.size,
    )


def _check_counts(y_true: Sequence[int], y_pred: Sequence[int | None]) -> None:
    def is_int(v: object) -> bool:
        return isinstance(v, int | np.integer) and not isinstance(v, bool)

    bad_true = [v for v in y_true if not is_int(v) or v < 0]
    bad_pred = [v for v in y_pred if v is not None and not is_int(v)]
    if bad_true or bad_pred:
        raise DataError(
            f"counts must be integers >= 0 and predictions integers or None (unparsable); got "
            f"{bad_true[:3]!r} among the counts and {bad_pred[:3]!r} among the predictions. "
            "Parse raw answers with parse_count_answer first."
        )


def evaluate(
    questions: Iterable[Question], answers: Sequence[str], *, n_boot: int = 2000, seed: int = 0
) -> EvaluationReport:
    """Parses raw model answers and scores them per split and per (split, category).

    Counting questions are parsed with `parse_count_answer`, all others with POPE's rule.

    Args:
      questions: the questions (e.g. ``dataset.questions``), in the order of `answers`.
      answers: the model's raw text answers.
      n_boot: bootstrap resamples for F1 and MAE intervals.
      seed: seed of the bootstraps.

    Returns:
      Metrics per split and per (split, category), and the parsed answers.

    Raises:
      DataError: there are no questions, the numbers of questions and answers differ, or an
        answer is not a string.
      ConfigError: `n_boot` < 1 or `seed` < 0.
    """
    questions = tuple(questions)
    _check_bootstrap(n_boot, seed)
    if len(questions) != len(answers) or not questions:
        raise DataError(
            f"expected one answer per question, at least one: {len(questions)} questions, "
            f"{len(answers)} answers. Pass the answers in the order of dataset.questions."
        )
    bad = [i for i, a in enumerate(answers) if not isinstance(a, str)]
    if bad:
        raise DataError(
            f"answers must be the model's raw text; answer {bad[0]} is {answers[bad[0]]!r:.40} "
            f"({len(bad)} of {len(answers)} are not strings). Pass '' for a missing answer."
        )
    parsed = tuple(_parse(q, a) for q, a in zip(questions, answers, strict=True))
    by_split: dict[str, list[int]] = {}
    by_category: dict[tuple[str, str], list[int]] = {}
    for i, q in enumerate(questions):
        by_split.setdefault(q.split, []).append(i)
        by_category.setdefault((q.split, q.category), []).append(i)
    return EvaluationReport(
        splits={k: _score(questions, parsed, idx, n_boot, seed) for k, idx in by_split.items()},
        categories={
            k: _score(questions, parsed, by_category[k], n_boot, seed) for k in sorted(by_category)
        },
        parsed=parsed,
    )


def _parse(question: Question, answer: str) -> str:
    if question.split == "counting":
        count = parse_count_answer(answer)
        return "" if count is None else str(count)
    return parse_pope_answer(answer)


def _score(
    questions: tuple[Question, ...], parsed: tuple[str, ...], idx: list[int], n_boot: int, seed: int
) -> Metrics:
    if questions[idx[0]].split == "counting":
        truth = [int(questions[i].answer) for i in idx]
        pred = [int(parsed[i]) if parsed[i] else None for i in idx]
        return count_metrics(truth, pred, n_boot=n_boot, seed=seed)
    truth_yn = [questions[i].answer for i in idx]
    return binary_metrics(truth_yn, [parsed[i] for i in idx], n_boot=n_boot, seed=seed)
