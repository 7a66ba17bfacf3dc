"""`vrp inspect`: what a model looks like to VRP, and one answer."""

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ..core import VrpError
from ..data import Sample, SyntheticConfig, generate
from ._app import app, check_min, fail

_MIN_SIZE = 32
_SIZE_HINT = "The demo scene is a 4x4 grid of cells of at least 8 px; pass e.g. --image-size 64."


def _demo_sample(size: int) -> Sample:
    """The first question of a small synthetic benchmark (seed 0) drawn at `size` pixels."""
    config = SyntheticConfig(n_per_split=2, n_counting=0, n_spatial=0, seed=0, image_size=size)
    return generate(config)[0]


@app.command()
def inspect(
    model: Annotated[
        str | None, typer.Argument(help="Built-in name, checkpoint directory or Hub id.")
    ] = None,
    question: Annotated[
        str | None,
        typer.Option(help="Question asked about the demo image (default: its benchmark question)."),
    ] = None,
    image_size: Annotated[int, typer.Option(help="Side of the demo image in pixels.")] = 64,
) -> None:
    """Print a model's towers, sites, image tokens and patch grid, and one answer."""
    from ..models import default_model, load

    console = Console()
    try:
        check_min("--image-size", image_size, _MIN_SIZE, _SIZE_HINT)
        sample = _demo_sample(image_size)
        vlm = load(model or default_model())
        inputs = vlm.encode([sample.image], [question or sample.question])
    except VrpError as error:
        fail(error)
    info = vlm.info(inputs)
    console.print(
        f"[bold]{info.name}[/bold]  family={info.family}  "
        f"parameters={info.n_parameters:,}  attention={info.attn_implementation}"
    )
    table = Table("tower", "layers", "heads", "d_model", "d_head", "d_mlp", "components")
    for tower, sizes in info.towers.items():
        table.add_row(
            tower,
            *(str(sizes[k]) for k in ("layers", "heads", "d_model", "d_head", "d_mlp")),
            ", ".join(sizes["components"]),
        )
    console.print(table)
    console.print(
        f"image tokens: {info.image_tokens}  patch grid: {info.grid[0]}x{info.grid[1]}  "
        f"prompt tokens: {inputs.seq_len}"
    )
    margin = float(vlm.yes_no_margin(vlm.answer_logits(inputs))[0])
    answer = vlm.generate(inputs, max_new_tokens=6)[0]
    truth = "" if question else f"  truth: {sample.answer!r}"
    console.print(
        f"Q: {question or sample.question}\nA: {answer!r}  (yes-no logit margin {margin:+.3f})"
        + truth
    )
