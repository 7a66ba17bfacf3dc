"""Self-consistency on hand-written answer lists."""

import math

import numpy as np
import pytest

from vrp.core import ShapeError
from vrp.signals import agreement_precision, normalise_answer, self_consistency


def test_normalise_answer() -> None:
    assert normalise_answer("  Yes, it IS. ") == "yes it is"
    assert normalise_answer("Two\tcats!\n") == "two cats"
    assert normalise_answer("«Non», dit-il…") == "non ditil"
    assert normalise_answer("...") == ""


def test_majority_share_and_agreement() -> None:
    result = self_consistency(["Yes.", "yes", "No", " YES "])
    assert result.score == 0.75 and result.majority == "yes" and not result.all_agree
    assert result.counts == (("yes", 3), ("no", 1)) and result.k == 4
    same = self_consistency(["A red car.", "a  red car", "A RED CAR!"])
    assert same.score == 1.0 and same.all_agree and same.majority == "a red car"


def test_ties_go_to_the_first_answer() -> None:
    assert self_consistency(["no", "Yes", "yes", "No"]).majority == "no"
    assert self_consistency(["Yes", "no", "yes", "No"]).majority == "yes"
    assert self_consistency(["a", "b", "c"]).score == pytest.approx(1 / 3)


def test_parse_runs_on_the_raw_text_before_normalising() -> None:
    def first_sentence_has_not(text: str) -> str:  # a stand-in for the POPE parser
        return "No" if "not" in text.split(".")[0].split() else "Yes"

    answers = ["Yes. It is not hidden.", "There is not one.", "Yes, there is."]
    result = self_consistency(answers, parse=first_sentence_has_not)
    assert result.counts == (("yes", 2), ("no", 1))


def test_agreement_precision() -> None:
    results = [
        self_consistency(["yes", "yes"]),
        self_consistency(["no", "no"]),
        self_consistency(["no", "yes"]),
    ]
    precision = agreement_precision(results, [True, False, True])
    assert precision.precision == 0.5 and precision.n_agree == 2 and precision.n == 3
    assert precision.coverage == pytest.approx(2 / 3)
    from_numpy = agreement_precision(results, np.array([True, True, False]))
    assert from_numpy.precision == 1.0
    none_agree = agreement_precision(results[2:], [True])
    assert math.isnan(none_agree.precision) and none_agree.n_agree == 0


def test_errors() -> None:
    with pytest.raises(ShapeError, match=r"got one string. Wrap it in a list"):
        self_consistency("yes")
    with pytest.raises(ShapeError, match="at least one answer, but it is empty"):
        self_consistency([])
    with pytest.raises(ShapeError, match="got 1 labels for 2 results"):
        agreement_precision([self_consistency(["a"])] * 2, [True])
