"""Image-patch masking: its settings and the pixel-level painter.

The study masks the image patches the answer attends to most, at two levels: the projected image
tokens (an `ImagePatchMask` node, replaced by their mean or by zero), or the pixels before the
processor (cells painted grey). Both index patches row-major on the patch grid the adapter reports.
"""

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from PIL import Image, ImageDraw

from vrp import ConfigError, to_rgb


@dataclass(frozen=True, kw_only=True)
class MaskingConfig:
    """How attention-guided masking masks.

    Attributes:
      fraction: share of the image's patches masked per question, in (0, 1] (1 masks them all,
        a planted check rather than a study condition).
      n_random: random masks of the same size (the controls).
      level: "token" replaces the projected image tokens (with `fill`); "pixel" paints the
        patches' pixels grey (`grey`) before the processor.
      fill: token-level replacement, "mean" of the image's tokens or "zero".
      grey: pixel-level grey value.
      batch_size: questions per trace.
      seed: seeds the random masks (with the draw and the question, see `masking_arms`).

    Raises:
      ConfigError: a setting out of range.
    """

    fraction: float = 0.3
    n_random: int = 5
    level: Literal["token", "pixel"] = "token"
    fill: Literal["zero", "mean"] = "mean"
    grey: int = 128
    batch_size: int = 16
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.fraction <= 1:
            raise ConfigError(f"fraction must lie in (0, 1], got {self.fraction}.")
        if self.level not in ("token", "pixel"):
            raise ConfigError(f"level must be 'token' or 'pixel', got {self.level!r}.")
        if self.fill not in ("zero", "mean"):
            raise ConfigError(f"fill must be 'zero' or 'mean', got {self.fill!r}.")
        if self.n_random < 0 or self.batch_size < 1 or not 0 <= self.grey <= 255:
            raise ConfigError(
                f"MaskingConfig needs n_random >= 0, batch_size >= 1 and grey in 0..255; got "
                f"{self.n_random}, {self.batch_size} and {self.grey}."
            )


def paint_patches(
    image: Image.Image,
    grid: tuple[int, int],
    patches: Sequence[int],
    grey: int = 128,
    *,
    region: tuple[float, float, float, float] | None = None,
) -> Image.Image:
    """A copy of `image` with the grid cells `patches` (row-major) painted uniform grey.

    The grid is laid over `region`, the box (left, top, right, bottom) of the image the vision
    tower sees (`VLM.image_region`): the whole image for processors that resize it whole, its
    central crop for LLaVA-1.5's centre-cropping processor. Without `region` the grid covers the
    whole image, which is right for square images and warned about for others. The copy is made
    with `vrp.to_rgb` (transparency composited onto white), as every vrp path does.

    Raises:
      DataError: `image` is empty or cannot be decoded.
    """
    out = to_rgb(image)
    draw = ImageDraw.Draw(out)
    rows, cols = grid
    width, height = out.size
    if region is None and width != height:
        warnings.warn(
            f"paint_patches lays the {rows}x{cols} grid over the whole {width}x{height} image, but "
            "processors that resize the short side and centre-crop (LLaVA-1.5's CLIP processor) "
            "see only its central square. Pass region=vlm.image_region(image.size).",
            UserWarning,
            stacklevel=2,
        )
    left, top, right, bottom = region or (0.0, 0.0, float(width), float(height))
    cell_w, cell_h = (right - left) / cols, (bottom - top) / rows
    for patch in patches:
        r, c = divmod(int(patch), cols)
        box = (left + c * cell_w, top + r * cell_h, left + (c + 1) * cell_w, top + (r + 1) * cell_h)
        draw.rectangle(
            (round(box[0]), round(box[1]), round(box[2]) - 1, round(box[3]) - 1),
            fill=(grey, grey, grey),
        )
    return out
