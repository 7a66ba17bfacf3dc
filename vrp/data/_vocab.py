"""The closed word vocabulary of the synthetic benchmarks.

Every question, answer and caption the generator writes is built from the words defined here, so a
word-level tokenizer built from `vocabulary` covers all of them. Text is split into tokens by
`split_words` (words, digit runs, and each punctuation mark on its own); use the same function in the
tokenizer so that "image?" becomes ``["image", "?"]`` on both sides.

Object categories are colour x shape pairs ("red circle"): on a 16 px patch a tiny model can tell
them apart, and the name is two words from small closed lists.
"""

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._config import SyntheticConfig

# Named colours and their RGB values: saturated, far apart, and all bright on a dark background.
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (230, 40, 40),
    "green": (40, 200, 60),
    "blue": (50, 110, 255),
    "yellow": (240, 220, 30),
    "purple": (170, 60, 230),
    "orange": (255, 140, 0),
    "cyan": (0, 215, 215),
    "white": (235, 235, 235),
    "pink": (255, 120, 190),
}

# Shape name -> plural; the drawing code lives in `_render.py`.
SHAPES: dict[str, str] = {
    "circle": "circles",
    "square": "squares",
    "triangle": "triangles",
    "cross": "crosses",
    "diamond": "diamonds",
    "ring": "rings",
}

NUMBER_WORDS: tuple[str, ...] = tuple(
    (
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
        "fifteen sixteen seventeen eighteen nineteen twenty"
    ).split()
)

# Spatial relation -> the words between the two object names ("Is the X left of the Y?").
RELATIONS: dict[str, str] = {
    "left": "left of",
    "right": "right of",
    "above": "above",
    "below": "below",
}

EMPTY = "empty"
"""Caption word for a grid cell without an object."""

CAPTION_SEPARATOR = ","

_TOKEN = re.compile(r"[A-Za-z]+|\d+|[^\sA-Za-z\d]")


def split_words(text: str) -> list[str]:
    """Splits text into word tokens: letter runs, digit runs, and single punctuation marks.

    Args:
      text: a question, answer or caption.

    Returns:
      The tokens in order, e.g. ``"Is there a red circle in the image?"`` gives
      ``["Is", "there", "a", "red", "circle", "in", "the", "image", "?"]``.
    """
    return _TOKEN.findall(text)


def article(noun_phrase: str) -> str:
    """Returns "an" before a vowel sound ("an orange circle") and "a" otherwise."""
    return "an" if noun_phrase[:1].lower() in "aeiou" else "a"


def plural(category: str) -> str:
    """Plural of a colour-shape category: "red cross" -> "red crosses"."""
    colour, shape = category.split(" ")
    return f"{colour} {SHAPES[shape]}"


def pope_question(category: str) -> str:
    """POPE's question template, word for word: "Is there a <object> in the image?"."""
    return f"Is there {article(category)} {category} in the image?"


def counting_question(category: str) -> str:
    """Counting template: "How many <objects> are there?"."""
    return f"How many {plural(category)} are there?"


def spatial_question(subject: str, relation: str, reference: str) -> str:
    """Spatial template: "Is the <subject> <left of|right of|above|below> the <reference>?"."""
    return f"Is the {subject} {RELATIONS[relation]} the {reference}?"


_TEMPLATE_WORDS = (
    "Is there a an in the image ? How many are left of right above below yes no "
    f"{EMPTY} {CAPTION_SEPARATOR}"
)


def vocabulary(config: "SyntheticConfig | None" = None) -> tuple[str, ...]:
    """Every token a generated question, answer or caption can contain, sorted.

    Build a word-level tokenizer from this list and split text with `split_words`. The list covers
    the templates, "yes" / "no", the count answers 0..``max_objects`` (as digits), the caption words
    ("empty", ","), and the colours, shapes and plural shapes of the config's categories.

    Args:
      config: the generator config; the default `SyntheticConfig()` if None.

    Returns:
      The sorted, duplicate-free tokens.

    Raises:
      ConfigError: `config` is not a `SyntheticConfig`.
    """
    from ..core import ConfigError
    from ._config import SyntheticConfig

    config = config if config is not None else SyntheticConfig()
    if not isinstance(config, SyntheticConfig):
        raise ConfigError(
            f"config must be a vrp.data.SyntheticConfig or None; got {type(config).__name__}. "
            "Read a benchmark's config with load_config(folder)."
        )
    words = set(_TEMPLATE_WORDS.split())
    words.update(config.colours)
    words.update(config.shapes)
    words.update(SHAPES[s] for s in config.shapes)
    words.update(str(i) for i in range(config.max_objects + 1))
    return tuple(sorted(words))
