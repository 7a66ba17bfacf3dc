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
from typing import Any

from nnsight.intervention.backends import remote as remote_backend
from nnsight.intervention.backends.remote import RemoteBackend, RemoteError
from nnsight.modeling.transformers import TransformersModel
from nnsight.schema.response import ResponseModel

_BUILTIN_PREFIXES = ("tiny/", "organism/")


def is_hub_id(name: str) -> bool:
    """Whether `name` reads as a Hub repo id ('owner/name') rather than a built-in name or path."""
    return (
        name.count("/") == 1
        and not name.startswith(_BUILTIN_PREFIXES)
        and not name.startswith(("/", ".", "~"))
    )


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
