"""Imports every command module so that each registers its commands on the root app."""

from ._app import app
from ._data import data_app

app.add_typer(data_app, name="data")
from . import _inspect, _run  # noqa: F401,E402
from ._organisms import organisms_app  # noqa: E402

app.add_typer(organisms_app, name="organisms")
from . import _report, _serve  # noqa: F401,E402
