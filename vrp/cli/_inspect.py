"""`vrp inspect`: what a model looks like to VRP, and one answer."""

from typing import Annotated

import typer
from PIL import Image, ImageDraw
from rich.console import Console
from rich.table import Table

from ..core import VrpError
from ._app import app, fail


def _demo_image(size: int) -> Image.Image:
    """A red circle and a blue square on a dark background."""
    image = Image.new("RGB", (size, size), (20, 20, 30))
    draw = ImageDraw.Draw(image)
    q = size // 4
    draw.ellipse((q // 2, q // 2, q // 2 + q, q // 2 + q), fill=(220, 40, 40))
    draw.rectangle((2 * q, 2 * q, 3 * q, 3 * q), fill=(40, 60, 220))
    return image


@app.command()
def inspect(
    model: Annotated[
        str | None, typer.Argument(help="Built-in name, checkpoint directory or Hub id.")
    ] = None,
    question: Annotated[str, typer.Option(help="Question asked about the demo image.")] = (
        "is there a red circle in the image ?"
    ),
    image_size: Annotated[int, typer.Option(help="Side of the demo image in pixels.")] = 64,
) -> None:
    """Print a model's towers, sites, image tokens and patch grid, and one answer."""
    from ..models import default_model, load

    console = Console()
    try:
        vlm = load(model or default_model())
        inputs = vlm.encode([_demo_image(image_size)], [question])
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
    console.print(f"Q: {question}\nA: {answer!r}  (yes-no logit margin {margin:+.3f})")
