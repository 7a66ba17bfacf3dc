"""The `vrp` command line. Each command group lives in its own module and is registered here."""

from ._app import app as app, main as main
