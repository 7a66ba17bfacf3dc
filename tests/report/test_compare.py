"""`vrp compare`: paired differences on shared questions, checked against recomputations that
use neither scipy nor statsmodels, on planted data with known answers."""

import math
from pathlib import Path

import numpy as np
import pytest

from vrp.core import DataError
from vrp.report import ReportFiles, compare_runs
from vrp.report._paired import auroc_difference

from .markdown import tables
from .planted import accuracy_result, accuracy_rows, planted_run


def mcnemar_by_hand(gained: int, lost: int) -> float:
    """Exact two-sided McNemar p: twice the smaller binomial tail of the discordant pairs."""
    n = gained + lost
    tail = sum(math.comb(n, i) for i in range(min(gained, lost) + 1)) / 2**n
    return min(1.0, 2 * tail)


def _pair(tmp_path: Path, correct_a: list[bool], correct_b: list[bool]) -> tuple[Path, Path]:
    runs = []
    for name, correct in (("a", correct_a), ("b", correct_b)):
        result = {"m/llava": {"accuracy": accuracy_result({"random": float(np.mean(correct))},
                                                          len(correct))}}  # fmt: skip
        runs.append(planted_run(tmp_path / name, result,
                                {"accuracy": accuracy_rows("m/llava", "random", correct)}))  # fmt: skip
    return runs[0], runs[1]


def test_mcnemar_on_shared_questions_equals_the_exact_binomial_by_hand(tmp_path: Path) -> None:
    # 30 questions: 12 right in both, 7 right only in B, 2 right only in A, 9 wrong in both
    a = [True] * 12 + [False] * 7 + [True] * 2 + [False] * 9
    b = [True] * 12 + [True] * 7 + [False] * 2 + [False] * 9
    run_a, run_b = _pair(tmp_path, a, b)
    files = compare_runs(run_a, run_b, tmp_path / "c.html")
    (row,) = tables(files.markdown)["Accuracy on the shared questions, B - A"]
    assert row["shared questions"] == "30"
    assert row["accuracy A"] == f"{14 / 30:.3f}" and row["accuracy B"] == f"{19 / 30:.3f}"
    assert row["B - A [95% CI]"].startswith(f"{5 / 30:+.3f} [")
    assert row["exact McNemar p"] == f"{mcnemar_by_hand(7, 2):.2g}" == "0.18"
    assert mcnemar_by_hand(7, 2) == pytest.approx(92 / 512)


def test_only_shared_questions_are_paired(tmp_path: Path) -> None:
    run_a, run_b = _pair(tmp_path, [True] * 10 + [False] * 5, [False] * 10)
    (row,) = tables(compare_runs(run_a, run_b, tmp_path / "c.html").markdown)[
        "Accuracy on the shared questions, B - A"
    ]
    assert row["shared questions"] == "10"  # B asked only the first 10 of A's 15 questions
    assert row["exact McNemar p"] == f"{mcnemar_by_hand(0, 10):.2g}"


def test_runs_that_asked_other_questions_under_one_id_are_refused(tmp_path: Path) -> None:
    rows_a = accuracy_rows("m/llava", "random", [True] * 4, labels=["yes", "no", "yes", "no"])
    rows_b = accuracy_rows("m/llava", "random", [True] * 4, labels=["no", "no", "yes", "no"])
    result = {"m/llava": {"accuracy": accuracy_result({"random": 1.0}, 4)}}
    a = planted_run(tmp_path / "a", result, {"accuracy": rows_a})
    b = planted_run(tmp_path / "b", result, {"accuracy": rows_b})
    with pytest.raises(DataError, match=r"1 of 4 shared questions differ.*'random' question 1 "
                       r"has label 'yes' in run A and 'no' in run B"):  # fmt: skip
        compare_runs(a, b, tmp_path / "c.html")


def test_auroc_difference_of_a_perfect_and_an_inverted_signal() -> None:
    labels = [0, 0, 0, 1, 1, 1] * 5
    perfect = [float(y) + 0.01 * i for i, y in enumerate(labels)]
    inverted = [-s for s in perfect]
    diff = auroc_difference(perfect, labels, inverted, labels, n_resamples=500)
    assert diff.estimate == pytest.approx(-1.0) and diff.n == 30
    assert diff.ci_low == pytest.approx(-1.0) and diff.ci_high == pytest.approx(-1.0)
    assert diff.p_value == 0.0
    same = auroc_difference(perfect, labels, perfect, labels, n_resamples=500)
    assert (same.estimate, same.ci_low, same.ci_high, same.p_value) == (0.0, 0.0, 0.0, 1.0)


def test_auroc_difference_uses_each_runs_own_labels() -> None:
    rng = np.random.default_rng(0)
    labels_a = rng.integers(0, 2, 200)
    labels_b = 1 - labels_a  # run B answers the opposite questions right
    scores = labels_a + rng.normal(0, 0.5, 200)
    diff = auroc_difference(scores, labels_a, scores, labels_b, n_resamples=500, seed=1)
    by_rank = _auroc_by_pairs(scores, labels_b) - _auroc_by_pairs(scores, labels_a)
    assert diff.estimate == pytest.approx(by_rank)
    assert diff.ci_low < diff.estimate < diff.ci_high < 0


def _auroc_by_pairs(scores: np.ndarray, labels: np.ndarray) -> float:
    pos, neg = scores[labels == 1], scores[labels == 0]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(wins / (pos.size * neg.size))


def test_a_run_compared_with_itself_differs_by_nothing(tiny_run: Path, tmp_path: Path) -> None:
    files: ReportFiles = compare_runs(tiny_run, tiny_run, tmp_path / "self.html")
    found = tables(files.markdown)
    assert {"Accuracy on the shared questions, B - A", "Signal AUROC for correctness, B - A",
            "Best probe layer and its held-out AUROC",
            "Accuracy under each intervention, B - A"} <= set(found)  # fmt: skip
    for row in found["Accuracy on the shared questions, B - A"]:
        assert row["accuracy A"] == row["accuracy B"] and row["exact McNemar p"] == "1"
    for row in found["Signal AUROC for correctness, B - A"]:
        assert row["B - A on shared questions [95% CI]"] in ("+0.000 [+0.000, +0.000]", "undefined")
    assert "<script" not in files.html.read_text()
