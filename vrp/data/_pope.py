"""Reading and writing POPE question files.

POPE's COCO files are JSON Lines, one object per line:
``{"question_id": 1, "image": "COCO_val2014_000000310196.jpg", "text": "Is there a snowboard in
the image?", "label": "yes"}``; its A-OKVQA and GQA files hold the same objects in one JSON array.
Both are read here, and the synthetic generator writes the JSON Lines form, so one reader serves
real and synthetic data. Records are validated up front (the error names the line); images stay on
disk until a sample is read.
"""

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from PIL import Image

from ..core import DataError
from ._dataset import SPLITS, Question, QuestionDataset
from ._files import open_image, read_text

_KEYS = ("question_id", "image", "text", "label")
_ALIASES = {"text": ("text", "question"), "label": ("label", "answer")}  # variants seen in the wild
_OBJECT = re.compile(r"^\s*is there an? (.+?) in the (?:image|picture)\s*\?\s*$", re.IGNORECASE)
_EXAMPLE = (
    '{"question_id": 1, "image": "x.jpg", "text": "Is there a dog in the image?", "label": "no"}'
)


def infer_split(path: Path) -> str:
    """The split named in a file name ("coco_pope_adversarial.json" -> "adversarial"), else its stem."""
    stem = path.stem.lower()
    return next((s for s in SPLITS if s in stem), path.stem)


def question_category(text: str, split: str) -> str:
    """The object of a POPE question ("Is there a dog in the image?" -> "dog").

    Counting and spatial questions get their split name; a text off POPE's template gets "other".
    """
    if split in ("counting", "spatial"):
        return split
    match = _OBJECT.match(text)
    return match.group(1).strip().lower() if match else "other"


def pope_line(question: Question) -> str:
    """One JSON Lines record in POPE's key order (no trailing newline)."""
    record = {
        "question_id": question.question_id,
        "image": question.image_name,
        "text": question.question,
        "label": question.answer,
    }
    return json.dumps(record, ensure_ascii=True)


class FolderImages:
    """Loads images by name from a folder, one at a time, as RGB (the file is closed at once)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def __call__(self, name: str) -> Image.Image:
        return open_image(self.folder / name)


def read_pope(
    path: str | Path,
    *,
    image_dir: str | Path | None = None,
    split: str | None = None,
    check_images: bool = True,
) -> QuestionDataset:
    """Reads a POPE question file (JSON Lines or JSON array) as a dataset.

    Args:
      path: the question file (UTF-8; a byte-order mark is allowed).
      image_dir: folder the ``image`` names are relative to; the file's folder if None.
      split: split name; inferred from the file name ("..._popular.json") if None. The split
        "counting" expects integer labels, every other split "yes" / "no" (any case).
      check_images: verify up front that `image_dir` is a folder and every image file exists.

    Returns:
      The questions; images are opened only when a sample is read, and converted to RGB with
      `vrp.to_rgb` (transparency composited onto white).

    Raises:
      DataError: the file is missing, empty or not UTF-8, a record is malformed, a label is
        invalid, a question id repeats, or an image is missing; the message names the line (or
        array record). Reading a sample whose image file is corrupt raises it too.
    """
    path = Path(path)
    folder = Path(image_dir) if image_dir is not None else path.parent
    questions = read_questions(path, image_dir=folder, split=split, check_images=check_images)
    return QuestionDataset(questions, FolderImages(folder))


def read_questions(
    path: Path, *, image_dir: Path, split: str | None = None, check_images: bool = True
) -> list[Question]:
    """The validated questions of a POPE file; see `read_pope` for the arguments and errors."""
    text = read_text(path, "POPE file")
    split = split if split is not None else infer_split(path)
    if check_images and not image_dir.is_dir():
        raise DataError(
            f"image folder {image_dir} of {path} is not a folder. Pass image_dir= the folder "
            "holding the images (for POPE's COCO files: val2014), or check_images=False."
        )
    questions: list[Question] = []
    seen: dict[int, str] = {}
    for where, record in _records(path, text):
        question = _question(record, f"{path} {where}", split)
        if question.question_id in seen:
            raise DataError(
                f"{path} {where}: question_id {question.question_id} already used at "
                f"{seen[question.question_id]}. Question ids must be unique within a file."
            )
        seen[question.question_id] = where
        if check_images and not (image_dir / question.image_name).is_file():
            raise DataError(
                f"{path} {where}: image {question.image_name!r} not found in {image_dir}. Pass "
                "image_dir= the folder holding the images (for POPE's COCO files: val2014)."
            )
        questions.append(question)
    if not questions:
        raise DataError(
            f"{path} holds no questions; expected JSON Lines or a JSON array of records like "
            f"{_EXAMPLE}. Check that the right file was passed."
        )
    return questions


def _records(path: Path, text: str) -> Iterator[tuple[str, Any]]:
    if text.lstrip().startswith("["):
        yield from _array_records(path, text)
        return
    for lineno, line in enumerate(text.split("\n"), start=1):  # not splitlines: JSON allows U+2028
        if line.strip():
            yield f"line {lineno}", _parse_line(line, f"{path} line {lineno}", text)


def _array_records(path: Path, text: str) -> Iterator[tuple[str, Any]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise DataError(
            f"{path} line {error.lineno}: not valid JSON ({error.msg}). A JSON-array POPE "
            f"file holds a list of objects like {_EXAMPLE}."
        ) from None
    yield from ((f"record {i}", record) for i, record in enumerate(data, start=1))


def _parse_line(line: str, where: str, text: str) -> Any:
    try:
        return json.loads(line)
    except json.JSONDecodeError as error:
        hint = (
            " The file holds one JSON object spread over several lines: write one record per "
            "line, or a JSON array of records."
            if _is_one_object(text)
            else ""
        )
        raise DataError(
            f"{where}: not valid JSON ({error.msg}). Each line of a POPE JSON Lines file must be "
            f"one object like {_EXAMPLE}.{hint}"
        ) from None


def _is_one_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except json.JSONDecodeError:
        return False


def _question(record: Any, where: str, split: str) -> Question:
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected a JSON object like {_EXAMPLE}; got {record!r:.80}.")
    values = {key: _field(record, key) for key in _KEYS}
    missing = [key for key, value in values.items() if value is _MISSING]
    if missing:
        raise DataError(
            f"{where}: missing {', '.join(missing)}; the record has keys {sorted(record)}. A POPE "
            f"record needs question_id, image, text, label, e.g. {_EXAMPLE}."
        )
    text, image = values["text"], values["image"]
    for key, value in (("text", text), ("image", image)):
        if not isinstance(value, str) or not value.strip():
            raise DataError(
                f"{where}: {key} must be a non-empty string; got {value!r:.80}. Fix the record, "
                f"e.g. {_EXAMPLE}."
            )
    return Question(
        question_id=_question_id(values["question_id"], where),
        image_name=image,
        question=text,
        answer=_label(values["label"], where, split),
        split=split,
        category=question_category(text, split),
    )


_MISSING = object()


def _field(record: dict[str, Any], key: str) -> Any:
    return next((record[k] for k in _ALIASES.get(key, (key,)) if k in record), _MISSING)


def _question_id(value: Any, where: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdecimal():
        return int(value)
    raise DataError(
        f"{where}: question_id must be an integer (or a string of digits); got {value!r:.80}. "
        "Fix the record."
    )


def _label(value: Any, where: str, split: str) -> str:
    if split == "counting":
        text = (
            str(value).strip()
            if isinstance(value, int | str) and not isinstance(value, bool)
            else ""
        )
        if text.isdecimal():
            return str(int(text))
        raise DataError(
            f"{where}: label {value!r:.80} is not a count; counting labels are non-negative "
            'integers (e.g. "3"). If this is a yes/no file, pass split= another name.'
        )
    label = value.strip().lower() if isinstance(value, str) else None
    if label in ("yes", "no"):
        return label
    raise DataError(
        f"{where}: label {value!r:.80} is not 'yes' or 'no'. POPE labels are yes/no; fix the "
        "record (or, for a counting file, pass split='counting')."
    )
