"""How a VRP model names itself to a remote server: by the name it was loaded under.

nnsight identifies the model of a remote trace by a key, ``"<wrapper class>:<json>"`` whose JSON
holds the Hub ``repo_id`` (canonicalised through the Hub). VRP's built-in models (``tiny/llava``,
``organism/llava``) and local checkpoints have no Hub id, so `NamedTransformersModel` puts the
name `vrp.load` was given in ``repo_id`` instead, which is how `vrp serve` knows the models it
hosts. Hub ids keep nnsight's own key, so the same model also reaches NDIF. The key names the
plain ``TransformersModel`` class: to a server, a VRP model is an ordinary nnsight model.
"""

import atexit
import json
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

from nnsight.intervention.backends import remote as remote_backend
from nnsight.intervention.backends.remote import RemoteBackend, RemoteError
from nnsight.modeling.transformers import TransformersModel
from nnsight.schema.response import ResponseModel

_BUILTIN_PREFIXES = ("tiny/", "organism/")


def check_backend(backend: object) -> str:
    """`backend` when it is "local", "serialise" or an http(s) URL.

    Raises:
      ConfigError: anything else.
    """
    from ..core import ConfigError

    if isinstance(backend, str) and (
        backend in ("local", "serialise") or backend.startswith(("http://", "https://"))
    ):
        return backend
    raise ConfigError(
        f"Unknown backend {backend!r}: expected 'local', 'serialise' or a host URL such as "
        "'http://127.0.0.1:8080' (a server started with `vrp serve`)."
    )


def remote_argument(backend: str) -> Any:
    """nnsight's `remote=` for a VRP backend: False, "local" (the serialisation round trip) or a
    `RemoteHost` (VRP's traces post through one pooled HTTP client).

    Raises:
      ConfigError: `backend` is not a backend (`check_backend`).
    """
    backend = check_backend(backend)
    if backend == "local":
        return False
    if backend == "serialise":
        return "local"
    # the server finds the model by the name it was loaded under (see NamedTransformersModel):
    # `vrp serve --model tiny/llava` hosts vrp.load("tiny/llava")
    return RemoteHost(backend)


def is_hub_id(name: str) -> bool:
    """Whether `name` reads as a Hub repo id ('owner/name') rather than a built-in name or path."""
    return (
        name.count("/") == 1
        and not name.startswith(_BUILTIN_PREFIXES)
        and not name.startswith(("/", ".", "~"))
    )


def check_server(url: str, names: Sequence[str]) -> list[dict[str, Any]]:
    """What the server at `url` says of the models `names`, once it is reachable, accepts this
    client's key (nnsight's ``CONFIG.API.APIKEY``, i.e. ``NDIF_API_KEY``) and hosts each of them.

    Raises:
      ConfigError: the server cannot be reached, refuses the key, does not answer as `vrp serve`
        does, or does not host one of `names`.
    """
    import httpx
    from nnsight import CONFIG

    from ..core import ConfigError

    key = CONFIG.API.APIKEY
    try:
        response = _pooled_client().get(
            f"{url.rstrip('/')}/models", headers={"ndif-api-key": key} if key else {}, timeout=10
        )
    except httpx.HTTPError as error:
        raise ConfigError(
            f"remote: cannot reach {url} ({type(error).__name__}: {error}). Start the server with "
            f"`vrp serve --model NAME ...` and pass its URL, e.g. http://127.0.0.1:8080."
        ) from None
    if response.status_code in (401, 403):
        raise ConfigError(
            f"remote: {url} refused this client's API key ({response.status_code}: "
            f"{response.text[:200]}). Set NDIF_API_KEY to a key listed in the server's "
            "--api-key-file."
        )
    try:
        hosted = {m["name"]: m for m in response.json()} if response.is_success else None
    except (ValueError, TypeError, KeyError):
        hosted = None
    if hosted is None:
        raise ConfigError(
            f"remote: {url}/models answered {response.status_code} {response.text[:200]!r}, not "
            "a `vrp serve` model list. Pass the URL of a server started with `vrp serve`."
        )
    missing = [n for n in names if n not in hosted]
    if missing:
        raise ConfigError(
            f"remote: {url} hosts {sorted(hosted)}, not {missing}. Start it with "
            f"{' '.join(f'--model {n}' for n in names)}."
        )
    return [hosted[n] for n in names]


class NamedTransformersModel(TransformersModel):
    """nnsight's `TransformersModel`, keyed for remote execution by its VRP name.

    Args:
      model: the transformers model.
      name: the name `vrp.load` was given (a built-in name, a directory or a Hub id).
      **kwargs: passed to `TransformersModel`.
    """

    def __init__(self, model: Any, *, name: str, **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        self.vrp_name = name

    def _remoteable_class(self) -> type:
        return TransformersModel

    def _remote_backend(self, remote: Any, blocking: bool, job_id: Any, verbose: bool) -> Any:
        if isinstance(remote, RemoteHost) and blocking and job_id is None:
            return PooledRemoteBackend(
                self.to_model_key(),
                host=str(remote),
                env=self._remoteable_get_env(),
                verbose=verbose,
            )
        return super()._remote_backend(remote, blocking, job_id, verbose)

    def _remoteable_model_key(self) -> str:
        if is_hub_id(self.vrp_name):
            return super()._remoteable_model_key()
        from transformers.pipelines import TASK_ALIASES

        from .. import __version__

        task = TASK_ALIASES.get(self.task, self.task)
        data = {"repo_id": self.vrp_name, "revision": None, "task": task, "vrp": __version__}
        return json.dumps(data)


class RemoteHost(str):
    """A server URL given by VRP's own traces (`run_graph` with ``backend=URL``).

    nnsight 0.8.1 builds a new HTTP client for every request, and with it a TLS context that takes
    10-20 ms to load. A `NamedTransformersModel` given a `RemoteHost` sends through one pooled
    client instead (same protocol, same server); a plain URL string keeps nnsight's own backend.
    """


_POOL: Any = None
_POOL_LOCK = threading.Lock()


def _pooled_client() -> Any:
    global _POOL
    import httpx

    with _POOL_LOCK:
        if _POOL is None:
            _POOL = httpx.Client(timeout=httpx.Timeout(10.0, read=600.0))
            atexit.register(_POOL.close)
        return _POOL


class PooledRemoteBackend(RemoteBackend):
    """nnsight's blocking remote backend, posting through one shared HTTP client."""

    def _post(self, request: Any, blob: bytes) -> ResponseModel:
        import httpx

        headers = {
            "ndif-timestamp": repr(time.time()),
            "nnsight-version": remote_backend._NNSIGHT_VERSION,
            "python-version": sys.version,
        }
        if self.api_key:
            headers["ndif-api-key"] = self.api_key
        try:
            response = _pooled_client().post(
                f"{self.host}/request",
                data={"data": request.metadata()},
                files={"blob": ("request", blob, "application/octet-stream")},
                headers=headers,
            )
            response.raise_for_status()
        except httpx.HTTPStatusError as error:  # the server's {"detail": ...}, as nnsight shows it
            try:
                detail = error.response.json().get("detail")
            except ValueError:
                detail = error.response.text or None
            raise RemoteError(f"Failed to send request: {detail or error}") from error
        except httpx.HTTPError as error:
            raise RemoteError(f"Failed to send request: {error}") from error
        return ResponseModel.model_validate_json(response.text)
