"""One worker thread per hosted model: it owns the model and runs that model's queue in order.

Like NDIF's model actors, a worker runs one job at a time against its model, so concurrent clients
never see each other's state (nnsight keeps a single interleaver per model). A job runs in four
steps, reported to its client as status frames: QUEUED (on submission), RUNNING, then COMPLETED
with the result or ERROR with a description (and LOG frames for what the job prints).

1. load: decompress and unpickle the payload under the restricted unpickler, check its source;
2. run: apply the request's environment, execute the trace (file, process and socket access
   refused to this thread by the audit hook), collect the values it saved;
3. check: reset per-job state and reload the model if the job changed it;
4. encode: ``torch.save`` the saved values (zstd when the request was compressed).

A job over its time limit is interrupted by an asynchronous `JobTimeout` raised in the worker
thread (as NDIF's server does), repeated until the job unwinds; the sandbox refuses the handlers
that could swallow it.
"""

import ctypes
import logging
import queue
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from nnsight.schema.response import Status
from nnsight.tracing.tracer import Tracer, dec, inc

from ..core import VrpError
from . import _audit
from ._config import ServeConfig
from ._errors import JobTimeout, LimitError, SandboxError
from ._hosted import HostedModel
from ._jobs import Job
from ._payload import decompress, load_request
from ._rebuild import JobFiles
from ._result import encode_result
from ._sandbox import job_output

log = logging.getLogger("vrp.serve")

Reporter = Callable[..., None]
"""``report(job, status, description="", *, result=None, meta=None)`` (see `Registry.report`)."""

_MB = 2**20
_INTERNAL = ("/nnsight/", "/vrp/serve/")


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


def describe_error(error: BaseException, job: Job) -> str:
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


class ModelWorker:
    """The thread that owns one hosted model and runs its queue.

    Args:
      hosted: the model.
      config: the server's limits.
      report: where statuses go (`Registry.report`).
    """

    def __init__(self, hosted: HostedModel, config: ServeConfig, report: Reporter) -> None:
        self.hosted = hosted
        self.config = config
        self.report = report
        self.queue: queue.Queue[Job | None] = queue.Queue(maxsize=config.max_queue)
        self.current: Job | None = None
        self.finished = {"completed": 0, "failed": 0}  # jobs since start, for /health
        self.thread = threading.Thread(target=self._loop, name=f"vrp-serve {hosted.name}")
        self.thread.daemon = True

    def start(self) -> None:
        _audit.install()
        self.thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        try:
            self.queue.put_nowait(None)
        except queue.Full:
            pass
        self.thread.join(timeout)

    def submit(self, job: Job) -> int:
        """Queues `job`; returns how many jobs wait before it.

        Raises:
          LimitError: the queue is full.
        """
        waiting = self.queue.qsize()
        try:
            self.queue.put_nowait(job)
        except queue.Full:
            raise LimitError(
                f"{self.hosted.name} has {self.config.max_queue} jobs waiting, this server's "
                "limit (--max-queue). Retry in a moment, or batch several inputs into one trace."
            ) from None
        return waiting

    def state(self) -> dict[str, Any]:
        current = self.current
        running_s = time.monotonic() - current.started if current and current.started else None
        overdue = running_s is not None and running_s > self.config.job_timeout_s
        return {
            "state": "overdue" if overdue else "busy" if current else "ready",
            "queued": self.queue.qsize(),
            "alive": self.thread.is_alive(),
            **self.finished,
        }

    def _loop(self) -> None:
        while True:
            job = None
            try:
                job = self.queue.get()
                if job is None:
                    return
                self._run(job)
            except JobTimeout:  # delivered after a job ended; nothing to interrupt any more
                continue
            except Exception:  # noqa: BLE001  (the server's own failure: keep serving the queue)
                log.exception("worker of %s failed on job %s", self.hosted.name, job and job.id)
                if job is not None:
                    self.report(job, Status.ERROR, f"Job {job.id} failed inside the server.")

    def _run(self, job: Job) -> None:
        self.current, job.started = job, time.monotonic()
        waited = job.started - job.received
        self.report(job, Status.RUNNING, f"Your job is running on {job.model}.")
        try:
            result = self._execute(job)
        except _Failure as failure:
            if isinstance(failure.error, SandboxError | LimitError):
                log.warning("job %s on %s refused: %s", job.id, job.model, failure.error)
            else:
                error = failure.error
                log.info(
                    "job %s on %s failed: %s: %s", job.id, job.model, type(error).__name__, error
                )
            self.finished["failed"] += 1
            self.report(job, Status.ERROR, failure.description)
        else:
            self.finished["completed"] += 1
            ran = time.monotonic() - job.started
            meta = {"queued_s": waited, "run_s": ran, "result_bytes": len(result)}
            self.report(job, Status.COMPLETED, "Your job has completed.", result=result, meta=meta)
        finally:
            self.current = None

    def _execute(self, job: Job) -> bytes:
        """Runs `job` and returns its encoded result.

        Raises:
          _Failure: the job failed; its description is written while the job's source is still
            registered, so the traceback shows the request's lines.
        """
        files = JobFiles(job.id[:8])
        failure: _Failure | None = None
        saves: dict[str, Any] = {}
        try:
            with self._running(job):
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

    def _load_and_run(self, job: Job, files: JobFiles) -> dict[str, Any]:
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
    def _running(self, job: Job) -> Iterator[None]:
        """The job's execution context: deadline, audit guard, print routed to LOG frames, torch's
        random state (a job may seed it) and thread-local grad mode restored afterwards."""
        grad = torch.is_grad_enabled()
        thread_id = threading.get_ident()

        def emit(text: str) -> None:
            self.report(job, Status.LOG, text)

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
