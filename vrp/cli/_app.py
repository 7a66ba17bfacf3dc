"""Root of the `vrp` command: command groups register themselves on `app`."""

from typing import NoReturn

import typer

from ..core import ConfigError

app = typer.Typer(
    name="vrp",
    help="VRP, the VLM Reliability Probe: when and why does a VLM answer wrongly, and where inside?",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


EXIT_VRP_ERROR = 2
"""Exit code of a command stopped by a VRP error (bad input, unknown model, ...)."""


def check_min(option: str, value: int, minimum: int, hint: str) -> None:
    """Refuses an integer option below `minimum` before any work starts.

    Raises:
      ConfigError: `value` < `minimum`; the message names the option and `hint` says what to pass.
    """
    if value < minimum:
        raise ConfigError(f"{option} must be >= {minimum}; got {value}. {hint}")


def error_line(error: Exception) -> str:
    """The one line a VRP error prints as: ``error: <message>``, newlines folded into spaces."""
    return "error: " + " ".join(str(error).split())


def fail(error: Exception) -> NoReturn:
    """Prints a VRP error as one line on stderr and exits with `EXIT_VRP_ERROR`."""
    typer.echo(error_line(error), err=True)
    raise typer.Exit(code=EXIT_VRP_ERROR)


def main() -> None:
    """Entry point of the `vrp` console script: VRP errors print as one clear line, exit code 2."""
    from ..core import VrpError
    from . import _commands  # noqa: F401  (registers the command groups)

    try:
        app(standalone_mode=True)
    except VrpError as err:
        typer.echo(error_line(err), err=True)
        raise SystemExit(EXIT_VRP_ERROR) from None
