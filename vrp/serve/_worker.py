"""One worker thread per hosted model: it runs that model's queue in order.

Like NDIF's model actors, a worker runs one job at a time against its model, so concurrent clients
never see each other's state (nnsight keeps a single interleaver per model). A job is reported to
its client as status frames: QUEUED (on submission), RUNNING, then COMPLETED with the result or
ERROR with a description (and LOG frames for what the job prints). The job itself runs through the
worker's runner (`_runner`): in this thread on a model loaded here (`LocalRunner`), or on a Ray
actor that holds the model (`RayRunner`), so that one server can front models spread over a
cluster.
"""

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol, cast, runtime_checkable

from nnsight.schema.response import Status

from ._config import ServeConfig
from ._errors import JobTimeout, LimitError
from ._jobs import Job
from ._runner import JobSpec, Outcome

log = logging.getLogger("vrp.serve")

Reporter = Callable[..., None]
"""``report(job, status, description="", *, result=None, meta=None)`` (see `Registry.report`)."""


@runtime_checkable
class Runner(Protocol):
    """Runs a hosted model's jobs (`LocalRunner` here, `RayRunner` on a Ray actor)."""

    name: str

    def run(self, job: JobSpec, emit: Callable[[str], None]) -> Outcome: ...

    def describe(self) -> dict[str, Any]: ...

    def alive(self) -> bool: ...

    def close(self) -> None: ...


class ModelWorker:
    """The thread that runs one hosted model's queue.

    Args:
      runner: runs the jobs (and holds the model, here or on a Ray actor).
      config: the server's limits.
      report: where statuses go (`Registry.report`).
    """

    def __init__(self, runner: Runner, config: ServeConfig, report: Reporter) -> None:
        self.runner = runner
        self.config = config
        self.report = report
        self.queue: queue.Queue[Job | None] = queue.Queue(maxsize=config.max_queue)
        self.current: Job | None = None
        self.finished = {"completed": 0, "failed": 0}  # jobs since start, for /health
        self.thread = threading.Thread(target=self._loop, name=f"vrp-serve {runner.name}")
        self.thread.daemon = True

    def start(self) -> None:
        self.thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        try:
            self.queue.put_nowait(None)
        except queue.Full:
            pass
        self.thread.join(timeout)
        self.runner.close()

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
                f"{self.runner.name} has {self.config.max_queue} jobs waiting, this server's "
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
            "alive": self.thread.is_alive() and self.runner.alive(),
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
                log.exception("worker of %s failed on job %s", self.runner.name, job and job.id)
                if job is not None:
                    self.report(job, Status.ERROR, f"Job {job.id} failed inside the server.")

    def _run(self, job: Job) -> None:
        self.current, job.started = job, time.monotonic()
        waited = job.started - job.received
        self.report(job, Status.RUNNING, f"Your job is running on {job.model}.")
        spec = JobSpec(id=job.id, model=job.model, payload=job.payload, compress=job.compress,
                       env=job.env)  # fmt: skip
        job.payload = b""
        try:
            outcome = self.runner.run(spec, lambda text: self.report(job, Status.LOG, text))
            for line in outcome.logs:
                self.report(job, Status.LOG, line)
            self._finish(job, outcome, waited)
        finally:
            self.current = None

    def _finish(self, job: Job, outcome: Outcome, waited: float) -> None:
        if outcome.result is None:
            if outcome.refused:
                log.warning("job %s on %s refused: %s", job.id, job.model, outcome.description)
            else:
                log.info("job %s on %s failed: %s", job.id, job.model, outcome.error)
            self.finished["failed"] += 1
            self.report(job, Status.ERROR, outcome.description)
            return
        self.finished["completed"] += 1
        ran = time.monotonic() - cast(float, job.started)
        meta = {"queued_s": waited, "run_s": ran, "result_bytes": len(outcome.result)}
        self.report(job, Status.COMPLETED, "Your job has completed.", result=outcome.result,
                    meta=meta)  # fmt: skip
