"""Running the app on uvicorn: in the foreground (`serve`, what `vrp serve` calls) or in a
background thread (`Server`, for notebooks, docs and tests)."""

import logging
import threading
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any

import uvicorn

from ..core import ConfigError
from ._app import create_app
from ._config import ServeConfig
from ._hosted import HostedModel


class _Uvicorn(uvicorn.Server):
    """uvicorn's server, reporting the address it actually bound (port 0 picks a free one)."""

    def __init__(self, config: uvicorn.Config, on_ready: Callable[[str], None] | None) -> None:
        super().__init__(config)
        self.on_ready = on_ready
        self.url = ""

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets)
        if self.started and self.servers:
            host, port = self.servers[0].sockets[0].getsockname()[:2]
            shown = f"[{host}]" if ":" in host else host
            self.url = f"http://{shown}:{port}"
            if self.on_ready is not None:
                self.on_ready(self.url)


def _uvicorn(
    config: ServeConfig,
    hosted: Sequence[HostedModel] | None,
    on_ready: Callable[[str], None] | None,
    log_level: str,
) -> _Uvicorn:
    app = create_app(config, hosted)
    settings = uvicorn.Config(
        app,
        host=config.host,
        port=config.port,
        log_level=log_level,
        ws="websockets-sansio",
        ws_max_size=int(config.max_request_mb * 2**20),
        lifespan="on",
        access_log=False,
    )
    return _Uvicorn(settings, on_ready)


def serve(
    config: ServeConfig,
    *,
    on_ready: Callable[[str], None] | None = None,
    log_level: str = "info",
) -> None:
    """Runs the server in the foreground until interrupted (Ctrl-C or SIGTERM).

    Args:
      config: what to host and how.
      on_ready: called with the server's URL once it accepts requests.
      log_level: level of the server's own log on stderr (refused and failed jobs, model
        reloads); the web server's per-connection lines are left out.
    """
    logger = logging.getLogger("vrp.serve")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s vrp serve %(levelname)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(log_level.upper())
    server = _uvicorn(config, None, on_ready, "warning")
    server.run()
    if not server.started:
        raise ConfigError(
            f"vrp serve could not start on {config.host}:{config.port} (see the log above: the "
            "port may be taken, or a model failed to load)."
        )


class Server:
    """`vrp serve` in a background thread of this process, as a context manager.

    Example:
      ``with Server(ServeConfig(models=("tiny/llava",), port=0)) as server: ... server.url``

    Args:
      config: what to host and how (port 0: any free port).
      hosted: already loaded models to serve (default: load `config.models`).
      log_level: uvicorn's log level.
      startup_timeout_s: how long to wait for the models to load and the port to open.
    """

    def __init__(
        self,
        config: ServeConfig,
        *,
        hosted: Sequence[HostedModel] | None = None,
        log_level: str = "warning",
        startup_timeout_s: float = 300.0,
    ) -> None:
        self.config = config
        self._ready = threading.Event()
        self._server = _uvicorn(config, hosted, lambda _: self._ready.set(), log_level)
        self._thread = threading.Thread(target=self._server.run, name="vrp-serve", daemon=True)
        self._timeout = startup_timeout_s

    @property
    def url(self) -> str:
        """The base URL clients pass as ``remote=`` (set once the server is up)."""
        return self._server.url

    def start(self) -> "Server":
        self._thread.start()
        while not self._ready.wait(0.1):
            if not self._thread.is_alive() or self._timeout <= 0:
                self.stop()
                raise ConfigError(
                    f"The server did not start on {self.config.host}:{self.config.port} (see the "
                    "log: the port may be taken, or a model failed to load)."
                )
            self._timeout -= 0.1
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(30)

    def __enter__(self) -> "Server":
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
