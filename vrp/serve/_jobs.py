"""Jobs, websocket sessions, and the registry that routes status updates between them.

Workers run in their own threads and the web server in an asyncio loop, so every status goes
through `Registry.report`, which records it (for ``GET /response/{id}``) and hands the session's
frame to the loop thread-safely. A blocking client reads its frames from its ``/subscribe``
websocket: JSON status frames, and a final COMPLETED frame that carries the result itself
(``torch.save`` bytes, as nnsight's client parses binary frames) or, for large results, a one-time
download URL. Finished jobs are kept `ttl` seconds for polling, then answered with an ERROR that
says the result expired.
"""

import asyncio
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from nnsight.schema.response import ResponseModel, Status

_FINAL = (Status.COMPLETED, Status.ERROR)


@dataclass(eq=False)
class Session:
    """One ``/subscribe`` websocket: its id (the first frame the client reads) and its outbox."""

    owner: str | None
    id: str = field(default_factory=lambda: secrets.token_hex(16))
    outbox: "asyncio.Queue[str | bytes]" = field(default_factory=asyncio.Queue)
    open: bool = True


@dataclass(eq=False, kw_only=True)
class Job:
    """A submitted request and everything reported about it.

    Attributes:
      id: the job id the client polls (random, 128 bits).
      model: the hosted model's name.
      payload: the request's payload as received (dropped once the job starts).
      compress: whether the payload is zstd-compressed (the result is compressed the same way).
      env: the request's environment (the client's attention implementation).
      session: the websocket session of a blocking client (None: non-blocking).
      owner: a digest of the API key that submitted it (None on an open server).
      base_url: the server URL the client used (download links are built on it).
    """

    id: str = field(default_factory=lambda: secrets.token_hex(16))
    model: str
    payload: bytes
    compress: bool
    env: dict[str, Any]
    session: Session | None
    owner: str | None
    base_url: str
    token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    received: float = field(default_factory=time.monotonic)
    started: float | None = None
    finished: float | None = None
    latest: ResponseModel | None = None
    result: bytes | None = None

    def result_url(self, base_url: str | None = None) -> str:
        return f"{(base_url or self.base_url).rstrip('/')}/result/{self.id}/{self.token}"


class Registry:
    """Jobs and sessions by id; thread-safe.

    Args:
      ttl: seconds a finished job's status and result stay retrievable.
      inline_bytes: results up to this size travel inside the websocket's COMPLETED frame.
    """

    def __init__(self, *, ttl: float, inline_bytes: int) -> None:
        self.ttl = ttl
        self.inline_bytes = inline_bytes
        self.jobs: dict[str, Job] = {}
        self.sessions: dict[str, Session] = {}
        self._lock = threading.Lock()
        self.loop: asyncio.AbstractEventLoop | None = None

    # ----- sessions -----
    def open_session(self, owner: str | None) -> Session:
        session = Session(owner=owner)
        with self._lock:
            self.sessions[session.id] = session
        return session

    def close_session(self, session: Session) -> None:
        with self._lock:
            session.open = False
            self.sessions.pop(session.id, None)

    def session(self, session_id: str) -> Session | None:
        with self._lock:
            return self.sessions.get(session_id)

    # ----- jobs -----
    def add(self, job: Job) -> None:
        with self._lock:
            self.jobs[job.id] = job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self.jobs.get(job_id)

    def report(
        self,
        job: Job,
        status: Status,
        description: str = "",
        *,
        result: bytes | None = None,
        meta: dict[str, Any] | None = None,
    ) -> None:
        """Records a status of `job` and sends it to the job's websocket, if it has one open."""
        response = ResponseModel(id=job.id, status=status, description=description, meta=meta)
        with self._lock:
            if job.latest is not None and job.latest.status in _FINAL:
                return  # a job reports one final status
            if status != Status.LOG:
                job.latest = response
            if status in _FINAL:
                job.finished = time.monotonic()
                job.payload = b""
            session = job.session if job.session is not None and job.session.open else None
            inline = result is not None and len(result) <= self.inline_bytes
            if status == Status.COMPLETED and not (session is not None and inline):
                job.result = result  # fetched by a poll or a download link
        if session is not None and self.loop is not None:
            frame = self._frame(job, response, result if inline else None)
            self.loop.call_soon_threadsafe(session.outbox.put_nowait, frame)

    @staticmethod
    def _frame(job: Job, response: ResponseModel, inline: bytes | None) -> str | bytes:
        if response.status != Status.COMPLETED:
            return response.model_dump_json()
        if inline is not None:
            return response.model_copy(update={"data": inline}).pickle()
        return response.model_copy(update={"data": job.result_url()}).model_dump_json()

    def poll(self, job: Job, base_url: str) -> ResponseModel | None:
        """The latest status of `job` as ``GET /response/{id}`` returns it (a COMPLETED status
        carries the download URL of the result)."""
        with self._lock:
            latest = job.latest
        if latest is None or latest.status != Status.COMPLETED:
            return latest
        return latest.model_copy(update={"data": job.result_url(base_url)})

    def sweep(self, now: float | None = None) -> int:
        """Expires finished jobs older than `ttl` (their results are dropped, an ERROR says why)
        and forgets them after another `ttl`. Returns how many were forgotten."""
        now = time.monotonic() if now is None else now
        forgotten = 0
        with self._lock:
            for job_id, job in list(self.jobs.items()):
                if job.finished is None or now - job.finished <= self.ttl:
                    continue
                if now - job.finished > 2 * self.ttl:
                    del self.jobs[job_id]
                    forgotten += 1
                elif job.latest is not None and job.latest.status == Status.COMPLETED:
                    job.result = None
                    job.latest = ResponseModel(
                        id=job.id,
                        status=Status.ERROR,
                        description=(
                            f"The result of job {job.id} expired: this server keeps results for "
                            f"{self.ttl:g} s after a job finishes (--result-ttl). Run it again."
                        ),
                    )
        return forgotten
