"""`vrp report` and `vrp compare`: a run directory's tables and figures as an HTML page."""

from pathlib import Path
from typing import Annotated

import typer

from ..core import VrpError
from ._app import app, fail


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="A finished run directory (vrp run --out).")],
    out: Annotated[
        Path | None,
        typer.Option(
            help="HTML file to write (default RUN_DIR/report.html); .md, CSV and PNG "
            "files go beside it."
        ),
    ] = None,  # fmt: skip
) -> None:
    """Build the study's report of a run: one self-contained HTML page, Markdown, CSV and PNG."""
    from ..report import build_report

    try:
        files = build_report(run_dir, out)
    except VrpError as error:
        fail(error)
    typer.echo(f"Report: {files.html} ({len(files.tables)} tables, {len(files.figures)} "
               f"figures; Markdown {files.markdown.name}, CSV and PNG in {files.folder})")  # fmt: skip


@app.command()
def compare(
    run_a: Annotated[Path, typer.Argument(help="The first run directory (A).")],
    run_b: Annotated[Path, typer.Argument(help="The second run directory (B).")],
    out: Annotated[
        Path | None,
        typer.Option(help="HTML file to write (default compare.html beside RUN_A)."),
    ] = None,
) -> None:
    """Compare two runs: the same tables side by side, with paired differences B - A."""
    from ..report import compare_runs

    try:
        files = compare_runs(run_a, run_b, out)
    except VrpError as error:
        fail(error)
    typer.echo(f"Comparison: {files.html} ({len(files.tables)} tables; Markdown "
               f"{files.markdown.name}, CSV in {files.folder})")  # fmt: skip
