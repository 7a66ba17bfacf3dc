"""Writing a report's files all at once: everything is rendered in memory, written into a
temporary folder beside the target, then renamed into place, so a failure leaves no partial
output (and an earlier report at the same path intact until the new one is complete)."""

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..core import ConfigError
from ._doc import Document
from ._render import to_csv, to_html, to_markdown


@dataclass(frozen=True, kw_only=True)
class ReportFiles:
    """What a report wrote.

    Attributes:
      html: the self-contained page.
      markdown: the same tables in Markdown, figures linked from `folder`.
      folder: ``<stem>_files/`` beside the page: ``tables/*.csv`` and ``figures/*.png``.
      tables: the CSV files.
      figures: the PNG files.
    """

    html: Path
    markdown: Path
    folder: Path
    tables: tuple[Path, ...]
    figures: tuple[Path, ...]


def check_out(out: Path) -> Path:
    """`out` if it names an HTML file (its folder is created when written).

    Raises:
      ConfigError: `out` is a folder or does not end in .html.
    """
    if out.is_dir() or out.suffix.lower() not in (".html", ".htm"):
        raise ConfigError(
            f"--out {out} is not an HTML file name: expected a path ending in .html (the page; "
            f"its Markdown, CSV and PNG files go beside it). Pass e.g. --out {out / 'report.html'}"
            if out.is_dir() else
            f"--out {out} does not end in .html: expected the page's file name, e.g. "
            f"--out {out.with_suffix('.html')}."
        )  # fmt: skip
    return out


def write_document(doc: Document, out: Path) -> ReportFiles:
    """Renders `doc` and writes its files at `out` (see the module docstring)."""
    out = check_out(out)
    pages = {"html": to_html(doc), "md": to_markdown(doc, f"{out.stem}_files/figures")}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.stem}.", suffix=".tmp"))
    try:
        folder = tmp / f"{out.stem}_files"
        (folder / "tables").mkdir(parents=True)
        (folder / "figures").mkdir()
        for table in doc.tables():
            (folder / "tables" / f"{table.key}.csv").write_text(to_csv(table), encoding="utf-8")
        for figure in doc.figures():
            (folder / "figures" / f"{figure.key}.png").write_bytes(figure.png)
        (tmp / out.name).write_text(pages["html"], encoding="utf-8")
        (tmp / f"{out.stem}.md").write_text(pages["md"], encoding="utf-8")
        _move_into_place(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    final = out.parent / f"{out.stem}_files"
    return ReportFiles(
        html=out, markdown=out.with_suffix(".md"), folder=final,
        tables=tuple(final / "tables" / f"{t.key}.csv" for t in doc.tables()),
        figures=tuple(final / "figures" / f"{f.key}.png" for f in doc.figures()),
    )  # fmt: skip


def _move_into_place(tmp: Path, out: Path) -> None:
    """Companions first, the page last: a page on disk always has its files beside it."""
    folder = out.parent / f"{out.stem}_files"
    if folder.exists():
        old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.stem}.old.", suffix=".tmp"))
        os.replace(folder, old / "files")
        shutil.rmtree(old, ignore_errors=True)
    os.replace(tmp / folder.name, folder)
    for name in (f"{out.stem}.md", out.name):
        os.chmod(tmp / name, 0o644)
        os.replace(tmp / name, out.parent / name)
