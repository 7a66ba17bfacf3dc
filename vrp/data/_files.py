"""File handling shared by the readers and writers: text, images, and output folders.

Readers turn every operating-system or decoding failure into a `DataError` that names the file;
writers check up front that their output folder can be created, and replace a finished folder in
one rename, so a failure never leaves half-written output behind.
"""

import os
import shutil
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from ..core import ConfigError, DataError, to_rgb


def read_text(path: Path, what: str) -> str:
    """The text of `path`, decoded as UTF-8 (a leading byte-order mark is dropped).

    Args:
      path: the file.
      what: what the file is, for messages ("POPE file", "benchmark.json").

    Raises:
      DataError: the file is missing, is a folder, cannot be read, or is not UTF-8.
    """
    if path.is_dir():
        raise DataError(f"{what} {path} is a folder; expected a file. Pass the file's own path.")
    if not path.is_file():
        raise DataError(f"{what} {path} does not exist. Check the path.")
    try:
        data = path.read_bytes()
    except OSError as error:
        raise DataError(
            f"{what} {path} cannot be read ({error.strerror}). Check its permissions."
        ) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise DataError(
            f"{path} line {line}: expected UTF-8 text; byte {data[error.start]:#04x} at offset "
            f"{error.start} is not UTF-8. Re-save the {what} as UTF-8."
        ) from None


def open_image(path: Path) -> Image.Image:
    """Reads an image file as RGB with `vrp.to_rgb`; the file is closed before returning.

    Raises:
      DataError: the file is missing, is not an image, or is corrupt, truncated or empty.
    """
    if not path.is_file():
        raise DataError(
            f"expected an image file at {path}; there is none. Pass image_dir= the folder holding "
            "the images (for POPE's COCO files: val2014)."
        )
    try:
        with Image.open(path) as image:
            return to_rgb(image)
    except (UnidentifiedImageError, OSError) as error:
        raise DataError(
            f"expected an image file at {path}; PIL cannot read it ({error}). The file is not an "
            "image, or is corrupt or truncated: re-download or re-export it."
        ) from None


def check_output_folder(out: Path, what: str) -> None:
    """Refuses an output folder that cannot be created, before any work is done.

    Args:
      out: the folder to create (it may exist).
      what: what the folder is, for messages ("the benchmark folder").

    Raises:
      ConfigError: `out` or one of its parents is a file, or the nearest existing folder is not
        writable.
    """
    if out.exists() and not out.is_dir():
        raise ConfigError(f"cannot create {what} {out}: a file is there. Choose another path.")
    ancestor = out
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if ancestor != out and not ancestor.is_dir():
        raise ConfigError(
            f"cannot create {what} {out}: {ancestor} is a file, not a folder. Choose a path "
            "under a folder."
        )
    target = ancestor if ancestor.is_dir() else ancestor.parent
    if not os.access(target, os.W_OK | os.X_OK):
        raise ConfigError(
            f"cannot create {what} {out}: {target} is not writable. Choose a folder you can "
            "write to."
        )


def first_missing(path: Path) -> Path | None:
    """The outermost folder of `path` that does not exist yet (None if `path` exists)."""
    if path.exists():
        return None
    while not path.parent.exists():
        path = path.parent
    return path


def replace_folder(staging: Path, target: Path) -> None:
    """Moves the finished folder `staging` to `target`, replacing any folder there.

    The old `target` is renamed aside first and restored if the second rename fails, so `target`
    always holds either the old or the new folder.
    """
    if not target.exists():
        staging.rename(target)
        return
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    target.rename(old)
    try:
        staging.rename(target)
    except BaseException:
        old.rename(target)
        raise
    shutil.rmtree(old)
