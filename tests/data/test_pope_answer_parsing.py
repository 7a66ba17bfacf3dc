"""POPE's answer rule, checked against a table of tricky answers worked out by hand."""

import pytest

from vrp.data import parse_count_answer, parse_pope_answer

# (raw answer, what POPE's evaluate.py makes of it): first sentence, commas dropped, split on " ",
# "no" iff a word is exactly "No", "no" or "not".
POPE_TABLE = [
    ("Yes", "yes"),
    ("yes", "yes"),
    ("No", "no"),
    ("no", "no"),
    ("No.", "no"),
    ("NO", "yes"),  # upper case is not in POPE's word list
    ("No!", "yes"),  # the word is "No!", not "No"
    ("not sure", "no"),
    ("Not really", "yes"),  # "Not" is not in the list either
    ("Yes, there is.", "yes"),
    ("There is no dog", "no"),
    ("There is no dog in the image.", "no"),
    ("", "yes"),
    ("No, there is not.", "no"),
    ("Yes. No.", "yes"),  # only the first sentence counts
    ("There is a dog. It is not a cat.", "yes"),
    ("The dog is not.Yes", "no"),
    ("I do not see one", "no"),
    ("nope", "yes"),
    ("Yes, no doubt", "no"),
    ("no,dog", "yes"),  # dropping the comma glues the words: "nodog"
    ("no\n", "yes"),  # split(" ") keeps the newline on the word
    ("  no", "no"),  # empty words from leading spaces are harmless
    ("There are none", "yes"),
    ("Answer:no", "yes"),
]


@pytest.mark.parametrize(("raw", "expected"), POPE_TABLE, ids=[repr(r) for r, _ in POPE_TABLE])
def test_pope_rule_matches_table(raw: str, expected: str) -> None:
    assert parse_pope_answer(raw) == expected


def test_table_is_large_enough() -> None:
    assert len(POPE_TABLE) >= 15


COUNT_TABLE = [
    ("3", 3),
    ("three", 3),
    ("Three.", 3),
    ("There are 3.", 3),
    ("There are 3 red circles.", 3),
    ("10", 10),
    ("twelve", 12),
    ("zero", 0),
    ("I see 2 or 3", 2),
    ("No, there are two.", 2),
    ("There are no red circles.", 0),
    ("None", 0),
    ("", None),
    ("many", None),
    ("a lot of them", None),
]


@pytest.mark.parametrize(("raw", "expected"), COUNT_TABLE, ids=[repr(r) for r, _ in COUNT_TABLE])
def test_count_parser(raw: str, expected: int | None) -> None:
    assert parse_count_answer(raw) == expected
