"""`vrp data ...`: generate a synthetic POPE benchmark, print a benchmark's statistics."""

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ..core import VrpError
from ..data import (
    BenchmarkStats,
    Dataset,
    SyntheticConfig,
    benchmark_stats,
    load_config,
    read_benchmark,
    read_pope,
    vocabulary,
    write_benchmark,
)
from ._app import fail

data_app = typer.Typer(
    help="Benchmarks: generate synthetic POPE / counting / spatial sets, inspect POPE files.",
    no_args_is_help=True,
)

_DEFAULTS = SyntheticConfig()


def _names(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


@data_app.command()
def generate(  # noqa: PLR0913  (each option of a CLI command is one argument)
    out: Annotated[Path, typer.Option(help="Folder to write (must not exist unless --overwrite).")],
    seed: Annotated[
        int, typer.Option(help="Random seed; the same seed gives identical files.")
    ] = 0,
    n_per_split: Annotated[
        int, typer.Option(help="Questions per POPE split (even: half yes, half no).")
    ] = _DEFAULTS.n_per_split,
    n_counting: Annotated[int, typer.Option(help="Counting questions.")] = _DEFAULTS.n_counting,
    n_spatial: Annotated[int, typer.Option(help="Spatial questions (even).")] = _DEFAULTS.n_spatial,
    image_size: Annotated[int, typer.Option(help="Image side in pixels.")] = _DEFAULTS.image_size,
    grid: Annotated[int, typer.Option(help="Cells per side of the object grid.")] = _DEFAULTS.grid,
    colours: Annotated[str, typer.Option(help="Comma-separated colours.")] = ",".join(
        _DEFAULTS.colours
    ),
    shapes: Annotated[str, typer.Option(help="Comma-separated shapes.")] = ",".join(
        _DEFAULTS.shapes
    ),
    overwrite: Annotated[
        bool, typer.Option(help="Replace an existing benchmark at --out.")
    ] = False,
) -> None:
    """Write a synthetic benchmark (POPE-format question files plus PNG images) and its statistics."""
    console = Console()
    try:
        config = SyntheticConfig(
            seed=seed,
            n_per_split=n_per_split,
            n_counting=n_counting,
            n_spatial=n_spatial,
            image_size=image_size,
            grid=grid,
            colours=_names(colours),
            shapes=_names(shapes),
        )
        folder = write_benchmark(config, out, overwrite=overwrite)
        dataset = read_benchmark(folder, check_images=False)
    except VrpError as error:
        fail(error)
    console.print(f"Wrote [bold]{len(dataset)}[/bold] questions to {folder}")
    print_stats(benchmark_stats(dataset), console)


@data_app.command()
def stats(
    path: Annotated[Path, typer.Argument(help="A benchmark folder, or one POPE question file.")],
    image_dir: Annotated[
        Path | None, typer.Option(help="Image folder of a POPE file (only checked if given).")
    ] = None,
) -> None:
    """Print split sizes, yes/no balance, category counts and negative-sampling statistics."""
    try:
        dataset = _open(path, image_dir)
    except VrpError as error:
        fail(error)
    print_stats(benchmark_stats(dataset), Console())


@data_app.command()
def vocab(
    path: Annotated[
        Path | None, typer.Argument(help="A benchmark folder; the default config if omitted.")
    ] = None,
) -> None:
    """Print every token a generated question, answer or caption can contain, one per line."""
    try:
        config = load_config(path) if path is not None else SyntheticConfig()
    except VrpError as error:
        fail(error)
    typer.echo("\n".join(vocabulary(config)))


def _open(path: Path, image_dir: Path | None) -> Dataset:
    if path.is_dir():
        return read_benchmark(path, check_images=False)
    return read_pope(path, image_dir=image_dir, check_images=image_dir is not None)


def print_stats(stats: BenchmarkStats, console: Console) -> None:
    """Renders `stats` as rich tables: splits, counting answers, questions per category."""
    table = Table(title=f"Splits ({stats.n_images} images)")
    for header in ("split", "n", "images", "yes", "no", "yes %", "neg cooc", "neg freq"):
        table.add_column(header, justify="left" if header == "split" else "right")
    for s in stats.splits:
        yes, no = s.answers.get("yes"), s.answers.get("no")
        ratio = f"{100 * yes / s.n:.1f}" if yes is not None else "-"
        table.add_row(
            s.split,
            str(s.n),
            str(s.n_images),
            str(yes if yes is not None else "-"),
            str(no if no is not None else "-"),
            ratio,
            _fmt(s.negative_cooccurrence),
            _fmt(s.negative_frequency),
        )
    console.print(table)
    if stats.objects_per_image is not None:
        console.print(
            f"objects per image {stats.objects_per_image:.2f}; hard cases: "
            f"{100 * (stats.small_share or 0):.1f}% small, "
            f"{100 * (stats.occluded_share or 0):.1f}% partly occluded"
        )
    console.print(
        "neg cooc: mean P(absent object | present object) over 'no' questions; "
        "neg freq: mean share of images holding the absent object."
    )
    _print_counts(stats, console)
    _print_categories(stats, console)


def _print_counts(stats: BenchmarkStats, console: Console) -> None:
    for s in stats.splits:
        if s.split == "counting":
            table = Table(title="Counting answers")
            table.add_column("answer", justify="right")
            table.add_column("n", justify="right")
            for answer, n in s.answers.items():
                table.add_row(answer, str(n))
            console.print(table)


def _print_categories(stats: BenchmarkStats, console: Console) -> None:
    splits = [s for s in stats.splits if s.split not in ("counting", "spatial")]
    if not splits:
        return
    table = Table(title="Questions per category")
    table.add_column("category")
    for s in splits:
        table.add_column(s.split, justify="right")
    names = sorted({name for s in splits for name in s.categories})
    for name in names:
        table.add_row(name, *(str(s.categories.get(name, 0)) for s in splits))
    console.print(table)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
