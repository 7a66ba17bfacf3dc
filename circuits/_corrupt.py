"""Clean/corrupt pairs for activation patching, built from yes/no questions.

Two corruptions:

- "object": the object named in a POPE-style question ("Is there a red circle in the image?") is
  swapped for another, so that the true answer flips: an object the image does not contain when
  the answer was "yes", one it does contain when it was "no". What the image contains comes from
  the scene graph (synthetic data) or, for POPE files, from the other questions asked about the
  same image (POPE asks about present and absent objects of every image). The image is unchanged
  and only the object's words differ, so the two prompts line up token by token whenever the two
  objects take as many tokens.
- "noise": the question is unchanged and the image gets Gaussian pixel noise; the truth is the
  same, and the pair is informative only where the noise changes the model's answer.
- "remove": the object a "yes" question asks about is removed from the image (synthetic scenes
  only: its bounding box is painted with the median colour of the ring of pixels around it), so
  the true answer flips to "no" while the prompt is unchanged, token for token. Questions whose
  object is not alone in its box (several instances, an overlapping or occluded object) are
  skipped, as are "no" questions and images without a scene graph.

Which pairs a patching study can use is decided with the model (`patch_pairs`): the clean answer
must be right, the corrupted answer must differ from it, and the two prompts must have the same
token layout. Every random choice is seeded by (seed, kind, the question's split and id), so a
pair does not depend on which other questions are corrupted with it.
"""

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, TypeAlias

import numpy as np
from PIL import Image

from vrp import ConfigError, to_rgb
from vrp.data import Question, Sample
from vrp.pipeline import require_yes_no

from ._outcomes import question_key, seeded_rng

CorruptionKind: TypeAlias = Literal["object", "noise", "remove"]
KINDS: tuple[CorruptionKind, ...] = ("object", "noise", "remove")


@dataclass(frozen=True, kw_only=True)
class CorruptPair:
    """A question and its corrupted counterpart.

    Attributes:
      clean: the original sample.
      corrupt: the corrupted sample; its `answer` is its truth ("object": flipped; "noise": the
        clean truth, as the scene is the same) and its `category` the object it asks about.
      kind: "object" or "noise".
      change: what changed, e.g. "red circle -> blue square".
    """

    clean: Sample
    corrupt: Sample
    kind: CorruptionKind
    change: str


def corrupt_pairs(
    samples: Sequence[Sample],
    *,
    kind: CorruptionKind = "object",
    seed: int = 0,
    pool: Sequence[Question] | None = None,
    noise_std: float = 96.0,
) -> tuple[CorruptPair, ...]:
    """The corrupted counterpart of every sample that `kind` can corrupt, in order.

    "object" skips questions that do not name their category (`Question.category`) in their
    text, such as spatial questions, and questions for which no replacement object is known.

    Args:
      samples: yes/no questions.
      kind: "object" (swap the asked object so the answer flips), "noise" (noisy image) or
        "remove" (the asked object removed from a synthetic image, so "yes" becomes "no").
      seed: seeds the choice of replacement object and the noise.
      pool: every question known about the images (no pixels needed): where objects absent from
        a synthetic scene are drawn from, and what a POPE image contains. Default: `samples`.
      noise_std: standard deviation of the pixel noise, in 0..255 grey levels ("noise" only).

    Raises:
      ConfigError: an unknown kind, or a negative `noise_std`.
      DataError: a sample is not a yes/no question.
    """
    require_yes_no(samples, "Corrupt pairs")
    if kind not in KINDS or noise_std < 0:
        raise ConfigError(
            f"corrupt_pairs: kind must be one of {KINDS} and noise_std >= 0; got {kind!r} and "
            f"{noise_std}."
        )
    if kind == "noise":
        return tuple(_noisy(s, seed, noise_std) for s in samples)
    if kind == "remove":
        return tuple(p for p in map(_removed, samples) if p is not None)
    objects = _Objects(pool if pool is not None else samples)
    pairs = (_swapped(s, seed, objects) for s in samples)
    return tuple(p for p in pairs if p is not None)


def _noisy(sample: Sample, seed: int, std: float) -> CorruptPair:
    rng = seeded_rng(seed, "corrupt/noise", question_key(sample))
    pixels = np.asarray(to_rgb(sample.image), dtype=np.float64)
    noisy = np.clip(pixels + rng.normal(0.0, std, pixels.shape), 0, 255).round().astype(np.uint8)
    corrupt = dataclasses.replace(sample, image=Image.fromarray(noisy))
    return CorruptPair(clean=sample, corrupt=corrupt, kind="noise",
                       change=f"gaussian pixel noise, std {std:g}")  # fmt: skip


_RING = 3  # pixels around a box whose median colour paints a removed object


def _removed(sample: Sample) -> CorruptPair | None:
    scene = sample.scene
    if scene is None or sample.answer != "yes" or scene.count(sample.category) != 1:
        return None
    (target,) = [o for o in scene.objects if o.category == sample.category]
    others = [o for o in scene.objects if o is not target]
    if target.occluded or any(_overlap(target.bbox, o.bbox, _RING) for o in others):
        return None
    pixels = np.asarray(to_rgb(sample.image)).copy()
    x0, y0, x1, y1 = target.bbox
    h, w = pixels.shape[:2]
    outer = pixels[
        max(0, y0 - _RING) : min(h, y1 + 1 + _RING), max(0, x0 - _RING) : min(w, x1 + 1 + _RING)
    ]
    ring = np.ones(outer.shape[:2], dtype=bool)
    ring[y0 - max(0, y0 - _RING) : y1 + 1 - max(0, y0 - _RING),
         x0 - max(0, x0 - _RING) : x1 + 1 - max(0, x0 - _RING)] = False  # fmt: skip
    if not ring.any():
        return None
    pixels[y0 : y1 + 1, x0 : x1 + 1] = np.median(outer[ring], axis=0).round().astype(np.uint8)
    corrupt = dataclasses.replace(sample, image=Image.fromarray(pixels), answer="no")
    return CorruptPair(clean=sample, corrupt=corrupt, kind="remove",
                       change=f"{sample.category} removed from the image")  # fmt: skip


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int], margin: int) -> bool:
    """Whether box `b` comes within `margin` pixels of box `a` (inclusive pixel boxes)."""
    return not (b[2] < a[0] - margin or b[0] > a[2] + margin or b[3] < a[1] - margin
                or b[1] > a[3] + margin)  # fmt: skip


def _names(question: Question) -> bool:
    """Whether the question names its category, the form of POPE questions."""
    return _find(question.question, question.category) is not None


def _find(text: str, words: str) -> "re.Match[str] | None":
    return re.search(rf"\b{re.escape(words)}\b", text, flags=re.IGNORECASE)


class _Objects:
    """What each image contains and lacks, from scene graphs or from the questions asked."""

    def __init__(self, pool: Sequence[Question]) -> None:
        named = [q for q in pool if q.answer in ("yes", "no") and _names(q)]
        self.universe = frozenset(q.category for q in named)
        self.asked: dict[str, dict[str, set[str]]] = {}
        for q in named:
            self.asked.setdefault(q.image_name, {"yes": set(), "no": set()})[q.answer].add(
                q.category
            )

    def present_absent(self, sample: Sample) -> tuple[set[str], set[str]]:
        if sample.scene is not None:
            present = set(sample.scene.categories)
            return present, set(self.universe | {sample.category}) - present
        asked = self.asked.get(sample.image_name, {"yes": set(), "no": set()})
        present, absent = set(asked["yes"]), set(asked["no"])
        (present if sample.answer == "yes" else absent).add(sample.category)
        return present, absent - present


def _swapped(sample: Sample, seed: int, objects: _Objects) -> CorruptPair | None:
    found = _find(sample.question, sample.category)
    if found is None:
        return None
    present, absent = objects.present_absent(sample)
    choices = sorted((absent if sample.answer == "yes" else present) - {sample.category})
    if not choices:
        return None
    rng = seeded_rng(seed, "corrupt/object", question_key(sample))
    other = choices[int(rng.integers(len(choices)))]
    text = sample.question[: found.start()] + other + sample.question[found.end() :]
    flipped = "no" if sample.answer == "yes" else "yes"
    corrupt = dataclasses.replace(sample, question=text, answer=flipped, category=other)
    return CorruptPair(clean=sample, corrupt=corrupt, kind="object",
                       change=f"{sample.category} -> {other}")  # fmt: skip
