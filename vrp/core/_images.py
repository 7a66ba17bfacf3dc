"""The one rule that turns an image into the RGB pixels every VRP path sees.

Images reach a model along several paths (`vrp.data` loaders, `VLM.encode`, pixel masking in
`circuits`). If each path converted on its own, the same RGBA PNG would give different pixels: PIL's
``convert("RGB")`` drops the alpha channel (keeping whatever colour hides under transparent pixels),
while the Hugging Face processors composite transparency onto white. `to_rgb` is the single rule;
every path calls it, so a picture gives the same ``pixel_values`` whichever way it arrives.

PIL is the only imaging dependency here (no transformers: the core stays light).
"""

from typing import Any

from PIL import Image

from ._errors import DataError

BACKGROUND = (255, 255, 255)
"""Colour that transparent pixels are composited onto: white, as transformers does."""


def to_rgb(image: Any) -> Image.Image:
    """A new RGB copy of `image`, with any transparency composited onto white.

    Images with an alpha band (RGBA, LA, PA, ...) or a transparency colour (a "P" or "L" image
    with ``info["transparency"]``) are alpha-composited onto `BACKGROUND`; other modes go through
    PIL's ``convert("RGB")``. This is exactly the rule of transformers'
    ``transformers.image_transforms.convert_to_rgb`` ("compositing any transparency onto a white
    background", the same test for transparency), which the processors of LLaVA, PaliGemma and
    Qwen2-VL apply; applying it first makes their own conversion a no-op.

    Args:
      image: a PIL image of non-zero width and height. A lazily opened file is decoded here.

    Returns:
      A new image of mode "RGB" and the same size; `image` itself is never modified.

    Raises:
      DataError: `image` is not a PIL image (None, a path, an array), has zero width or height,
        or its file cannot be decoded (corrupt or truncated).
    """
    if not isinstance(image, Image.Image):
        raise DataError(
            f"expected a PIL image; got {_describe(image)}. Open files with PIL.Image.open(path) "
            "and arrays with PIL.Image.fromarray(array)."
        )
    width, height = image.size
    if width == 0 or height == 0:
        raise DataError(
            f"expected an image of non-zero size; got a {width}x{height} {image.mode} image. "
            "Check that the image file or the crop that produced it is not empty."
        )
    _decode(image)
    if "A" in image.getbands() or image.info.get("transparency") is not None:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*BACKGROUND, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _decode(image: Image.Image) -> None:
    try:
        image.load()
    except (OSError, SyntaxError, ValueError) as error:  # PIL's decoders raise all three
        name = getattr(image, "filename", "") or "the image"
        raise DataError(
            f"expected a readable image; {name} cannot be decoded ({error}). The file is corrupt "
            "or truncated: re-download or re-export it."
        ) from None


def _describe(value: Any) -> str:
    if value is None:
        return "None"
    module, name = type(value).__module__, type(value).__qualname__
    kind = name if module == "builtins" else f"{module.split('.')[0]}.{name}"
    if hasattr(value, "shape"):  # numpy arrays, torch tensors
        return f"a {kind} of shape {tuple(value.shape)}"
    text = " ".join(repr(value).split())
    return f"a {kind} {text if len(text) <= 60 else text[:57] + '...'}"
