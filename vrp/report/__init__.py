"""The study's report: `vrp report` and `vrp compare`, built from run directories alone.

`build_report` reads a finished run directory (`vrp run`'s config, manifest, results JSON and
records) and writes one self-contained HTML page (figures embedded as base64 PNG, inline CSS, no
script, no network), the same tables in Markdown, every table as CSV and every figure as PNG.
`compare_runs` puts two runs side by side with paired differences on their shared questions.
Neither loads a model.
"""

from ._compare import compare_runs as compare_runs
from ._doc import (
    Document as Document,
    Figure as Figure,
    Section as Section,
    Table as Table,
)
from ._published import (
    PUBLISHED as PUBLISHED,
    family_of as family_of,
    published_family as published_family,
)
from ._report import build_document as build_document, build_report as build_report
from ._rundata import RunData as RunData, read_run as read_run
from ._write import ReportFiles as ReportFiles

__all__ = [
    "PUBLISHED",
    "Document",
    "Figure",
    "ReportFiles",
    "RunData",
    "Section",
    "Table",
    "build_document",
    "build_report",
    "compare_runs",
    "family_of",
    "published_family",
    "read_run",
]
