"""Reading POPE files: both official layouts, lazy images, and errors that name the line."""

import json
from pathlib import Path

import pytest
from PIL import Image

from vrp.core import DataError
from vrp.data import Dataset, Sample, read_pope

RECORDS = [
    {"question_id": 1, "image": "a.jpg", "text": "Is there a dog in the image?", "label": "yes"},
    {"question_id": 2, "image": "a.jpg", "text": "Is there an apple in the image?", "label": "no"},
    {
        "question_id": 3,
        "image": "b.jpg",
        "text": "Is there a dining table in the image?",
        "label": "yes",
    },
]


@pytest.fixture
def image_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "val2014"
    folder.mkdir()
    for name, colour in (("a.jpg", (200, 0, 0)), ("b.jpg", (0, 0, 200))):
        Image.new("RGB", (8, 8), colour).save(folder / name)
    return folder


def _write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _jsonl(tmp_path: Path, records: list[object], name: str = "coco_pope_adversarial.json") -> Path:
    return _write_lines(tmp_path / name, [json.dumps(r) for r in records])


def test_reads_json_lines(tmp_path: Path, image_dir: Path) -> None:
    ds = read_pope(_jsonl(tmp_path, RECORDS), image_dir=image_dir)
    assert isinstance(ds, Dataset) and len(ds) == 3
    assert [q.category for q in ds.questions] == ["dog", "apple", "dining table"]
    assert {q.split for q in ds.questions} == {"adversarial"}
    sample = ds[2]
    assert isinstance(sample, Sample) and sample.scene is None
    pixel = sample.image.getpixel((0, 0))
    assert sample.image.mode == "RGB" and isinstance(pixel, tuple)
    assert max(abs(a - b) for a, b in zip(pixel, (0, 0, 200), strict=True)) <= 3  # JPEG is lossy
    assert (sample.answer, sample.label, sample.question_id) == ("yes", 1, 3)


def test_reads_json_array_with_aliases(tmp_path: Path, image_dir: Path) -> None:
    records = [
        {
            "question_id": "7",
            "image": "b.jpg",
            "question": "Is there a cat in the image?",
            "answer": "No",
        },
    ]
    path = tmp_path / "aokvqa_pope_popular.json"
    path.write_text(json.dumps(records, indent=2), encoding="utf-8")
    (q,) = read_pope(path, image_dir=image_dir).questions
    assert (q.question_id, q.answer, q.split, q.category) == (7, "no", "popular", "cat")


def test_split_can_be_given_and_falls_back_to_file_name(tmp_path: Path, image_dir: Path) -> None:
    path = _jsonl(tmp_path, RECORDS, name="my_questions.jsonl")
    assert read_pope(path, image_dir=image_dir).splits == ("my_questions",)
    assert read_pope(path, image_dir=image_dir, split="random").splits == ("random",)


def test_images_are_opened_lazily(
    tmp_path: Path, image_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[str] = []
    real_open = Image.open

    def counting_open(fp: Path, *args: object, **kwargs: object) -> Image.Image:
        opened.append(Path(fp).name)
        return real_open(fp)

    monkeypatch.setattr(Image, "open", counting_open)
    ds = read_pope(_jsonl(tmp_path, RECORDS), image_dir=image_dir)
    assert opened == []
    first_batch = next(ds.batches(2))
    assert len(first_batch) == 2 and opened == ["a.jpg", "a.jpg"]


def test_malformed_json_names_the_line(tmp_path: Path, image_dir: Path) -> None:
    path = _write_lines(tmp_path / "pope_random.jsonl", [json.dumps(RECORDS[0]), "{not json"])
    with pytest.raises(DataError, match=r"pope_random.jsonl line 2: not valid JSON"):
        read_pope(path, image_dir=image_dir)


def test_missing_key_names_the_line_and_the_keys(tmp_path: Path, image_dir: Path) -> None:
    bad = {"question_id": 2, "image": "a.jpg", "label": "no"}
    with pytest.raises(DataError, match=r"line 2: missing text; the record has keys"):
        read_pope(_jsonl(tmp_path, [RECORDS[0], bad]), image_dir=image_dir)


def test_non_object_record(tmp_path: Path, image_dir: Path) -> None:
    with pytest.raises(DataError, match=r"line 2: expected a JSON object like .*; got \[1, 2\]"):
        read_pope(_jsonl(tmp_path, [RECORDS[0], [1, 2]]), image_dir=image_dir)


def test_bad_label_names_the_line(tmp_path: Path, image_dir: Path) -> None:
    bad = {**RECORDS[1], "label": "maybe"}
    with pytest.raises(DataError, match=r"line 2: label 'maybe' is not 'yes' or 'no'"):
        read_pope(_jsonl(tmp_path, [RECORDS[0], bad]), image_dir=image_dir)


def test_bad_label_in_json_array_names_the_record(tmp_path: Path, image_dir: Path) -> None:
    path = tmp_path / "gqa_pope_random.json"
    path.write_text(json.dumps([RECORDS[0], {**RECORDS[1], "label": 1}]), encoding="utf-8")
    with pytest.raises(DataError, match=r"record 2: label 1 is not 'yes' or 'no'"):
        read_pope(path, image_dir=image_dir)


def test_missing_image_names_the_line(tmp_path: Path, image_dir: Path) -> None:
    bad = {**RECORDS[2], "image": "missing.jpg"}
    with pytest.raises(DataError, match=r"line 3: image 'missing.jpg' not found in .*image_dir="):
        read_pope(_jsonl(tmp_path, [*RECORDS[:2], bad]), image_dir=image_dir)
    ds = read_pope(_jsonl(tmp_path, [*RECORDS[:2], bad]), image_dir=image_dir, check_images=False)
    with pytest.raises(DataError, match=r"image 'missing.jpg': expected an image file at .*"):
        ds[2]


def test_repeated_question_id(tmp_path: Path, image_dir: Path) -> None:
    with pytest.raises(DataError, match=r"line 2: question_id 1 already used at line 1"):
        read_pope(
            _jsonl(tmp_path, [RECORDS[0], {**RECORDS[1], "question_id": 1}]), image_dir=image_dir
        )


def test_counting_split_takes_integer_labels(tmp_path: Path, image_dir: Path) -> None:
    rec = {"question_id": 1, "image": "a.jpg", "text": "How many dogs are there?", "label": "03"}
    (q,) = read_pope(_jsonl(tmp_path, [rec], name="counting.jsonl"), image_dir=image_dir).questions
    assert (q.answer, q.label, q.category) == ("3", 3, "counting")
    with pytest.raises(DataError, match=r"line 1: label 'three' is not a count"):
        read_pope(
            _jsonl(tmp_path, [{**rec, "label": "three"}], name="counting.jsonl"),
            image_dir=image_dir,
        )


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"does not exist"):
        read_pope(tmp_path / "nope.json")
