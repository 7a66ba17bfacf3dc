"""Draws a scene graph with Pillow: dark tinted background, clutter strokes, objects, pixel noise.

Rendering depends only on the scene (its objects and ``noise_seed``) and on the config's render
parameters, so the same scene always gives the same pixels and the same PNG bytes.
"""

from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw

from ._config import SyntheticConfig
from ._scene import Scene

_TINT = 6  # per-channel background tint range, so backgrounds vary slightly between images
_TEXTURE_CELLS = 5  # low-frequency texture: a 5x5 random field upsampled over the image
_CLUTTER_GREY = (45, 95)  # grey levels of clutter strokes: visible but never object-coloured

Box = tuple[int, int, int, int]


def render_scene(scene: Scene, config: SyntheticConfig) -> Image.Image:
    """Draws `scene` as an RGB image of ``scene.image_size`` pixels square.

    Args:
      scene: the scene graph.
      config: supplies the background colour, clutter count and noise level.

    Returns:
      The image (mode "RGB").
    """
    rng = np.random.default_rng(scene.noise_seed)
    size = scene.image_size
    tint = rng.integers(-_TINT, _TINT + 1, size=3)
    background = tuple(
        int(np.clip(b + t, 0, 255)) for b, t in zip(config.background, tint, strict=True)
    )
    image = Image.new("RGB", (size, size), (background[0], background[1], background[2]))
    draw = ImageDraw.Draw(image)
    _draw_clutter(draw, size, scene.image_size / scene.grid, config.n_distractors, rng)
    for obj in scene.objects:
        _SHAPES[obj.shape](draw, obj.bbox, obj.fill)
    return _add_noise(image, config.noise_std, rng)


def _draw_clutter(
    draw: ImageDraw.ImageDraw, size: int, cell: float, n: int, rng: np.random.Generator
) -> None:
    width = max(1, size // 64)
    for _ in range(n):
        x, y = rng.uniform(0, size, size=2)
        angle = rng.uniform(0, np.pi)
        length = rng.uniform(0.5, 1.5) * cell
        end = (x + length * np.cos(angle), y + length * np.sin(angle))
        grey = int(rng.integers(*_CLUTTER_GREY))
        draw.line([(float(x), float(y)), (float(end[0]), float(end[1]))], (grey,) * 3, width)


def _add_noise(image: Image.Image, std: float, rng: np.random.Generator) -> Image.Image:
    size = image.size[0]
    field = rng.normal(0.0, 1.0, size=(_TEXTURE_CELLS, _TEXTURE_CELLS)).astype(np.float32)
    smooth = Image.fromarray(field).resize((size, size), Image.Resampling.BILINEAR)  # mode "F"
    texture = np.asarray(smooth, dtype=np.float64)[:, :, None]
    pixels = np.asarray(image, dtype=np.float64)
    noisy = pixels + (0.5 * std) * texture + rng.normal(0.0, std, size=pixels.shape)
    return Image.fromarray(np.clip(np.rint(noisy), 0, 255).astype(np.uint8))  # HxWx3 -> RGB


def _circle(draw: ImageDraw.ImageDraw, box: Box, fill: tuple[int, int, int]) -> None:
    draw.ellipse(box, fill=fill)


def _square(draw: ImageDraw.ImageDraw, box: Box, fill: tuple[int, int, int]) -> None:
    x0, y0, x1, y1 = box
    inset = round(0.08 * (x1 - x0))  # a full-box square looks much heavier than the circle
    draw.rectangle((x0 + inset, y0 + inset, x1 - inset, y1 - inset), fill=fill)


def _triangle(draw: ImageDraw.ImageDraw, box: Box, fill: tuple[int, int, int]) -> None:
    x0, y0, x1, y1 = box
    draw.polygon([((x0 + x1) / 2, y0), (x1, y1), (x0, y1)], fill=fill)


def _cross(draw: ImageDraw.ImageDraw, box: Box, fill: tuple[int, int, int]) -> None:
    x0, y0, x1, y1 = box
    half = max(1.0, (x1 - x0) / 6)
    mx, my = (x0 + x1) / 2, (y0 + y1) / 2
    draw.rectangle((mx - half, y0, mx + half, y1), fill=fill)
    draw.rectangle((x0, my - half, x1, my + half), fill=fill)


def _diamond(draw: ImageDraw.ImageDraw, box: Box, fill: tuple[int, int, int]) -> None:
    x0, y0, x1, y1 = box
    mx, my = (x0 + x1) / 2, (y0 + y1) / 2
    draw.polygon([(mx, y0), (x1, my), (mx, y1), (x0, my)], fill=fill)


def _ring(draw: ImageDraw.ImageDraw, box: Box, fill: tuple[int, int, int]) -> None:
    draw.ellipse(box, outline=fill, width=max(1, round((box[2] - box[0]) / 5)))


_SHAPES: dict[str, Callable[[ImageDraw.ImageDraw, Box, tuple[int, int, int]], None]] = {
    "circle": _circle,
    "square": _square,
    "triangle": _triangle,
    "cross": _cross,
    "diamond": _diamond,
    "ring": _ring,
}
