"""Turning free-text model answers into labels.

`parse_pope_answer` is POPE's own rule, reproduced exactly (including its quirks: "NO" and "No!"
count as "yes", "not sure" counts as "no"), so numbers stay comparable with published POPE results.
"""

import re
from typing import Literal

from ..core import DataError
from ._vocab import NUMBER_WORDS

_NUMBER_TOKEN = re.compile(r"\d+|[a-z]+")
_NUMBER_VALUES = {word: value for value, word in enumerate(NUMBER_WORDS)}
_ZERO_WORDS = ("no", "none", "nothing")


def parse_pope_answer(text: str) -> Literal["yes", "no"]:
    """POPE's answer rule (``evaluate.py`` of the POPE repository), step for step.

    Keep the text before the first ".", drop commas, split on single spaces; the answer is "no"
    if any word is exactly "No", "no" or "not", and "yes" otherwise (the empty string included).

    Args:
      text: a model's raw answer.

    Returns:
      "yes" or "no".

    Raises:
      DataError: `text` is not a string.
    """
    _check_text(text)
    if "." in text:
        text = text.split(".")[0]
    words = text.replace(",", "").split(" ")
    return "no" if ("No" in words or "no" in words or "not" in words) else "yes"


def parse_count_answer(text: str) -> int | None:
    """The first count in a counting answer: a digit run ("3", "There are 3.") or a number word
    ("three", "Three."), case-insensitive, zero to twenty.

    Without any number, "no" / "none" / "nothing" ("There are no red circles.") give 0.

    Args:
      text: a model's raw answer.

    Returns:
      The count, or None if the text holds no number.

    Raises:
      DataError: `text` is not a string.
    """
    _check_text(text)
    tokens = _NUMBER_TOKEN.findall(text.lower())
    for token in tokens:
        if token.isdigit():
            return int(token)
        if token in _NUMBER_VALUES:
            return _NUMBER_VALUES[token]
    return 0 if any(t in _ZERO_WORDS for t in tokens) else None


def _check_text(text: object) -> None:
    if not isinstance(text, str):
        raise DataError(
            f"expected a model's raw answer as a string; got {type(text).__name__} {text!r:.40}. "
            "Pass '' for a missing answer."
        )
