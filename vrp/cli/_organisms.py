"""`vrp organisms ...`: train, evaluate, ship and describe the model organisms."""

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ..core import VrpError
from ..data._files import check_output_folder
from ._app import check_min, fail

organisms_app = typer.Typer(
    help="Model organisms: small trained VLMs of the registered families, shipped with VRP.",
    no_args_is_help=True,
)


_FAMILY_HELP = "A family with an organism recipe (vrp.organisms.RECIPES; others are refused)."


def _model_name(name: str) -> str:
    """`llava` is short for `organism/llava`; paths and other names pass through."""
    from ..organisms._card import FAMILIES

    return f"organism/{name}" if name in FAMILIES else name


@organisms_app.command()
def train(  # noqa: PLR0913  (each option of a CLI command is one argument)
    family: Annotated[str, typer.Option(help=_FAMILY_HELP)],
    seed: Annotated[int, typer.Option(help="Seeds the initial weights and the training data.")] = 0,
    out: Annotated[
        Path | None, typer.Option(help="Run folder (default runs/<family>-seed<seed>).")
    ] = None,
    steps: Annotated[
        int | None, typer.Option(help="Steps instead of the recipe's (schedule stretched to fit).")
    ] = None,
    resume: Annotated[bool, typer.Option(help="Continue the checkpoint in --out.")] = False,
    threads: Annotated[
        int, typer.Option(help="torch CPU threads (results are bit-exact per thread count).")
    ] = 2,
    validate_every: Annotated[
        int, typer.Option(help="Track validation accuracy every N steps (0: never).")
    ] = 250,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Train an organism with its shipped recipe; writes <out>/checkpoint.pt and <out>/model."""
    from ..organisms import train as run

    folder = out if out is not None else Path("runs") / f"{family}-seed{seed}"
    try:
        _check_train_options(seed=seed, steps=steps, threads=threads, validate_every=validate_every)
        result = run(
            family,
            seed=seed,
            out=folder,
            steps=steps,
            resume=resume,
            threads=threads,
            progress=progress,
            validate_every=validate_every,
        )
    except VrpError as error:
        fail(error)
    console = Console()
    loss = result.final_qa_loss
    console.print(
        f"Trained {family} (seed {seed}) for {result.steps} steps in {result.seconds:.0f} s on "
        f"{threads} threads; answer loss {'n/a' if loss is None else f'{loss:.4f}'} (mean of "
        f"the last {min(50, result.steps)} steps)."
    )
    console.print(f"Load it with vrp.load({str(result.model_dir)!r})")


def _check_train_options(
    *, seed: int, steps: int | None, threads: int, validate_every: int
) -> None:
    check_min("--seed", seed, 0, "Training seeds are non-negative integers, e.g. --seed 0.")
    if steps is not None:
        check_min("--steps", steps, 1, "Omit --steps to train for the recipe's steps.")
    check_min("--threads", threads, 1, "Pass the number of CPU cores to use, e.g. --threads 2.")
    check_min("--validate-every", validate_every, 0, "Pass 0 to skip validation.")


@organisms_app.command()
def evaluate(
    name: Annotated[str, typer.Argument(help="An organism (llava, organism/llava) or a folder.")],
    n: Annotated[int, typer.Option(help="Questions per POPE split (even).")] = 300,
    n_counting: Annotated[int | None, typer.Option(help="Counting questions (default n).")] = None,
    n_spatial: Annotated[int | None, typer.Option(help="Spatial questions (default n).")] = None,
    seed: Annotated[int, typer.Option(help="Benchmark seed, below 1,000,000 (unseen).")] = 2025,
    method: Annotated[str, typer.Option(help="generate (greedy text) or logits.")] = "generate",
) -> None:
    """Score a model on a fresh synthetic POPE + counting + spatial benchmark."""
    from ..models import load
    from ..organisms import evaluate_organism, evaluation_set
    from ..organisms._evaluate import as_method

    try:
        how = as_method(method)
        dataset = evaluation_set(
            n_per_split=n,
            n_counting=n if n_counting is None else n_counting,
            n_spatial=n if n_spatial is None else n_spatial,
            seed=seed,
        )
        report = evaluate_organism(load(_model_name(name)), dataset, method=how, seed=seed)
    except VrpError as error:
        fail(error)
    _print_report(report, Console())


def _print_report(report: object, console: Console) -> None:
    from ..data import BinaryMetrics
    from ..organisms import OrganismReport

    assert isinstance(report, OrganismReport)  # typed loosely to keep imports lazy
    table = Table(title=f"{report.name} on seed {report.seed} ({report.method})")
    for header in ("split", "n", "accuracy [95% CI]", "precision", "recall", "F1", "yes-ratio"):
        table.add_column(header, justify="left" if header == "split" else "right")
    for split, m in report.metrics.splits.items():
        acc = f"{m.accuracy.estimate:.3f} [{m.accuracy.ci_low:.3f}, {m.accuracy.ci_high:.3f}]"
        if isinstance(m, BinaryMetrics):
            extra = [m.precision, m.recall, m.f1, m.yes_ratio]
            table.add_row(split, str(m.n), acc, *(f"{e.estimate:.3f}" for e in extra))
        else:
            table.add_row(split, str(m.n), acc, "-", "-", "-", "-")
    console.print(table)
    console.print(
        f"wrong answers: {report.wrong.estimate:.3f} of {report.wrong.n}; majority-answer "
        f"baseline: " + ", ".join(f"{s} {c:.2f}" for s, c in report.chance.items())
    )


@organisms_app.command()
def card(
    name: Annotated[str, typer.Argument(help=_FAMILY_HELP)],
    write: Annotated[
        bool, typer.Option(help="Re-evaluate and rewrite the card (else print the shipped one).")
    ] = False,
    docs: Annotated[
        Path | None, typer.Option(help="With --write: also copy the card into this folder.")
    ] = None,
    n: Annotated[int, typer.Option(help="With --write: questions per POPE split.")] = 3000,
    seed: Annotated[int, typer.Option(help="With --write: benchmark seed.")] = 2025,
) -> None:
    """Print an organism's model card, or regenerate it from a fresh evaluation."""
    from ..organisms import build_card, shipped_card, write_card

    family = name.removeprefix("organism/")
    try:
        if not write:
            typer.echo(shipped_card(family))
            return
        if docs is not None:
            check_output_folder(docs, "the --docs folder")
        markdown = build_card(family, n_per_split=n, seed=seed)
        paths = write_card(family, markdown, docs_dir=docs)
    except VrpError as error:
        fail(error)
    Console().print("Wrote " + ", ".join(str(p) for p in paths))


@organisms_app.command()
def ship(
    model_dir: Annotated[Path, typer.Argument(help="The model/ folder of a training run.")],
    family: Annotated[str, typer.Option(help=_FAMILY_HELP)],
) -> None:
    """Copy a trained model into the package, where vrp.load("organism/<family>") finds it."""
    from ..organisms import ship as copy_in

    try:
        target = copy_in(model_dir, family)
    except VrpError as error:
        fail(error)
    Console().print(f"Shipped {model_dir} as organism/{family} ({target}).")
