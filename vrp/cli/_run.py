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
    remote: Annotated[
        str | None,
        typer.Option(help="Run every trace on this `vrp serve` URL (key: NDIF_API_KEY)."),
    ] = None,
    batch_size: Annotated[int | None, typer.Option(help="Questions per trace.")] = None,
    samples: Annotated[
        int | None, typer.Option(help="Self-consistency samples K (0: off).")
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="Seed of data, sampling, folds, controls.")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bars or summary.")] = False,
    executor: Annotated[
        str, typer.Option(help="Where batches run: 'local' or 'ray' (Ray actors).")
    ] = "local",
    address: Annotated[
        str | None, typer.Option(help="Ray cluster to join (default: start a local one).")
    ] = None,
    workers: Annotated[int, typer.Option(help="Ray workers (model replicas) per model.")] = 2,
    gpus_per_worker: Annotated[float, typer.Option(help="GPUs each Ray worker reserves.")] = 0.0,
) -> None:
    """Run the VRP study on the built-in organisms (default) or your models and data."""
    from ..study import RichProgress, config_from_mapping, read_config_file, run_study

    flags: dict[str, Any] = {
        "models": model or None, "data": data, "images": images, "n": n,
        "stages": stages.split(",") if stages else None, "out": out, "device": device,
        "dtype": dtype, "remote": remote, "batch_size": batch_size, "samples": samples, "seed": seed,
    }  # fmt: skip
    try:
        values = read_config_file(config_file) if config_file else {}
        values.update({k: v for k, v in flags.items() if v is not None})
        config = config_from_mapping(values)
        pool = _executor(config, executor, address, workers, gpus_per_worker)
        try:
            result = run_study(config, progress=None if quiet else RichProgress(), executor=pool)
        finally:
            if pool is not None:
                pool.close()
    except VrpError as error:
        fail(error)
    if not quiet:
        _print_summary(result)


def _executor(
    config: Any, name: str, address: str | None, workers: int, gpus: float
) -> Any:  # fmt: skip
    """None for local batches, or a `RayExecutor`.

    Raises:
      ConfigError: an unknown executor, Ray options without Ray, or bad Ray options.
    """
    from ..core import ConfigError
    from ..study import RayExecutor, RayOptions

    if name not in ("local", "ray"):
        raise ConfigError(f"executor: expected 'local' or 'ray', got {name!r}.")
    if name == "local":
        if address is not None:
            raise ConfigError("--address joins a Ray cluster: pass it with --executor ray.")
        return None
    return RayExecutor(config, RayOptions(address=address, workers=workers,
                                          gpus_per_worker=gpus))  # fmt: skip


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
