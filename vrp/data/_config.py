"""Configuration of the synthetic POPE / counting / spatial generator, and its theme design.

Scenes are drawn from themes. A theme is a weighted subset of the categories; most objects of a
scene come from its theme, so categories of one theme co-occur far more often than chance. Themes
overlap and weight their members by rank (Zipf), so a few categories are frequent overall. This is
what makes POPE's three negative-sampling strategies differ: "popular" picks frequent categories,
"adversarial" picks categories from the scene's own theme, "random" picks any absent category.
"""

import dataclasses
import itertools
import math
from dataclasses import dataclass, field

import numpy as np

from ..core import ConfigError
from ._vocab import PALETTE, SHAPES

MAX_IMAGE_SIZE = 4096
_THEME_PERMUTATION_SEED = 20240601  # fixed: the theme design is part of the benchmark, not the seed


@dataclass(frozen=True, kw_only=True)
class Theme:
    """A scene type: the categories it favours and their relative weights."""

    name: str
    members: tuple[str, ...]  # category names, e.g. ("red circle", "blue cross", ...)
    weights: tuple[float, ...]  # unnormalised draw weights, one per member


@dataclass(frozen=True, kw_only=True)
class SyntheticConfig:
    """Every parameter of a synthetic benchmark; the same config and seed give the same bytes.

    The defaults suit tiny VLMs trained on CPU: 64x64 images on a 4x4 grid of 16 px cells (one
    ViT patch per cell), a dark background, 16 colour x shape categories. For real VLMs raise
    `image_size` (224, 336, ...) and keep `grid` at 4-6.
    """

    seed: int = 0
    n_per_split: int = 3000  # questions per POPE split (random / popular / adversarial), even
    n_counting: int = 1000  # counting questions ("How many X are there?")
    n_spatial: int = 1000  # spatial questions ("Is the X left of the Y?"), even (balanced)
    positives_per_scene: int = 3  # POPE: 3 present objects asked per image, plus 3 absent ones
    image_size: int = 64  # pixels, square
    grid: int = 4  # grid x grid cells, at most one object per cell
    colours: tuple[str, ...] = ("red", "green", "blue", "yellow")  # keys of PALETTE
    shapes: tuple[str, ...] = ("circle", "square", "triangle", "cross")  # keys of SHAPES
    n_themes: int = 4
    theme_size: int = 6  # categories per theme; themes overlap when n_themes*theme_size > |vocab|
    in_theme_prob: float = 0.85  # chance an object comes from the scene's theme (else any category)
    min_objects: int = 3
    max_objects: int = 6
    repeat_prob: float = 0.3  # chance an extra object repeats a category already present (counting)
    size_range: tuple[float, float] = (0.6, 1.2)  # object side as a fraction of the cell side
    small_prob: float = 0.1  # hard case: object drawn at 0.3-0.45 of the cell side
    jitter: float = 0.15  # max centre offset from the cell centre, fraction of the cell side
    noise_std: float = 10.0  # Gaussian pixel noise (0-255 scale)
    n_distractors: int = 3  # grey clutter strokes per image
    background: tuple[int, int, int] = field(default=(18, 18, 26))  # dark, RGB

    def __post_init__(self) -> None:
        _check_types(self)
        _check_geometry(self)
        _check_vocabulary(self)
        _check_counts(self)

    @property
    def categories(self) -> tuple[str, ...]:
        """Category names, colour-major: "red circle", "red square", ..., "yellow cross"."""
        return tuple(f"{c} {s}" for c, s in itertools.product(self.colours, self.shapes))

    @property
    def cell(self) -> float:
        """Side of one grid cell in pixels."""
        return self.image_size / self.grid

    def themes(self) -> tuple[Theme, ...]:
        """The theme design for this vocabulary (independent of `seed`); see the module docstring."""
        return build_themes(self.categories, self.n_themes, self.theme_size)


def build_themes(categories: tuple[str, ...], n_themes: int, theme_size: int) -> tuple[Theme, ...]:
    """Overlapping themes: evenly spaced windows over a fixed shuffle of the categories.

    Theme ``t`` takes ``theme_size`` consecutive categories starting at ``t * len / n_themes`` in a
    fixed permutation (so a theme mixes colours and shapes); member ``r`` has weight ``1 / (r + 1)``.

    Args:
      categories: all category names.
      n_themes: number of themes.
      theme_size: members per theme, at most ``len(categories)``.

    Returns:
      The themes, named "theme_0", "theme_1", ...
    """
    order = np.random.default_rng(_THEME_PERMUTATION_SEED).permutation(len(categories))
    shuffled = [categories[i] for i in order]
    themes = []
    for t in range(n_themes):
        start = (t * len(categories)) // n_themes
        members = tuple(shuffled[(start + r) % len(shuffled)] for r in range(theme_size))
        weights = tuple(1.0 / (r + 1) for r in range(theme_size))
        themes.append(Theme(name=f"theme_{t}", members=members, weights=weights))
    return tuple(themes)


_REALS = ("in_theme_prob", "repeat_prob", "small_prob", "jitter", "noise_std")
_NAMES = ("colours", "shapes")


def _check_types(config: SyntheticConfig) -> None:
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if f.name in _REALS:
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            ok = ok and math.isfinite(value)
            expected = "a finite number"
        elif f.name in _NAMES:
            ok = isinstance(value, tuple) and all(isinstance(n, str) for n in value)
            expected = 'a tuple of names, e.g. ("red", "blue")'
        elif f.name in ("size_range", "background"):
            continue
        else:
            ok = isinstance(value, int) and not isinstance(value, bool)
            expected = "an integer"
        if not ok:
            raise ConfigError(
                f"{f.name} must be {expected}; got {value!r:.60}. Pass {f.name}= such a value."
            )
    if config.seed < 0:
        raise ConfigError(
            f"seed must be >= 0 (numpy seeds its generators from non-negative integers); got "
            f"{config.seed}. Pass e.g. seed=0."
        )
    _check_pair("size_range", config.size_range, 2, "fractions of the cell side, e.g. (0.6, 1.2)")
    _check_pair("background", config.background, 3, "an RGB colour, e.g. (18, 18, 26)")
    if not all(isinstance(v, int) and 0 <= v <= 255 for v in config.background):
        raise ConfigError(
            f"background must be three integers in 0..255 (RGB), e.g. (18, 18, 26); got "
            f"{config.background!r}."
        )


def _check_pair(name: str, value: object, n: int, what: str) -> None:
    items = value if isinstance(value, tuple) and len(value) == n else ()
    finite = all(
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in items
    )
    if not items or not finite:
        raise ConfigError(
            f"{name} must be a tuple of {n} finite numbers, {what}; got {value!r:.60}."
        )


def _check_vocabulary(config: SyntheticConfig) -> None:
    for kind, names, known in (
        ("colour", config.colours, PALETTE),
        ("shape", config.shapes, SHAPES),
    ):
        unknown = [n for n in names if n not in known]
        if unknown or len(set(names)) != len(names) or not names:
            raise ConfigError(
                f"{kind}s must be distinct names from {', '.join(known)}; got {names!r}. "
                f"Unknown: {unknown!r}. Pick {kind}s from the list (each at most once)."
            )
    n_cat = len(config.categories)
    if not 1 <= config.positives_per_scene <= config.theme_size <= n_cat or config.n_themes < 1:
        raise ConfigError(
            f"need n_themes >= 1 and 1 <= positives_per_scene <= theme_size <= {n_cat} (the "
            f"number of categories); got positives_per_scene={config.positives_per_scene}, "
            f"n_themes={config.n_themes}, theme_size={config.theme_size}. Lower "
            "positives_per_scene or theme_size, or add colours or shapes."
        )


def _check_counts(config: SyntheticConfig) -> None:
    if config.n_per_split < 2 or config.n_per_split % 2:
        raise ConfigError(
            f"n_per_split must be even and >= 2 (half yes, half no); got {config.n_per_split}. "
            "Pass an even count, e.g. 300."
        )
    if config.n_spatial < 0 or config.n_spatial % 2 or config.n_counting < 0:
        raise ConfigError(
            f"n_spatial must be even and >= 0 (half yes, half no) and n_counting >= 0; got "
            f"n_spatial={config.n_spatial}, n_counting={config.n_counting}. Pass 0 to skip a "
            "split."
        )
    cells = config.grid * config.grid
    if not config.positives_per_scene <= config.min_objects <= config.max_objects <= cells:
        raise ConfigError(
            "need positives_per_scene <= min_objects <= max_objects <= grid*grid; got "
            f"{config.positives_per_scene}, {config.min_objects}, {config.max_objects}, {cells}. "
            "Each scene must hold enough distinct objects to ask about, one per cell."
        )
    if len(config.categories) - config.max_objects < config.positives_per_scene:
        raise ConfigError(
            f"{len(config.categories)} categories leave too few absent ones: a scene with "
            f"max_objects={config.max_objects} needs {config.positives_per_scene} absent categories "
            "for its negative questions. Add colours or shapes, or lower max_objects."
        )


def _check_geometry(config: SyntheticConfig) -> None:
    if not 1 <= config.grid <= config.image_size // 8:
        raise ConfigError(
            f"cells must be at least 8 px: image_size={config.image_size} on a grid of "
            f"{config.grid} cells per side is not possible. Pass grid >= 1 and image_size >= "
            "8 * grid (e.g. image_size=64, grid=4)."
        )
    if config.image_size > MAX_IMAGE_SIZE:
        raise ConfigError(
            f"image_size must be at most {MAX_IMAGE_SIZE} px (one image of that side already "
            f"takes hundreds of MB while drawn); got {config.image_size}. VLMs resize images to "
            "224-448 px: pass e.g. image_size=336."
        )
    low, high = config.size_range
    probs = (config.in_theme_prob, config.repeat_prob, config.small_prob)
    if not 0.2 <= low <= high <= 1.5 or not all(0.0 <= p <= 1.0 for p in probs):
        raise ConfigError(
            f"size_range must satisfy 0.2 <= low <= high <= 1.5 (got {config.size_range}) and "
            f"in_theme_prob, repeat_prob, small_prob must lie in [0, 1] (got {probs}). Pass "
            "values in these ranges."
        )
    if not 0.0 <= config.jitter <= 0.5 or config.noise_std < 0 or config.n_distractors < 0:
        raise ConfigError(
            f"need 0 <= jitter <= 0.5, noise_std >= 0, n_distractors >= 0; got {config.jitter}, "
            f"{config.noise_std}, {config.n_distractors}. Pass values in these ranges."
        )
