"""`vrp run`: the VRP study end to end, resumable, with a summary at the end."""

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from ..core import VrpError
from ._app import app, fail


@app.command()
def run(  # noqa: PLR0913  (each option of a CLI command is one argument)
    config_file: Annotated[
        Path | None, typer.Argument(help="TOML config (top level or a [run] table); flags win.")
    ] = None,
    model: Annotated[
        list[str] | None,
        typer.Option("--model", help="Model: built-in name, checkpoint folder or Hub id (repeat)."),
    ] = None,
    data: Annotated[str | None, typer.Option(help="'synthetic' or a POPE file.")] = None,
    images: Annotated[Path | None, typer.Option(help="Image folder of a POPE file.")] = None,
    n: Annotated[
        int | None, typer.Option(help="Questions per split (synthetic) or first n.")
    ] = None,
    stages: Annotated[
        str | None, typer.Option(help="Comma-separated stages (default: all).")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Run directory (rerun to resume).")] = None,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, cuda:1, ...")] = None,
    dtype: Annotated[str | None, typer.Option(help="float32, bfloat16 or float16.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Questions per trace.")] = None,
    samples: Annotated[
        int | None, typer.Option(help="Self-consistency samples K (0: off).")
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="Seed of data, sampling, folds, controls.")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bars or summary.")] = False,
) -> None:
    """Run the VRP study on the built-in organisms (default) or your models and data."""
    from ..study import RichProgress, config_from_mapping, read_config_file, run_study

    flags: dict[str, Any] = {
        "models": model or None, "data": data, "images": images, "n": n,
        "stages": stages.split(",") if stages else None, "out": out, "device": device,
        "dtype": dtype, "batch_size": batch_size, "samples": samples, "seed": seed,
    }  # fmt: skip
    try:
        values = read_config_file(config_file) if config_file else {}
        values.update({k: v for k, v in flags.items() if v is not None})
        config = config_from_mapping(values)
        result = run_study(config, progress=None if quiet else RichProgress())
    except VrpError as error:
        fail(error)
    if not quiet:
        _print_summary(result)


def _print_summary(result: Any) -> None:
    from ..study._summary import COLUMNS, summary_rows

    console = Console()
    rows = summary_rows(result.results)
    table = Table("", *(row["model"] for row in rows),
                  title="VRP study (95% CIs; changes are paired accuracy differences)")  # fmt: skip
    signals = [k for k in rows[0] if k.startswith("AUROC ")]
    for column in (*COLUMNS[1:], *signals):
        table.add_row(column, *(row.get(column, "") for row in rows))
    console.print(table)
    state = "resumed" if result.resumed else "finished"
    console.print(f"Run {state} in {result.seconds:.0f} s: {result.root}")
