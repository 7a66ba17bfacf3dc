"""Root of the `vrp` command: command groups register themselves on `app`."""

from typing import NoReturn

import typer

app = typer.Typer(
    name="vrp",
    help="VRP, the VLM Reliability Probe: when and why does a VLM answer wrongly, and where inside?",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


EXIT_VRP_ERROR = 2
"""Exit code of a command stopped by a VRP error (bad input, unknown model, ...)."""


def fail(error: Exception) -> NoReturn:
    """Prints a VRP error as one line on stderr and exits with `EXIT_VRP_ERROR`."""
    typer.echo(f"error: {error}", err=True)
    raise typer.Exit(code=EXIT_VRP_ERROR)


def main() -> None:
    """Entry point of the `vrp` console script: VRP errors print as one clear line, exit code 2."""
    from ..core import VrpError
    from . import _commands  # noqa: F401  (registers the command groups)

    try:
        app(standalone_mode=True)
    except VrpError as err:
        typer.echo(f"error: {err}", err=True)
        raise SystemExit(EXIT_VRP_ERROR) from None
