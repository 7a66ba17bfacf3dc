"""Bad-input cases: images, data files and benchmarks, metrics, organisms (see _case.py).

Each row writes the bad file it needs under `tmp_path`. Rows whose bad value is of the wrong
Python type are left out where the signature already rejects it (the jaxtyping hook raises a
TypeCheckError under pytest before the function runs); those are checked without the hook in
tests/data/test_image_rule.py.
"""

import functools
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
from PIL import Image

import vrp
from circuits import paint_patches
from vrp import ConfigError, DataError, to_rgb
from vrp.data import (
    Question,
    QuestionDataset,
    SyntheticConfig,
    binary_metrics,
    cooccurrence_counts,
    count_metrics,
    evaluate,
    generate,
    load_config,
    read_benchmark,
    read_pope,
    write_benchmark,
)
from vrp.organisms import _card, ship, train

from ._case import Case

# ----- helpers: small files of every kind ---------------------------------------------------------
RECORD = {"question_id": 1, "image": "a.png", "text": "Is there a dog in the image?", "label": "no"}
FORMAT = "vrp-synthetic-pope/1"
TINY = {"n_per_split": 2, "n_counting": 0, "n_spatial": 0}


def _record(**changes: Any) -> str:
    return json.dumps({**RECORD, **changes})


def _without(key: str) -> str:
    return json.dumps({k: v for k, v in RECORD.items() if k != key})


def _png(path: Path, mode: str = "RGB", size: tuple[int, int] = (8, 8)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size).save(path, format="PNG")
    return path


def _truncated_png(path: Path) -> Path:
    data = _png(path, size=(64, 64)).read_bytes()
    path.write_bytes(data[:60])  # header intact, pixel data cut
    return path


def _with_truncated(tmp: Path, use: Callable[[Image.Image], Any]) -> Any:
    """Calls `use` on a lazily opened truncated PNG (closed afterwards)."""
    with Image.open(_truncated_png(tmp / "t.png")) as image:
        return use(image)


def _pope_file(tmp: Path, content: str | bytes, name: str = "coco_pope_random.json") -> Path:
    _png(tmp / "img" / "a.png")
    path = tmp / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def _read(content: str | bytes, **kwargs: Any) -> Callable[[Path], Any]:
    def call(tmp: Path) -> Any:
        return read_pope(_pope_file(tmp, content), image_dir=tmp / "img", **kwargs)

    return call


def _lines(*lines: str) -> str:
    return "\n".join(lines) + "\n"


def _sample_with_image(write: Callable[[Path], Path]) -> Callable[[Path], Any]:
    """Reads sample 0 of a POPE file whose image a.png was written by `write`."""

    def call(tmp: Path) -> Any:
        path = _pope_file(tmp, _lines(_record()))
        write(tmp / "img" / "a.png")
        return read_pope(path, image_dir=tmp / "img")[0]

    return call


def _loaded(loader: Callable[[str], Any]) -> Callable[[Path], Any]:
    question = Question(
        question_id=1, image_name="a.png", question="q?", answer="no", split="random", category="x"
    )
    return lambda tmp: QuestionDataset([question], loader)[0]


def _benchmark(
    tmp: Path, meta: Any = None, scenes: str | None = "", split: str | None = _lines(_record())
) -> Path:
    """A hand-made benchmark folder: one question, one image. `meta` replaces benchmark.json
    (raw text or bytes, or an object written as JSON); None leaves the scene or split file out."""
    folder = tmp / "bench"
    _png(folder / "images" / "a.png")
    for name, text in (("pope_random.jsonl", split), ("scenes.jsonl", scenes)):
        if text is not None:
            (folder / name).write_text(text, encoding="utf-8")
    if meta is None:
        meta = {"format": FORMAT, "config": {}, "splits": {"random": {"file": "pope_random.jsonl"}}}
    data = meta if isinstance(meta, str | bytes) else json.dumps(meta)
    (folder / "benchmark.json").write_bytes(data.encode() if isinstance(data, str) else data)
    return folder


def _config(**kwargs: Any) -> Callable[[Path], Any]:
    return lambda tmp: SyntheticConfig(**kwargs)


@functools.cache
def _vlm() -> vrp.VLM:
    return vrp.load("tiny/llava")


def _encode(make: Callable[[Path], Any]) -> Callable[[Path], Any]:
    return lambda tmp: _vlm().encode([make(tmp)], ["is there a dog ?"])


def _ship(prepare: Callable[[Path], Path], family: str = "llava") -> Callable[[Path], Any]:
    """Ships the folder `prepare` makes into a throwaway asset folder (never the package's)."""

    def call(tmp: Path) -> Any:
        with mock.patch.object(_card, "ASSET_DIR", tmp / "assets"):
            return ship(prepare(tmp), family)

    return call


def _saved_tiny(tmp: Path, family: str = "llava", drop: str = "") -> Path:
    folder = tmp / "model"
    vrp.models.save(vrp.load(f"tiny/{family}"), folder)
    if drop:
        (folder / drop).unlink()
    return folder


def _corrupt_weights(tmp: Path) -> Path:
    folder = _saved_tiny(tmp)
    (folder / "model.safetensors").write_bytes(b"not a safetensors file")
    return folder


def _bad_config_json(tmp: Path) -> Path:
    folder = _saved_tiny(tmp)
    (folder / "config.json").write_text("{", encoding="utf-8")
    return folder


def _file(path: Path) -> Path:
    path.write_text("not a folder", encoding="utf-8")
    return path


# ----- the rows -----------------------------------------------------------------------------------
_IMAGE_CASES = (
    Case(
        id="to-rgb-none",
        call=lambda tmp: to_rgb(None),
        error=DataError,
        says=(r"expected a PIL image", r"got None", r"PIL\.Image\.open\(path\)"),
    ),
    Case(
        id="to-rgb-path-string",
        call=lambda tmp: to_rgb("cat.jpg"),
        error=DataError,
        says=(r"expected a PIL image", r"got a str 'cat\.jpg'", r"PIL\.Image\.open\(path\)"),
    ),
    Case(
        id="to-rgb-numpy-array",
        call=lambda tmp: to_rgb(np.zeros((4, 4, 3), dtype=np.uint8)),
        error=DataError,
        says=(r"expected a PIL image", r"numpy\.ndarray of shape \(4, 4, 3\)", r"fromarray"),
    ),
    Case(
        id="to-rgb-zero-size",
        call=lambda tmp: to_rgb(Image.new("RGB", (0, 0))),
        error=DataError,
        says=(r"expected an image of non-zero size", r"got a 0x0 RGB image", r"not empty"),
    ),
    Case(
        id="to-rgb-zero-height",
        call=lambda tmp: to_rgb(Image.new("RGBA", (5, 0))),
        error=DataError,
        says=(r"non-zero size", r"got a 5x0 RGBA image", r"Check that"),
    ),
    Case(
        id="to-rgb-truncated-file",
        call=lambda tmp: _with_truncated(tmp, to_rgb),
        error=DataError,
        says=(r"expected a readable image", r"t\.png cannot be decoded", r"re-export"),
    ),
    Case(
        id="encode-zero-size-image",
        call=_encode(lambda tmp: Image.new("RGB", (0, 0))),
        error=DataError,
        says=(r"image 0 of the batch", r"non-zero size", r"got a 0x0", r"not empty"),
    ),
    Case(
        id="encode-truncated-image",
        call=lambda tmp: _with_truncated(tmp, lambda image: _encode(lambda _: image)(tmp)),
        error=DataError,
        says=(r"image 0 of the batch", r"cannot be decoded", r"truncated", r"re-export"),
    ),
    Case(
        id="paint-patches-zero-size-image",
        call=lambda tmp: paint_patches(Image.new("RGB", (0, 4)), (2, 2), [0]),
        error=DataError,
        says=(r"non-zero size", r"got a 0x4 RGB image", r"not empty"),
    ),
)

_POPE_CASES = (
    Case(
        id="pope-missing-file",
        call=lambda tmp: read_pope(tmp / "nope.jsonl"),
        error=DataError,
        says=(r"POPE file .*nope\.jsonl", r"does not exist", r"Check the path"),
    ),
    Case(
        id="pope-path-is-a-folder",
        call=lambda tmp: read_pope(tmp),
        error=DataError,
        says=(r"is a folder", r"expected a file", r"Pass the file's own path"),
    ),
    Case(
        id="pope-empty-file",
        call=_read(""),
        error=DataError,
        says=(r"holds no questions", r"expected JSON Lines or a JSON array", r"right file"),
    ),
    Case(
        id="pope-blank-lines-only",
        call=_read("\n \n\n"),
        error=DataError,
        says=(r"holds no questions", r"expected JSON Lines", r"right file"),
    ),
    Case(
        id="pope-empty-json-array",
        call=_read("[]"),
        error=DataError,
        says=(r"holds no questions", r"JSON array of records like", r"right file"),
    ),
    Case(
        id="pope-not-utf8",
        call=_read(_lines(_record()).encode() + "Is there a café?\n".encode("latin-1")),
        error=DataError,
        says=(r"line 2: expected UTF-8 text", r"byte 0xe9", r"Re-save the POPE file as UTF-8"),
    ),
    Case(
        id="pope-malformed-json-line",
        call=_read(_lines(_record(), "{not json")),
        error=DataError,
        says=(r"line 2: not valid JSON", r"must be one object like", r"question_id"),
    ),
    Case(
        id="pope-malformed-json-array",
        call=_read("[" + _record() + ",\n  {]"),
        error=DataError,
        says=(r"line 2: not valid JSON", r"JSON-array POPE file holds a list of objects"),
    ),
    Case(
        id="pope-one-object-over-many-lines",
        call=_read(json.dumps(RECORD, indent=2)),
        error=DataError,
        says=(r"line 1: not valid JSON", r"one JSON object spread over several lines", r"array"),
    ),
    Case(
        id="pope-array-of-numbers",
        call=_read("[1, 2]"),
        error=DataError,
        says=(r"record 1: expected a JSON object like", r"got 1\.", r"question_id"),
    ),
    Case(
        id="pope-missing-field",
        call=_read(_lines(_without("text"))),
        error=DataError,
        says=(r"line 1: missing text", r"the record has keys \['image', 'label'", r"needs"),
    ),
    Case(
        id="pope-null-image",
        call=_read(_lines(_record(image=None))),
        error=DataError,
        says=(r"line 1: image must be a non-empty string", r"got None", r"Fix the record"),
    ),
    Case(
        id="pope-numeric-image",
        call=_read(_lines(_record(image=310196))),
        error=DataError,
        says=(r"image must be a non-empty string", r"got 310196", r"Fix the record"),
    ),
    Case(
        id="pope-empty-question-text",
        call=_read(_lines(_record(text="  "))),
        error=DataError,
        says=(r"text must be a non-empty string", r"got '  '", r"Fix the record"),
    ),
    Case(
        id="pope-float-question-id",
        call=_read(_lines(_record(question_id=1.5))),
        error=DataError,
        says=(r"question_id must be an integer", r"got 1\.5", r"Fix the record"),
    ),
    Case(
        id="pope-bool-question-id",
        call=_read(_lines(_record(question_id=True))),
        error=DataError,
        says=(r"question_id must be an integer", r"got True", r"Fix the record"),
    ),
    Case(
        id="pope-null-label",
        call=_read(_lines(_record(label=None))),
        error=DataError,
        says=(r"label None is not 'yes' or 'no'", r"fix the record", r"split='counting'"),
    ),
    Case(
        id="pope-label-maybe-in-array",
        call=_read(json.dumps([RECORD, {**RECORD, "question_id": 2, "label": "maybe"}])),
        error=DataError,
        says=(r"record 2: label 'maybe' is not 'yes' or 'no'", r"fix the record"),
    ),
    Case(
        id="pope-negative-count-label",
        call=_read(_lines(_record(label="-1")), split="counting"),
        error=DataError,
        says=(r"label '-1' is not a count", r"non-negative integers", r"pass split="),
    ),
    Case(
        id="pope-repeated-question-id",
        call=_read(_lines(_record(), _record(label="yes"))),
        error=DataError,
        says=(r"line 2: question_id 1 already used at line 1", r"must be unique"),
    ),
    Case(
        id="pope-missing-image-file",
        call=_read(_lines(_record(image="gone.jpg"))),
        error=DataError,
        says=(r"line 1: image 'gone\.jpg' not found in", r"Pass image_dir="),
    ),
    Case(
        id="pope-image-dir-missing",
        call=lambda tmp: read_pope(_pope_file(tmp, _lines(_record())), image_dir=tmp / "nope"),
        error=DataError,
        says=(r"image folder .*nope of .* is not a folder", r"Pass image_dir=", r"check_images"),
    ),
    Case(
        id="pope-corrupt-image-file",
        call=_sample_with_image(lambda p: (p.write_bytes(b"\x89PNG\r\n\x1a\ngarbage"), p)[1]),
        error=DataError,
        says=(r"question 1 \(random\), image 'a\.png'", r"PIL cannot read it", r"re-download"),
    ),
    Case(
        id="pope-zero-byte-image-file",
        call=_sample_with_image(lambda p: (p.write_bytes(b""), p)[1]),
        error=DataError,
        says=(r"image 'a\.png': expected an image file at", r"cannot read it", r"corrupt"),
    ),
    Case(
        id="pope-truncated-image-file",
        call=_sample_with_image(_truncated_png),
        error=DataError,
        says=(r"image 'a\.png': expected a readable image", r"cannot be decoded", r"re-export"),
    ),
)

_DATASET_CASES = (
    Case(
        id="dataset-loader-returns-none",
        call=_loaded(lambda name: None),
        error=DataError,
        says=(r"question 1 \(random\), image 'a\.png'", r"expected a PIL image", r"got None"),
    ),
    Case(
        id="dataset-loader-returns-a-path",
        call=_loaded(lambda name: f"/images/{name}"),
        error=DataError,
        says=(r"expected a PIL image", r"got a str '/images/a\.png'", r"PIL\.Image\.open"),
    ),
    Case(
        id="dataset-loader-returns-empty-crop",
        call=_loaded(lambda name: Image.new("RGB", (10, 10)).crop((0, 0, 0, 10))),
        error=DataError,
        says=(r"image 'a\.png'", r"non-zero size", r"got a 0x10 RGB image", r"not empty"),
    ),
    Case(
        id="dataset-batch-size-zero",
        call=lambda tmp: next(generate(SyntheticConfig(**TINY)).batches(0)),
        error=ConfigError,
        says=(r"batch_size must be an integer >= 1", r"got 0", r"Pass e\.g\. batch_size=16"),
    ),
    Case(
        id="dataset-negative-shuffle-seed",
        call=lambda tmp: next(generate(SyntheticConfig(**TINY)).batches(2, shuffle_seed=-1)),
        error=ConfigError,
        says=(r"shuffle_seed must be >= 0", r"got -1", r"None for dataset order"),
    ),
    Case(
        id="dataset-subset-matches-nothing",
        call=lambda tmp: generate(SyntheticConfig(**TINY)).subset(split="coco"),
        error=ConfigError,
        says=(r"no question has split='coco'", r"Splits here: \['random', 'popular'"),
    ),
    Case(
        id="generate-negative-cache",
        call=lambda tmp: generate(SyntheticConfig(**TINY), cache_size=-1),
        error=ConfigError,
        says=(r"cache_size must be an integer >= 0", r"got -1", r"0 disables the cache"),
    ),
)

_CONFIG_CASES = (
    Case(
        id="config-negative-seed",
        call=_config(seed=-1),
        error=ConfigError,
        says=(r"seed must be >= 0", r"got -1", r"Pass e\.g\. seed=0"),
    ),
    Case(
        id="config-bool-seed",
        call=_config(seed=True),
        error=ConfigError,
        says=(r"seed must be an integer", r"got True", r"Pass seed= such a value"),
    ),
    Case(
        id="config-nan-noise",
        call=_config(noise_std=math.nan),
        error=ConfigError,
        says=(r"noise_std must be a finite number", r"got nan", r"Pass noise_std="),
    ),
    Case(
        id="config-infinite-jitter",
        call=_config(jitter=math.inf),
        error=ConfigError,
        says=(r"jitter must be a finite number", r"got inf", r"Pass jitter="),
    ),
    Case(
        id="config-odd-n-per-split",
        call=_config(n_per_split=3),
        error=ConfigError,
        says=(r"n_per_split must be even and >= 2", r"got 3", r"Pass an even count"),
    ),
    Case(
        id="config-zero-n-per-split",
        call=_config(n_per_split=0),
        error=ConfigError,
        says=(r"n_per_split must be even and >= 2", r"got 0", r"Pass an even count"),
    ),
    Case(
        id="config-odd-n-spatial",
        call=_config(n_spatial=5),
        error=ConfigError,
        says=(r"n_spatial must be even and >= 0", r"n_spatial=5", r"Pass 0 to skip"),
    ),
    Case(
        id="config-negative-n-counting",
        call=_config(n_counting=-4),
        error=ConfigError,
        says=(r"n_counting >= 0", r"n_counting=-4", r"Pass 0 to skip"),
    ),
    Case(
        id="config-zero-grid",
        call=_config(grid=0),
        error=ConfigError,
        says=(r"cells must be at least 8 px", r"grid of 0 cells", r"Pass grid >= 1"),
    ),
    Case(
        id="config-image-too-small",
        call=_config(image_size=20, grid=4),
        error=ConfigError,
        says=(r"cells must be at least 8 px", r"image_size=20", r"image_size >= 8 \* grid"),
    ),
    Case(
        id="config-image-too-large",
        call=_config(image_size=100_000),
        error=ConfigError,
        says=(r"image_size must be at most 4096", r"got 100000", r"pass e\.g\. image_size=336"),
    ),
    Case(
        id="config-unknown-colour",
        call=_config(colours=("red", "mauve")),
        error=ConfigError,
        says=(r"colours must be distinct names from red, green", r"Unknown: \['mauve'\]", r"Pick"),
    ),
    Case(
        id="config-repeated-shape",
        call=_config(shapes=("circle", "circle", "square", "cross")),
        error=ConfigError,
        says=(r"shapes must be distinct names", r"got \('circle', 'circle'", r"at most once"),
    ),
    Case(
        id="config-no-shapes",
        call=_config(shapes=()),
        error=ConfigError,
        says=(r"shapes must be distinct names", r"got \(\)", r"Pick shapes from the list"),
    ),
    Case(
        id="config-zero-positives",
        call=_config(positives_per_scene=0),
        error=ConfigError,
        says=(r"1 <= positives_per_scene <= theme_size", r"positives_per_scene=0", r"Lower"),
    ),
    Case(
        id="config-too-few-categories",
        call=_config(colours=("red",), shapes=("circle", "square")),
        error=ConfigError,
        says=(r"theme_size <= 2 \(the number of categories\)", r"theme_size=6", r"add colours"),
    ),
    Case(
        id="config-min-objects-above-max",
        call=_config(min_objects=6, max_objects=4),
        error=ConfigError,
        says=(r"min_objects <= max_objects <= grid\*grid", r"got 3, 6, 4, 16", r"enough"),
    ),
    Case(
        id="config-more-objects-than-cells",
        call=_config(grid=2, max_objects=6),
        error=ConfigError,
        says=(r"max_objects <= grid\*grid", r"got 3, 3, 6, 4", r"one per cell"),
    ),
    Case(
        id="config-probability-above-one",
        call=_config(in_theme_prob=1.5),
        error=ConfigError,
        says=(r"must lie in \[0, 1\]", r"got \(1\.5, 0\.3, 0\.1\)", r"Pass values in these"),
    ),
    Case(
        id="config-size-range-reversed",
        call=_config(size_range=(1.2, 0.6)),
        error=ConfigError,
        says=(r"0\.2 <= low <= high <= 1\.5", r"got \(1\.2, 0\.6\)", r"Pass values"),
    ),
    Case(
        id="config-background-out-of-range",
        call=_config(background=(300, 0, 0)),
        error=ConfigError,
        says=(r"three integers in 0\.\.255", r"\(300, 0, 0\)", r"e\.g\. \(18, 18, 26\)"),
    ),
    Case(
        id="config-negative-noise",
        call=_config(noise_std=-1.0),
        error=ConfigError,
        says=(r"noise_std >= 0", r"got 0\.15, -1\.0, 3", r"Pass values in these ranges"),
    ),
)

_BENCHMARK_CASES = (
    Case(
        id="write-out-under-a-file",
        call=lambda tmp: write_benchmark(SyntheticConfig(**TINY), _file(tmp / "afile") / "bench"),
        error=ConfigError,
        says=(r"cannot create the benchmark folder", r"afile is a file, not a folder", r"Choose"),
    ),
    Case(
        id="write-out-is-a-file",
        call=lambda tmp: write_benchmark(SyntheticConfig(**TINY), _png(tmp / "b.png")),
        error=ConfigError,
        says=(r"b\.png exists and is not a benchmark folder", r"refusing", r"Choose a new path"),
    ),
    Case(
        id="write-out-is-another-folder",
        call=lambda tmp: write_benchmark(SyntheticConfig(**TINY), _png(tmp / "d" / "x.png").parent),
        error=ConfigError,
        says=(r"d exists and is not a benchmark folder", r"refusing to replace", r"empty folder"),
    ),
    Case(
        id="write-existing-benchmark-without-overwrite",
        call=lambda tmp: write_benchmark(
            SyntheticConfig(**TINY), write_benchmark(SyntheticConfig(**TINY), tmp / "b")
        ),
        error=ConfigError,
        says=(r"already holds a benchmark", r"Pass overwrite=True", r"another folder"),
    ),
    Case(
        id="write-into-unwritable-folder",
        call=lambda tmp: _unwritable(lambda: write_benchmark(SyntheticConfig(**TINY), tmp / "x/b")),
        error=ConfigError,
        says=(r"cannot create the benchmark folder .*x/b", r"is not writable", r"Choose a folder"),
        leaves=("x",),
    ),
    Case(
        id="read-benchmark-missing-folder",
        call=lambda tmp: read_benchmark(tmp / "nope"),
        error=DataError,
        says=(r"nope does not exist or is not a folder", r"`vrp data generate`", r"read_pope"),
    ),
    Case(
        id="read-benchmark-no-metadata",
        call=lambda tmp: read_benchmark(tmp),
        error=DataError,
        says=(r"not a synthetic benchmark: benchmark\.json is missing", r"vrp data generate"),
    ),
    Case(
        id="read-benchmark-metadata-not-json",
        call=lambda tmp: read_benchmark(_benchmark(tmp, meta="{oops")),
        error=DataError,
        says=(r"benchmark\.json line 1: not valid JSON", r"expected the metadata", r"Regenerate"),
    ),
    Case(
        id="read-benchmark-metadata-not-utf8",
        call=lambda tmp: read_benchmark(_benchmark(tmp, meta=b'{"format": "\xff"}')),
        error=DataError,
        says=(r"line 1: expected UTF-8 text", r"byte 0xff", r"Re-save the benchmark\.json"),
    ),
    Case(
        id="read-benchmark-other-format",
        call=lambda tmp: read_benchmark(_benchmark(tmp, meta={"format": "coco/1"})),
        error=DataError,
        says=(r"format 'coco/1' is not 'vrp-synthetic-pope/1'", r"regenerate the benchmark"),
    ),
    Case(
        id="read-benchmark-without-splits",
        call=lambda tmp: read_benchmark(_benchmark(tmp, meta={"format": FORMAT, "config": {}})),
        error=DataError,
        says=(r"expected a 'splits' object", r"got None", r"regenerate the benchmark"),
    ),
    Case(
        id="read-benchmark-split-without-file",
        call=lambda tmp: read_benchmark(
            _benchmark(tmp, meta={"format": FORMAT, "config": {}, "splits": {"random": 3}})
        ),
        error=DataError,
        says=(r"split 'random' names no file \(got 3\)", r'expected \{"file"', r"Regenerate"),
    ),
    Case(
        id="read-benchmark-missing-split-file",
        call=lambda tmp: read_benchmark(_benchmark(tmp, split=None)),
        error=DataError,
        says=(r"POPE file .*pope_random\.jsonl does not exist", r"Check the path"),
    ),
    Case(
        id="read-benchmark-empty-split-file",
        call=lambda tmp: read_benchmark(_benchmark(tmp, split="\n")),
        error=DataError,
        says=(r"pope_random\.jsonl holds no questions", r"expected JSON Lines"),
    ),
    Case(
        id="read-benchmark-missing-scenes",
        call=lambda tmp: read_benchmark(_benchmark(tmp, scenes=None)),
        error=DataError,
        says=(r"scene file .*scenes\.jsonl does not exist", r"Check the path"),
    ),
    Case(
        id="read-benchmark-bad-scene-line",
        call=lambda tmp: read_benchmark(_benchmark(tmp, scenes='\n{"scene_id": 1}\n')),
        error=DataError,
        says=(r"scenes\.jsonl line 2: not a scene graph \(KeyError", r"one JSON object per line"),
    ),
    Case(
        id="load-config-unknown-field",
        call=lambda tmp: load_config(
            _benchmark(tmp, meta={"format": FORMAT, "config": {"frobs": 2}, "splits": {}})
        ),
        error=DataError,
        says=(r"config fields \['frobs'\] are not fields of SyntheticConfig", r"regenerate it"),
    ),
    Case(
        id="load-config-value-out-of-range",
        call=lambda tmp: load_config(
            _benchmark(tmp, meta={"format": FORMAT, "config": {"seed": -3}, "splits": {}})
        ),
        error=ConfigError,
        says=(r"seed must be >= 0", r"got -3", r"Pass e\.g\. seed=0"),
    ),
)


def _unwritable(write: Callable[[], Any]) -> Any:
    """Runs `write` as if no folder were writable (root ignores permission bits)."""
    with mock.patch("vrp.data._files.os.access", return_value=False):
        return write()


_METRIC_CASES = (
    Case(
        id="binary-metrics-length-mismatch",
        call=lambda tmp: binary_metrics(["yes", "no"], ["yes"]),
        error=DataError,
        says=(r"need as many predictions as labels", r"got 2 labels and 1 predictions"),
    ),
    Case(
        id="binary-metrics-empty",
        call=lambda tmp: binary_metrics([], []),
        error=DataError,
        says=(r"at least one", r"got 0 labels and 0 predictions"),
    ),
    Case(
        id="binary-metrics-raw-answers",
        call=lambda tmp: binary_metrics(["yes"], ["Yes, there is."]),
        error=DataError,
        says=(r"labels must be 'yes' or 'no'", r"got \['Yes, there is\.'\]", r"parse_pope_answer"),
    ),
    Case(
        id="binary-metrics-zero-resamples",
        call=lambda tmp: binary_metrics(["yes", "no"], ["yes", "no"], n_boot=0),
        error=ConfigError,
        says=(r"n_boot must be an integer >= 1", r"got 0", r"defaults are n_boot=2000"),
    ),
    Case(
        id="binary-metrics-negative-seed",
        call=lambda tmp: binary_metrics(["yes", "no"], ["yes", "no"], seed=-1),
        error=ConfigError,
        says=(r"seed must be an integer >= 0", r"got -1", r"seed=0"),
    ),
    Case(
        id="count-metrics-negative-count",
        call=lambda tmp: count_metrics([-1, 2], [1, 2]),
        error=DataError,
        says=(r"counts must be integers >= 0", r"got \[-1\] among the counts", r"parse_count"),
    ),
    Case(
        id="count-metrics-zero-resamples",
        call=lambda tmp: count_metrics([1, 2], [1, None], n_boot=0),
        error=ConfigError,
        says=(r"n_boot must be an integer >= 1", r"got 0", r"n_boot=2000"),
    ),
    Case(
        id="evaluate-answer-count-mismatch",
        call=lambda tmp: evaluate(generate(SyntheticConfig(**TINY)).questions, ["yes"]),
        error=DataError,
        says=(r"expected one answer per question", r"6 questions, 1 answers", r"in the order"),
    ),
    Case(
        id="evaluate-no-questions",
        call=lambda tmp: evaluate([], []),
        error=DataError,
        says=(r"at least one", r"0 questions, 0 answers", r"dataset\.questions"),
    ),
    Case(
        id="cooccurrence-unknown-category",
        call=lambda tmp: cooccurrence_counts([["red circle"]], ["blue square"]),
        error=DataError,
        says=(r"holds category 'red circle'", r"not among the 1 categories given \(blue square\)"),
    ),
)

_ORGANISM_CASES = (
    *(
        Case(
            id=f"train-library-{name}",
            call=lambda tmp, kw=kw: train("llava", out=tmp / "run", **kw),
            error=ConfigError,
            says=(rf"{name} must be a whole number >= \d", rf"got {bad}", r"Pass e\.g\."),
            leaves=("run",),
        )
        for name, bad, kw in (
            ("threads", 0, {"threads": 0}),
            ("validate_every", -1, {"validate_every": -1}),
            ("seed", -1, {"seed": -1}),
            ("steps", 0, {"steps": 0}),
        )
    ),
    Case(
        id="ship-unknown-family",
        call=_ship(lambda tmp: tmp, family="gpt2"),
        error=ConfigError,
        says=(r"No organism 'gpt2'", r"organisms: llava, paligemma, qwen2_vl"),
        leaves=("assets",),
    ),
    Case(
        id="ship-folder-missing",
        call=_ship(lambda tmp: tmp / "nope"),
        error=ConfigError,
        says=(r"nope holds no llava model: it is not a folder", r"`vrp organisms train`"),
        leaves=("assets",),
    ),
    Case(
        id="ship-empty-folder",
        call=_ship(lambda tmp: tmp),
        error=ConfigError,
        says=(r"holds no llava model: missing config\.json", r"weights \(model\.safetensors"),
        leaves=("assets",),
    ),
    Case(
        id="ship-without-weights",
        call=_ship(lambda tmp: _saved_tiny(tmp, drop="model.safetensors")),
        error=ConfigError,
        says=(r"holds no llava model: missing weights", r"Pass the model/ folder"),
        leaves=("assets",),
    ),
    Case(
        id="ship-without-tokenizer",
        call=_ship(lambda tmp: _saved_tiny(tmp, drop="tokenizer.json")),
        error=ConfigError,
        says=(r"holds no loadable llava model", r"answering one question failed", r"Retrain"),
        leaves=("assets/llava",),
    ),
    Case(
        id="ship-wrong-family",
        call=_ship(lambda tmp: _saved_tiny(tmp, family="paligemma")),
        error=ConfigError,
        says=(r"holds no llava model \(config model_type 'paligemma'\)", r"--family paligemma"),
        leaves=("assets",),
    ),
    Case(
        id="ship-corrupt-weights",
        call=_ship(_corrupt_weights),
        error=ConfigError,
        says=(r"model holds no loadable llava model", r"failed \(\w+Error: ", r"Retrain"),
        leaves=("assets/llava",),
    ),
    Case(
        id="ship-config-not-json",
        call=_ship(_bad_config_json),
        error=ConfigError,
        says=(r"config\.json is unreadable or has no model_type", r"JSONDecodeError", r"Pass"),
        leaves=("assets",),
    ),
    Case(
        id="train-out-under-a-file",
        call=lambda tmp: train("llava", out=_file(tmp / "afile") / "run", steps=1),
        error=ConfigError,
        says=(r"cannot create the run folder .*afile/run", r"afile is a file", r"Choose a path"),
    ),
    Case(
        id="train-unknown-family",
        call=lambda tmp: train("gpt2", out=tmp / "run"),
        error=ConfigError,
        says=(r"No organism recipe for family 'gpt2'",),
        leaves=("run",),
    ),
    Case(
        id="train-resume-without-checkpoint",
        call=lambda tmp: train("llava", out=tmp / "run", steps=1, resume=True),
        error=ConfigError,
        says=(r"Cannot resume: .*checkpoint\.pt does not exist", r"Run without --resume"),
        leaves=("run",),
    ),
)

CASES: tuple[Case, ...] = (
    *_IMAGE_CASES,
    *_POPE_CASES,
    *_DATASET_CASES,
    *_CONFIG_CASES,
    *_BENCHMARK_CASES,
    *_METRIC_CASES,
    *_ORGANISM_CASES,
)
