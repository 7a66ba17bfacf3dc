"""Reading a request's payload under a restricted unpickler.

nnsight 0.8.1 ships a trace as ``zstd(cloudpickle((tracer, (source, globals, locals))))``: the
block travels as source text, the values it reads are pickled, the model is referenced by
persistent ids. `RestrictedUnpickler` resolves only what `payload_policy` allows and swaps in the
sandboxed twins of cloudpickle's by-value reconstruction (`_rebuild`); `load_request` then checks
the block's source and gives it a job-unique filename and the restricted builtins.
"""

import io
from typing import Any

from nnsight.intervention.serialization import CustomCloudUnpickler, UnknownPersistentIdError
from nnsight.tracing.tracer import Tracer
from nnsight.tracing.util import SerializedFrame

from ._errors import LimitError, SandboxError, ServeError
from ._policy import check_resolved, payload_policy, refusal
from ._rebuild import (
    JobFiles,
    builtin_type,
    current,
    dynamic_subimport,
    fill_function,
    load_from_bytes,
    load_function,
    subimport,
)
from ._sandbox import SAFE_BUILTINS, guarded_getattr
from ._source import check_source

_SWAPS: dict[tuple[str, str], Any] = {
    ("nnsight.intervention.serialization", "_load_function"): load_function,
    ("nnsight.intervention.serialization", "_fill"): fill_function,
    ("cloudpickle.cloudpickle", "subimport"): subimport,
    ("cloudpickle.cloudpickle", "dynamic_subimport"): dynamic_subimport,
    ("cloudpickle.cloudpickle", "_builtin_type"): builtin_type,
    ("torch.storage", "_load_from_bytes"): load_from_bytes,
    ("builtins", "getattr"): guarded_getattr,
}


_ALLOWED: set[tuple[str, str]] = set()


class RestrictedUnpickler(CustomCloudUnpickler):
    """nnsight's unpickler with an allow-list in `find_class` (see the module docstring)."""

    def find_class(self, module: str, name: str) -> Any:
        swap = _SWAPS.get((module, name))
        if swap is not None:
            return swap
        if (module, name) == ("nnsight.intervention.interleaver", "Mediator"):
            raise refusal(module, name, "persistent edits (model.edit) do not run remotely here")
        if (module, name) == ("cloudpickle.cloudpickle", "_make_function"):
            raise refusal(
                module,
                name,
                "a function without source (typed into a REPL, or made by exec) "
                "travels as bytecode, which does not run here; define it in a file",
            )
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        why = payload_policy(module, name)
        if why is not None:
            raise refusal(module, name, why)
        obj = super().find_class(module, name)
        check_resolved(module, name, obj)
        _ALLOWED.add((module, name))  # server modules do not change: decide each name once
        return obj


class PushedLocals(dict):  # type: ignore[type-arg]
    """The frame locals of a deserialised trace; records the names the trace pushes back (its
    saved values), which are the job's result."""

    def __init__(self, values: dict[str, Any]) -> None:
        super().__init__(values)
        self.pushed: list[str] = []

    def update(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        new = dict(*args, **kwargs)
        self.pushed.extend(k for k in new if k not in self.pushed)
        super().update(new)


def decompress(blob: bytes, limit: int) -> bytes:
    """zstd-decompresses `blob`, refusing output larger than `limit` bytes."""
    import zstandard

    try:
        with zstandard.ZstdDecompressor().stream_reader(blob) as reader:
            data = reader.read(limit + 1)
    except zstandard.ZstdError as err:
        raise ServeError(
            f"The payload is marked compressed but is not zstd data ({err}). Send it with "
            "nnsight 0.8.1's remote backend."
        ) from None
    if len(data) > limit:
        raise LimitError(
            f"The payload decompresses to more than {limit / 2**20:.1f} MB, this server's limit "
            "(--max-payload-mb). Send less data with the trace (fewer or smaller inputs)."
        )
    return data


def load_request(
    data: bytes, persistent: dict[str, Any], files: JobFiles, model_name: str
) -> Tracer:
    """The tracer of a (decompressed) payload, with its block compiled under a job-unique
    filename and the restricted builtins in its scope.

    Raises:
      SandboxError: the payload names something refused, or its code is refused.
      ServeError: the payload is not an nnsight 0.8 trace of the hosted model.
    """
    current.files = files
    try:
        loaded = RestrictedUnpickler(io.BytesIO(data), persistent).load()
    except (SandboxError, ServeError):
        raise
    except UnknownPersistentIdError as err:
        raise ServeError(
            f"The payload references {err.args[0]!r}, which the hosted model {model_name!r} does "
            "not have: the client traced a different model (or a different version of it) "
            "under this name."
        ) from None
    except Exception as err:  # noqa: BLE001  (any unpickling failure is a malformed payload)
        raise ServeError(
            f"The payload does not unpickle ({type(err).__name__}: {err}). Send traces with "
            "nnsight 0.8.1's remote backend (model.trace(..., remote=URL))."
        ) from None
    finally:
        current.files = None
    return _prepare(loaded, files)


def _prepare(loaded: Any, files: JobFiles) -> Tracer:
    try:
        tracer, (source, glbls, variables) = loaded
    except (TypeError, ValueError):
        tracer = source = glbls = variables = None
    frame = getattr(getattr(tracer, "info", None), "frame", None)
    shaped = (
        isinstance(tracer, Tracer)
        and isinstance(source, str)
        and isinstance(glbls, dict)
        and isinstance(variables, dict)
    )
    if not (
        shaped
        and isinstance(frame, SerializedFrame)
        and isinstance(frame.f_code.co_filename, str)
        and isinstance(frame.f_code.co_name, str)
    ):
        raise ServeError(
            "The payload is not an nnsight 0.8 trace (expected a tracer and its block's source, "
            "globals and locals). Send traces with model.trace(..., remote=URL)."
        )
    check_source(source, frame.f_code.co_filename)
    filename = files.register(frame.f_code.co_filename, source)
    tracer.info.code = compile(source, filename, "exec").replace(co_name=frame.f_code.co_name)
    frame.f_code.co_filename = filename
    clean = {k: v for k, v in glbls.items() if not str(k).startswith("__")}
    frame.f_globals = {**clean, "__builtins__": SAFE_BUILTINS}
    scope = {k: v for k, v in variables.items() if not str(k).startswith("__")}
    frame.f_locals = PushedLocals({**scope, "__builtins__": SAFE_BUILTINS})
    return tracer
