"""Scene graphs: which object sits in which grid cell, how big, in what colour; and how to draw one.

A scene is pure data (JSON-serialisable); `render_scene` turns it into pixels deterministically, so
an in-memory benchmark can hold scenes and draw images only when a sample is read.
"""

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._config import SyntheticConfig, Theme
from ._vocab import CAPTION_SEPARATOR, EMPTY, PALETTE

_SMALL_RANGE = (0.3, 0.45)  # side of a "small" hard-case object, fraction of the cell side
_FILL_JITTER = 20  # per-channel colour jitter, so a colour is a cluster rather than one RGB value


@dataclass(frozen=True, kw_only=True)
class SceneObject:
    """One object of a scene graph."""

    category: str  # "<colour> <shape>"
    colour: str
    shape: str
    cell: tuple[int, int]  # (row, column) of the grid cell holding the object's centre
    bbox: tuple[int, int, int, int]  # (x0, y0, x1, y1) pixels, inclusive, clipped to the image
    size: int  # side in pixels before clipping
    fill: tuple[int, int, int]  # RGB actually drawn (palette colour plus jitter)
    small: bool  # hard case: drawn at under half the cell side
    occluded: bool  # an object drawn later overlaps this one's bounding box


@dataclass(frozen=True, kw_only=True)
class Scene:
    """A scene graph: objects in drawing order (largest first), plus what is needed to render it."""

    scene_id: int
    image: str  # file name of the rendered image, e.g. "scene_000007.png"
    theme: str
    image_size: int
    grid: int
    noise_seed: int  # seeds the background tint, clutter and pixel noise
    objects: tuple[SceneObject, ...]

    @property
    def categories(self) -> frozenset[str]:
        """Categories present at least once."""
        return frozenset(o.category for o in self.objects)

    def count(self, category: str) -> int:
        """Number of objects of `category` in the scene (0 if absent)."""
        return sum(o.category == category for o in self.objects)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; `Scene.from_dict` inverts it."""
        return {
            "scene_id": self.scene_id,
            "image": self.image,
            "theme": self.theme,
            "image_size": self.image_size,
            "grid": self.grid,
            "noise_seed": self.noise_seed,
            "objects": [
                {
                    "category": o.category,
                    "colour": o.colour,
                    "shape": o.shape,
                    "cell": list(o.cell),
                    "bbox": list(o.bbox),
                    "size": o.size,
                    "fill": list(o.fill),
                    "small": o.small,
                    "occluded": o.occluded,
                }
                for o in self.objects
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Scene":
        """Rebuilds a scene written by `to_dict`."""
        objects = tuple(
            SceneObject(
                category=o["category"],
                colour=o["colour"],
                shape=o["shape"],
                cell=(int(o["cell"][0]), int(o["cell"][1])),
                bbox=(int(o["bbox"][0]), int(o["bbox"][1]), int(o["bbox"][2]), int(o["bbox"][3])),
                size=int(o["size"]),
                fill=(int(o["fill"][0]), int(o["fill"][1]), int(o["fill"][2])),
                small=bool(o["small"]),
                occluded=bool(o["occluded"]),
            )
            for o in data["objects"]
        )
        fields = ("scene_id", "image_size", "grid", "noise_seed")
        ints = {k: int(data[k]) for k in fields}
        return cls(image=str(data["image"]), theme=str(data["theme"]), objects=objects, **ints)


def scene_caption(scene: Scene) -> str:
    """Lists each grid cell's object, or "empty", in reading order, separated by " , ".

    Args:
      scene: the scene to describe.

    Returns:
      e.g. ``"red circle , empty , blue square , ..."`` with ``grid * grid`` entries; every token is
      in `vocabulary()`.
    """
    by_cell = {o.cell: o.category for o in scene.objects}
    cells = [(r, c) for r in range(scene.grid) for c in range(scene.grid)]
    return f" {CAPTION_SEPARATOR} ".join(by_cell.get(cell, EMPTY) for cell in cells)


def sample_scene(
    config: SyntheticConfig, theme: Theme, scene_id: int, rng: np.random.Generator
) -> Scene:
    """Draws one scene of `theme`: categories first, then cells, sizes, positions and colours.

    The first ``positives_per_scene`` objects are distinct categories (POPE asks about that many
    present objects); further objects repeat a present category with ``repeat_prob`` (so counting
    questions have answers above 1) or are drawn like the first ones.

    Args:
      config: the generator config.
      theme: the scene's theme.
      scene_id: index of the scene, used for its image name.
      rng: the random stream; the scene depends on nothing else.

    Returns:
      The scene, objects in drawing order (largest first).
    """
    categories = _draw_categories(config, theme, rng)
    cells = rng.choice(config.grid * config.grid, size=len(categories), replace=False)
    placed = [
        _place(config, cat, int(cell), rng) for cat, cell in zip(categories, cells, strict=True)
    ]
    placed.sort(key=lambda o: -o.size)  # small objects drawn last stay visible
    objects = tuple(_with_occlusion(o, placed[i + 1 :]) for i, o in enumerate(placed))
    return Scene(
        scene_id=scene_id,
        image=f"scene_{scene_id:06d}.png",
        theme=theme.name,
        image_size=config.image_size,
        grid=config.grid,
        noise_seed=int(rng.integers(2**31)),
        objects=objects,
    )


def _draw_categories(config: SyntheticConfig, theme: Theme, rng: np.random.Generator) -> list[str]:
    all_cats = config.categories
    mix = np.full(len(all_cats), (1.0 - config.in_theme_prob) / len(all_cats))
    theme_w = np.asarray(theme.weights) / np.sum(theme.weights)
    for member, w in zip(theme.members, theme_w, strict=True):
        mix[all_cats.index(member)] += config.in_theme_prob * w
    mix /= mix.sum()
    n_objects = int(rng.integers(config.min_objects, config.max_objects + 1))
    first = rng.choice(len(all_cats), size=config.positives_per_scene, replace=False, p=mix)
    chosen = [all_cats[int(i)] for i in first]
    present = sorted(set(chosen))
    while len(chosen) < n_objects:
        if rng.random() < config.repeat_prob:
            chosen.append(present[int(rng.integers(len(present)))])
            continue
        # the config check (max_objects + positives_per_scene <= categories) keeps enough absent
        chosen.append(all_cats[int(rng.choice(len(all_cats), p=mix))])
    return chosen


def _place(
    config: SyntheticConfig, category: str, cell: int, rng: np.random.Generator
) -> SceneObject:
    row, col = divmod(cell, config.grid)
    small = bool(rng.random() < config.small_prob)
    low, high = _SMALL_RANGE if small else config.size_range
    side = float(rng.uniform(low, high)) * config.cell
    cx = (col + 0.5 + rng.uniform(-config.jitter, config.jitter)) * config.cell
    cy = (row + 0.5 + rng.uniform(-config.jitter, config.jitter)) * config.cell
    last = config.image_size - 1
    x0, y0 = (max(0, round(v - side / 2)) for v in (cx, cy))
    x1, y1 = (min(last, round(v + side / 2)) for v in (cx, cy))
    colour, shape = category.split(" ")
    jitter = rng.integers(-_FILL_JITTER, _FILL_JITTER + 1, size=3)
    fill = tuple(int(np.clip(v + j, 0, 255)) for v, j in zip(PALETTE[colour], jitter, strict=True))
    return SceneObject(
        category=category,
        colour=colour,
        shape=shape,
        cell=(row, col),
        bbox=(x0, y0, x1, y1),
        size=max(3, round(side)),
        fill=(fill[0], fill[1], fill[2]),
        small=small,
        occluded=False,
    )


def _with_occlusion(obj: SceneObject, above: list[SceneObject]) -> SceneObject:
    x0, y0, x1, y1 = obj.bbox
    hit = any(
        a[0] <= x1 and x0 <= a[2] and a[1] <= y1 and y0 <= a[3] for a in (o.bbox for o in above)
    )
    return dataclasses.replace(obj, occluded=True) if hit else obj
