"""`vrp serve`: a self-hosted backend speaking nnsight 0.8.1's remote protocol.

Clients need nothing but nnsight: ``model.trace(..., remote="http://host:port")`` ships the trace,
the server runs it on the model it hosts under that name, and the saved values come back. VRP's
intervention graphs run there with ``ExecutionConfig(backend=URL)``. One worker thread per hosted
model runs that model's jobs in order; request code runs in a restricted environment (see the
remote guide for what it refuses, and its limits).

Names are imported on first use, so ``vrp serve`` checks its options before loading the web
server and the models.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._config import ServeConfig as ServeConfig, read_api_keys as read_api_keys
    from ._errors import (
        LimitError as LimitError,
        SandboxError as SandboxError,
        ServeError as ServeError,
    )
    from ._hosted import HostedModel as HostedModel
    from ._server import Server as Server, serve as serve

_HOMES = {
    "ServeConfig": "._config",
    "read_api_keys": "._config",
    "LimitError": "._errors",
    "SandboxError": "._errors",
    "ServeError": "._errors",
    "HostedModel": "._hosted",
    "Server": "._server",
    "serve": "._server",
}

__all__ = [
    "HostedModel",
    "LimitError",
    "SandboxError",
    "ServeConfig",
    "ServeError",
    "Server",
    "read_api_keys",
    "serve",
]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'vrp.serve' has no attribute {name!r}")
    value = getattr(import_module(_HOMES[name], __name__), name)
    globals()[name] = value
    return value
