"""`vrp.to_rgb`, the one image rule: transformers' compositing onto white, for every PIL mode."""

import numpy as np
import pytest
from PIL import Image
from transformers.image_transforms import convert_to_rgb

from vrp import DataError, to_rgb


def _image(mode: str, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    rgba = Image.fromarray(rng.integers(0, 256, (6, 5, 4), dtype=np.uint8), "RGBA")
    if mode == "P+transparency":
        image = rgba.convert("RGB").convert("P")
        image.info["transparency"] = 3  # palette index 3 is see-through
        return image
    if mode == "L+transparency":
        image = rgba.convert("L")
        image.info["transparency"] = 128
        return image
    return rgba.convert(mode)


MODES = ["RGB", "RGBA", "LA", "PA", "P+transparency", "L+transparency", "L", "1", "P", "CMYK"]


@pytest.mark.parametrize("mode", MODES)
def test_same_pixels_as_transformers_convert_to_rgb(mode: str) -> None:
    image = _image(mode)
    ours = to_rgb(image)
    assert ours.mode == "RGB" and ours.size == image.size
    np.testing.assert_array_equal(np.asarray(ours), convert_to_rgb(image, return_numpy=True))


def test_transparency_is_composited_onto_white_not_dropped() -> None:
    image = Image.new("RGBA", (2, 1), (255, 0, 0, 128))
    image.putpixel((1, 0), (0, 0, 255, 0))  # fully transparent blue
    assert to_rgb(image).getpixel((0, 0)) == (255, 127, 127)  # half red over white
    assert to_rgb(image).getpixel((1, 0)) == (255, 255, 255)
    assert image.convert("RGB").getpixel((1, 0)) == (0, 0, 255)  # what dropping alpha would give


def test_returns_a_new_image_and_leaves_the_input_alone() -> None:
    image = _image("RGBA")
    before = np.asarray(image).copy()
    out = to_rgb(image)
    out.putpixel((0, 0), (1, 2, 3))
    rgb = _image("RGB")
    assert to_rgb(rgb) is not rgb
    np.testing.assert_array_equal(np.asarray(image), before)
    assert image.mode == "RGBA"


def test_decodes_a_lazily_opened_file(tmp_path) -> None:
    path = tmp_path / "a.png"
    _image("RGBA").save(path)
    with Image.open(path) as lazy:
        out = to_rgb(lazy)
    np.testing.assert_array_equal(np.asarray(out), np.asarray(to_rgb(_image("RGBA"))))


@pytest.mark.parametrize(
    ("value", "arrived"),
    [
        (None, r"got None"),
        (b"\x89PNG", r"got a bytes b'\\x89PNG'"),
        (np.zeros((2, 2, 3), dtype=np.uint8), r"got a numpy\.ndarray of shape \(2, 2, 3\)"),
        (Image.new("L", (3, 0)), r"got a 3x0 L image"),
    ],
    ids=["none", "bytes", "array", "zero-height"],
)
def test_refuses_what_is_not_a_non_empty_pil_image(value: object, arrived: str) -> None:
    with pytest.raises(DataError, match=arrived):
        to_rgb(value)
