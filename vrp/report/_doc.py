"""The report as data: sections of tables and figures, rendered to HTML and Markdown later.

Building (reading the run, computing what to show) and rendering (HTML, Markdown, CSV, PNG) are
kept apart, so that each section can be tested without parsing HTML, and the two renderings can
never disagree on a number.
"""

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, kw_only=True)
class Table:
    """A table: display text per cell, and the raw values behind it for the CSV file.

    Attributes:
      key: file stem of its CSV (``tables/<key>.csv``), unique in a report.
      title: caption.
      columns: column headers of the display rows.
      rows: display text, one tuple per row, aligned with `columns`.
      data: raw values (full precision, None where undefined), one dict per row; the CSV.
      note: a sentence under the table (methods, caveats).
    """

    key: str
    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    data: tuple[dict[str, Any], ...] = ()
    note: str = ""

    def __post_init__(self) -> None:
        ragged = [i for i, row in enumerate(self.rows) if len(row) != len(self.columns)]
        if ragged:  # a bug in a section builder, not bad input: say which table and row
            raise ValueError(
                f"table {self.key!r}: rows {ragged[:5]} do not have one cell per column "
                f"({len(self.columns)} columns: {self.columns})."
            )


@dataclass(frozen=True, kw_only=True)
class Figure:
    """A PNG figure.

    Attributes:
      key: file stem of its PNG (``figures/<key>.png``), unique in a report.
      title: caption.
      png: the encoded image.
      alt: text alternative (what the figure shows).
    """

    key: str
    title: str
    png: bytes
    alt: str


@dataclass(frozen=True, kw_only=True)
class Section:
    """A section of the report.

    Attributes:
      key: anchor id.
      title: heading.
      intro: what the section shows and how to read it.
      tables: its tables.
      figures: its figures.
      absent: why the section is empty ("" when it is not): the run lacks the stage, or every
        model's result is undefined.
      notes: further remarks (caveats, what the run does not store).
    """

    key: str
    title: str
    intro: str = ""
    tables: tuple[Table, ...] = ()
    figures: tuple[Figure, ...] = ()
    absent: str = ""
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Document:
    """A whole report: a title, facts about the run(s), and sections in order.

    Attributes:
      title: the page title.
      facts: (label, value) pairs shown at the top (models, questions, versions, ...).
      sections: the sections, in reading order.
    """

    title: str
    facts: tuple[tuple[str, str], ...] = ()
    sections: tuple[Section, ...] = field(default_factory=tuple)

    def tables(self) -> list[Table]:
        return [t for s in self.sections for t in s.tables]

    def figures(self) -> list[Figure]:
        return [f for s in self.sections for f in s.figures]


def absent_section(key: str, title: str, reason: str) -> Section:
    """A section the run cannot fill, saying why."""
    return Section(key=key, title=title, absent=reason)


def missing_stage(stage: str) -> str:
    """Why a section is absent when the run did not include `stage`."""
    return (
        f"The run did not include the {stage!r} stage (see its config.json 'stages'). Rerun "
        f"`vrp run` with --stages including {stage} into a new --out folder to get this section."
    )
