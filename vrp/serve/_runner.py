"""Running one job against a hosted model, in the calling thread (the worker's, or a Ray actor's).

A job runs in four steps:

1. load: decompress and unpickle the payload under the restricted unpickler, check its source;
2. run: apply the request's environment, execute the trace (file, process and socket access
   refused to this thread by the audit hook), collect the values it saved;
3. check: reset per-job state and reload the model if the job changed it;
4. encode: ``torch.save`` the saved values (zstd when the request was compressed).

A job over its time limit is interrupted by an asynchronous `JobTimeout` raised in the running
thread (as NDIF's server does), repeated until the job unwinds; the sandbox refuses the handlers
that could swallow it. Whatever happens, `LocalRunner.run` returns an `Outcome` (picklable, so a
Ray actor can send it back): the result, or the description the client reads.
"""

import ctypes
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from nnsight.tracing.tracer import Tracer, dec, inc

from ..core import VrpError
from . import _audit
from ._config import ServeConfig
from ._errors import JobTimeout, LimitError, SandboxError
from ._hosted import HostedModel
from ._payload import decompress, load_request
from ._rebuild import JobFiles
from ._result import encode_result
from ._sandbox import job_output

_MB = 2**20
_INTERNAL = ("/nnsight/", "/vrp/serve/")


@dataclass(kw_only=True)
class JobSpec:
    """What running a job needs (the web side's `Job` without its sessions and statuses).

    Attributes:
      id: the job id.
      model: the hosted model's name.
      payload: the request's payload as received.
      compress: whether the payload is zstd-compressed (the result is compressed the same way).
      env: the request's environment (the client's attention implementation).
    """

    id: str
    model: str
    payload: bytes
    compress: bool
    env: dict[str, Any]


@dataclass(frozen=True, kw_only=True)
class Outcome:
    """How a job ended.

    Attributes:
      result: the encoded saved values; None when the job failed.
      description: what the client reads when it failed.
      error: the failure's type name ("" on success), for the server's log.
      refused: the failure was a refusal (sandbox or limit), logged as a warning.
      logs: what the job printed, when the runner could not stream it (a Ray actor).
    """

    result: bytes | None = None
    description: str = ""
    error: str = ""
    refused: bool = False
    logs: tuple[str, ...] = field(default_factory=tuple)


def _set_async_exc(thread_id: int, exc: type[BaseException] | None) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(exc) if exc is not None else None
    )


class _Deadline:
    """Interrupts the worker thread with `JobTimeout` every `period` s once `limit` s passed."""

    def __init__(self, thread_id: int, limit: float, period: float = 0.5) -> None:
        self.thread_id, self.limit, self.period = thread_id, limit, period
        self.expired = False
        self._running = True
        self._lock = threading.Lock()
        self._timer = threading.Timer(limit, self._fire)
        self._timer.daemon = True

    def _fire(self) -> None:
        with self._lock:
            if not self._running:
                return
            self.expired = True
            _set_async_exc(self.thread_id, JobTimeout)
            self._timer = threading.Timer(self.period, self._fire)
            self._timer.daemon = True
            self._timer.start()

    def __enter__(self) -> "_Deadline":
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._running = False
            self._timer.cancel()
            _set_async_exc(self.thread_id, None)  # drop an interruption not yet delivered


def run_tracer(tracer: Tracer) -> dict[str, Any]:
    """Executes a deserialised trace as the outermost trace; returns the values it saved."""
    frame = tracer.info.frame
    inc()
    try:
        tracer.execute(tracer.info.code)
    finally:
        dec()
    pushed = frame.f_locals
    return {name: pushed[name] for name in pushed.pushed}


def describe_error(error: BaseException, job: JobSpec) -> str:
    """The description of a failed job: the traceback of the request's own code and the
    libraries it called (nnsight's and the server's frames left out), then the error."""
    tb = getattr(error, "__intervention_tb__", None) or error.__traceback__
    frames = [f for f in traceback.extract_tb(tb) if not any(p in f.filename for p in _INTERNAL)]
    lines = traceback.format_exception_only(type(error), error)
    if frames:
        lines = ["Traceback (most recent call last):\n", *traceback.format_list(frames), *lines]
    return f"Job {job.id} on {job.model} failed.\n" + "".join(lines)


class _Failure(Exception):
    """A failed job: the error and the description sent to the client."""

    def __init__(self, error: BaseException, description: str) -> None:
        super().__init__(description)
        self.error, self.description = error, description


class LocalRunner:
    """Runs jobs on a model loaded in this process, in the calling thread.

    Args:
      hosted: the model.
      config: the server's limits.
    """

    def __init__(self, hosted: HostedModel, config: ServeConfig) -> None:
        _audit.install()  # process-wide, once; it guards only the threads running a job
        self.hosted = hosted
        self.config = config
        self.name = hosted.name

    def describe(self) -> dict[str, Any]:
        """What the model-list endpoint says about the model."""
        return {**self.hosted.describe(), "executor": "local"}

    def alive(self) -> bool:
        return True

    def close(self) -> None:
        """Nothing to release: the model goes with the process."""

    def run(self, job: JobSpec, emit: Callable[[str], None]) -> Outcome:
        """Runs `job`; what it prints goes to `emit` as it prints."""
        try:
            result = self._execute(job, emit)
        except _Failure as failure:
            error = failure.error
            return Outcome(description=failure.description, error=type(error).__name__,
                           refused=isinstance(error, SandboxError | LimitError))  # fmt: skip
        return Outcome(result=result)

    def _execute(self, job: JobSpec, emit: Callable[[str], None]) -> bytes:
        """Runs `job` and returns its encoded result.

        Raises:
          _Failure: the job failed; its description is written while the job's source is still
            registered, so the traceback shows the request's lines.
        """
        files = JobFiles(job.id[:8])
        failure: _Failure | None = None
        saves: dict[str, Any] = {}
        try:
            with self._running(emit):
                saves = self._load_and_run(job, files)
        except JobTimeout:
            message = (
                f"Job {job.id} on {job.model} ran past this server's limit of "
                f"{self.config.job_timeout_s:g} s (--job-timeout) and was stopped. Run less per "
                "trace (fewer inputs, fewer generated tokens) or split it."
            )
            failure = _Failure(LimitError(message), message)
        except BaseException as error:  # noqa: BLE001  (every failure goes back to the client)
            failure = _Failure(error, describe_error(error, job))
        finally:
            files.drop()
        change = self.hosted.after_job()
        if change is not None:
            message = (
                f"The job changed the hosted model ({change}); jobs must leave the model as they "
                "found it (edit activations inside the trace, not weights, hooks or modes). The "
                "server reloaded the model."
            )
            earlier = f"\nThe job also failed:\n{failure.description}" if failure else ""
            failure = _Failure(SandboxError(message), f"SandboxError: {message}{earlier}")
        if failure is not None:
            raise failure
        try:
            return encode_result(
                saves, compress=job.compress, limit=int(self.config.max_result_mb * _MB)
            )
        except VrpError as error:
            raise _Failure(error, f"{type(error).__name__}: {error}") from None

    def _load_and_run(self, job: JobSpec, files: JobFiles) -> dict[str, Any]:
        limit = int(self.config.max_payload_mb * _MB)
        data = decompress(job.payload, limit) if job.compress else job.payload
        if len(data) > limit:
            raise LimitError(
                f"The payload is {len(data) / _MB:.1f} MB, over this server's limit of "
                f"{self.config.max_payload_mb:g} MB (--max-payload-mb)."
            )
        job.payload = b""
        tracer = load_request(data, self.hosted.persistent, files, self.hosted.name)
        self.hosted.apply_env(job.env)
        return run_tracer(tracer)

    @contextmanager
    def _running(self, emit: Callable[[str], None]) -> Iterator[None]:
        """The job's execution context: deadline, audit guard, print routed to LOG frames, torch's
        random state (a job may seed it) and thread-local grad mode restored afterwards."""
        grad = torch.is_grad_enabled()
        thread_id = threading.get_ident()
        device = self.hosted.vlm.device
        cuda = [device] if device.type == "cuda" else []
        try:
            with (
                torch.random.fork_rng(
                    devices=cuda, device_type="cuda"
                ),  # a job's seed stays its own
                _Deadline(thread_id, self.config.job_timeout_s),
                _audit.guarded(),
                job_output(emit),
            ):
                yield
        finally:
            torch.set_grad_enabled(grad)
