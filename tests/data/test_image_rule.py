"""One image rule on every path: an image gives the same pixels through `vrp.data`, `VLM.encode`
and `circuits.paint_patches`, and bad images raise `DataError` in a plain interpreter too."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import vrp
from circuits import paint_patches
from vrp.data import QuestionDataset, read_pope

QUESTION = "Is there a dog in the image?"


def _translucent_png(folder: Path) -> Path:
    """A PNG whose alpha varies and whose hidden colour differs from what shows over white."""
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (32, 32, 4), dtype=np.uint8)
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels, "RGBA").save(folder / "a.png")
    return folder / "a.png"


def _pope(tmp_path: Path) -> QuestionDataset:
    _translucent_png(tmp_path / "img")
    record = {"question_id": 1, "image": "a.png", "text": QUESTION, "label": "yes"}
    (tmp_path / "pope.jsonl").write_text(json.dumps(record) + "\n", encoding="utf-8")
    return read_pope(tmp_path / "pope.jsonl", image_dir=tmp_path / "img")


def test_rgba_png_gives_the_same_pixel_values_through_the_loader_and_encode(
    vlm: vrp.VLM, tmp_path: Path
) -> None:
    sample = _pope(tmp_path)[0]
    via_data = vlm.encode([sample.image], [QUESTION]).data["pixel_values"]
    with Image.open(tmp_path / "img" / "a.png") as raw:
        via_encode = vlm.encode([raw], [QUESTION]).data["pixel_values"]
        dropped_alpha = vlm.encode([raw.convert("RGB")], [QUESTION]).data["pixel_values"]
    assert torch.equal(via_data, via_encode)
    assert not torch.allclose(via_data, dropped_alpha)  # the old loader's rule differs


def test_custom_loaders_get_the_same_rule(tmp_path: Path) -> None:
    png = _translucent_png(tmp_path)
    ds = QuestionDataset(_pope(tmp_path).questions, lambda name: Image.open(png))
    with Image.open(png) as raw:
        np.testing.assert_array_equal(np.asarray(ds[0].image), np.asarray(vrp.to_rgb(raw)))


def test_paint_patches_composites_like_everything_else(tmp_path: Path) -> None:
    with Image.open(_translucent_png(tmp_path)) as raw:
        painted = paint_patches(raw, (2, 2), [])
        np.testing.assert_array_equal(np.asarray(painted), np.asarray(vrp.to_rgb(raw)))


_PLAIN = """
import vrp
from PIL import Image
vlm = vrp.load("tiny/llava")
for images, prompts in (([None], ["q ?"]), ([Image.new("RGB", (0, 0))], ["q ?"]),
                        (Image.new("RGB", (8, 8)), ["q ?"]), ([Image.new("RGB", (8, 8))], "q ?")):
    try:
        vlm.encode(images, prompts)
    except vrp.VrpError as error:
        print(type(error).__name__, error)
"""


def test_bad_images_through_encode_without_the_test_type_checker() -> None:
    """Under pytest the jaxtyping hook rejects a wrongly typed argument first; users run without
    it, so the library's own checks are what they see."""
    done = subprocess.run(
        [sys.executable, "-c", _PLAIN], capture_output=True, text=True, timeout=300
    )
    lines = done.stdout.splitlines()
    assert done.returncode == 0 and len(lines) == 4, done.stdout + done.stderr
    assert lines[0].startswith("DataError image 0 of the batch: expected a PIL image; got None")
    assert lines[1].startswith("DataError image 0 of the batch: expected an image of non-zero")
    assert lines[2].startswith("PromptError images must be a list, one entry per row; got Image")
    # a string of questions is a list of one-letter questions: the counts then differ
    assert lines[3].startswith("PromptError encode needs one image per prompt"), lines[3]


@pytest.mark.parametrize("name", ["bom", "line-separator"])
def test_legal_pope_variants_are_read(tmp_path: Path, name: str) -> None:
    _translucent_png(tmp_path / "img")
    text = {
        "bom": '\ufeff{"question_id": 1, "image": "a.png", "text": "Is there a dog?", "label": "no"}',
        "line-separator": '{"question_id": 1, "image": "a.png", "text": "Is\u2028there?", "label": "no"}',
    }[name]
    (tmp_path / "p.jsonl").write_text(text + "\n", encoding="utf-8")
    (question,) = read_pope(tmp_path / "p.jsonl", image_dir=tmp_path / "img").questions
    assert question.question_id == 1 and question.answer == "no"
