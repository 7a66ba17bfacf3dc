"""POPE metrics: values equal scikit-learn's, intervals are sane, grouping by split and category."""

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

from vrp.core import DataError
from vrp.data import (
    BinaryMetrics,
    CountMetrics,
    Question,
    binary_metrics,
    count_metrics,
    evaluate,
)
from vrp.stats import Estimate, proportion


def _labels(flags: list[bool]) -> list[str]:
    return ["yes" if f else "no" for f in flags]


@pytest.mark.parametrize("seed", range(5))
def test_metrics_equal_sklearn_on_random_labels(seed: int) -> None:
    rng = np.random.default_rng(seed)
    truth, pred = rng.random(300) < 0.5, rng.random(300) < rng.uniform(0.1, 0.9)
    m = binary_metrics(_labels(list(truth)), _labels(list(pred)), n_boot=200)
    kw = {"pos_label": 1, "zero_division": 0.0}
    t, p = truth.astype(int), pred.astype(int)
    assert m.accuracy.estimate == pytest.approx(accuracy_score(t, p))
    assert m.precision.estimate == pytest.approx(precision_score(t, p, **kw))
    assert m.recall.estimate == pytest.approx(recall_score(t, p, **kw))
    assert m.f1.estimate == pytest.approx(f1_score(t, p, **kw))
    assert m.yes_ratio.estimate == pytest.approx(pred.mean())
    assert (m.n, m.precision.n, m.recall.n) == (300, int(pred.sum()), int(truth.sum()))


@settings(deadline=None, max_examples=40)
@given(st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=60))
def test_metrics_equal_sklearn_on_any_labels(pairs: list[tuple[bool, bool]]) -> None:
    t = np.array([a for a, _ in pairs], dtype=int)
    p = np.array([b for _, b in pairs], dtype=int)
    m = binary_metrics(_labels([bool(a) for a in t]), _labels([bool(b) for b in p]), n_boot=50)
    kw = {"pos_label": 1, "zero_division": 0.0}
    assert m.f1.estimate == pytest.approx(f1_score(t, p, **kw))
    assert m.precision.estimate == pytest.approx(precision_score(t, p, **kw))
    for est in (m.accuracy, m.precision, m.recall, m.yes_ratio):
        assert 0.0 <= est.ci_low <= est.estimate + 1e-12
        assert est.estimate <= est.ci_high + 1e-12 <= 1.0 + 1e-9


def test_metrics_are_stats_estimates_without_a_test() -> None:
    truth, pred = ["yes", "yes", "no", "no", "yes"], ["yes", "no", "no", "no", "yes"]
    m = binary_metrics(truth, pred, n_boot=50)
    for est in (m.accuracy, m.precision, m.recall, m.f1, m.yes_ratio):
        assert isinstance(est, Estimate) and math.isnan(est.p_value) and est.confidence == 0.95
    wilson = proportion(4, 5)  # 4 of 5 answers are right
    assert (m.accuracy.estimate, m.accuracy.n) == (wilson.estimate, 5)
    assert (m.accuracy.ci_low, m.accuracy.ci_high) == (wilson.ci_low, wilson.ci_high)
    assert (m.accuracy.ci_low, m.accuracy.ci_high) == pytest.approx((0.3755, 0.9638), abs=1e-4)


def test_precision_without_yes_predictions_is_zero_with_the_whole_interval() -> None:
    m = binary_metrics(["yes", "no"], ["no", "no"], n_boot=50)
    assert m.precision.n == 0 and m.precision.estimate == 0.0  # scikit-learn's zero_division=0
    assert (m.precision.ci_low, m.precision.ci_high) == (0.0, 1.0)


def test_f1_interval_is_bootstrap_and_brackets_value() -> None:
    rng = np.random.default_rng(0)
    truth = rng.random(400) < 0.5
    pred = np.where(rng.random(400) < 0.8, truth, ~truth)
    m = binary_metrics(_labels(list(truth)), _labels(list(pred)))
    assert m.f1.method == "bootstrap" and m.accuracy.method == "wilson"
    assert m.f1.ci_low < m.f1.estimate < m.f1.ci_high
    assert m.f1.ci_high - m.f1.ci_low < 0.15


def test_bad_inputs_are_rejected() -> None:
    with pytest.raises(DataError, match=r"got 2 labels and 1 predictions"):
        binary_metrics(["yes", "no"], ["yes"])
    with pytest.raises(DataError, match=r"must be 'yes' or 'no'; got \['No'\].*parse_pope_answer"):
        binary_metrics(["yes"], ["No"])


def test_count_metrics() -> None:
    m = count_metrics([1, 2, 3, 0], [1, 3, None, 0], n_boot=100)
    assert m.accuracy.estimate == 0.5 and m.n == 4 and m.n_unparsed == 1
    assert m.mae is not None and m.mae.estimate == pytest.approx(1 / 3) and m.mae.n == 3
    assert isinstance(m.mae, Estimate) and m.mae.method == "bootstrap" and math.isnan(m.mae.p_value)
    assert m.accuracy.method == "wilson"


def _q(i: int, split: str, category: str, answer: str) -> Question:
    text = "How many red circles are there?" if split == "counting" else "Is there a dog?"
    return Question(
        question_id=i,
        image_name="a.png",
        question=text,
        answer=answer,
        split=split,
        category=category,
    )


def test_evaluate_groups_by_split_and_category() -> None:
    questions = [
        _q(1, "random", "dog", "yes"),
        _q(2, "random", "dog", "no"),
        _q(3, "random", "cat", "yes"),
        _q(4, "counting", "counting", "2"),
        _q(5, "counting", "counting", "0"),
    ]
    answers = ["Yes, there is.", "There is no dog.", "NO", "Two.", "many"]
    report = evaluate(questions, answers, n_boot=100)
    assert report.parsed == ("yes", "no", "yes", "2", "")
    random_split = report.splits["random"]
    assert isinstance(random_split, BinaryMetrics)
    assert random_split.accuracy.estimate == pytest.approx(1.0)
    counting = report.splits["counting"]
    assert isinstance(counting, CountMetrics) and counting.accuracy.estimate == 0.5
    assert set(report.categories) == {
        ("random", "cat"),
        ("random", "dog"),
        ("counting", "counting"),
    }
    assert report.categories[("random", "dog")].n == 2


def test_evaluate_needs_one_answer_per_question() -> None:
    with pytest.raises(DataError, match=r"1 questions, 2 answers"):
        evaluate([_q(1, "random", "dog", "yes")], ["yes", "no"])
