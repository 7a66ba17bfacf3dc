"""The ASGI application: nnsight 0.8.1's remote protocol, plus health and model-list endpoints.

=========================  ==========================================================================
``WS /subscribe``          first frame ``{"session_id": ...}``; then the status frames of the jobs
                           posted with that session id (JSON; a binary COMPLETED frame holds the result)
``POST /request``          multipart: ``data`` (RequestModel JSON) and ``blob`` (the payload);
                           answers the RECEIVED status with the job id
``GET /response/{id}``     the job's latest status (non-blocking clients poll it)
``GET /result/{id}/{tok}`` a finished job's result (the link a COMPLETED status carries)
``GET /health``            liveness and per-model queue state (no key needed)
``GET /models``            the hosted models and their nnsight model keys
=========================  ==========================================================================
"""

import asyncio
import contextlib
import hmac
import logging
from collections.abc import AsyncIterator, Sequence
from importlib.metadata import version
from typing import Any

from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse, Response
from nnsight.schema.request import RequestModel
from nnsight.schema.response import ResponseModel, Status
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from ..core import VrpError
from ._config import ServeConfig
from ._hosted import HostedModel, model_name
from ._jobs import Job, Registry
from ._runner import LocalRunner
from ._security import KEY_HEADER, AccessDenied, BodyLimit, authorize
from ._worker import ModelWorker, Runner

log = logging.getLogger("vrp.serve")

NNSIGHT_VERSION = version("nnsight")


class ServerState:
    """The registry and the workers of one app (`app.state.vrp`)."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.registry = Registry(
            ttl=config.result_ttl_s, inline_bytes=int(config.inline_result_mb * 2**20)
        )
        self.workers: dict[str, ModelWorker] = {}

        self.disconnect = False  # whether stopping must disconnect from Ray

    def start(self, runners: Sequence[Runner], loop: asyncio.AbstractEventLoop) -> None:
        self.registry.loop = loop
        for runner in runners:
            worker = ModelWorker(runner, self.config, self.registry.report)
            self.workers[runner.name] = worker
            worker.start()

    def stop(self) -> None:
        for worker in self.workers.values():
            worker.stop()
        if self.disconnect:
            from ._ray import import_ray

            import_ray().shutdown()


def _error(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


def _client(request: Request | WebSocket) -> str:
    return request.client.host if request.client else "?"


def create_app(config: ServeConfig, hosted: Sequence[HostedModel] | None = None) -> FastAPI:
    """The server application for `config`.

    Args:
      config: what to host and the limits.
      hosted: already loaded models (default: each of `config.models` is loaded at startup).
    """
    state = ServerState(config)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if hosted is not None:
            runners: list[Runner] = [LocalRunner(h, config) for h in hosted]
        else:
            runners = await asyncio.to_thread(_load, config, state)
        state.start(runners, asyncio.get_running_loop())
        sweeper = asyncio.create_task(_sweep(state.registry))
        log.info("hosting %s", ", ".join(state.workers))
        try:
            yield
        finally:
            sweeper.cancel()
            state.stop()

    app = FastAPI(title="vrp serve", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)  # fmt: skip
    app.state.vrp = state
    app.add_middleware(BodyLimit, limit=int(config.max_request_mb * 2**20))
    _info_routes(app, state)
    _delivery_routes(app, state)
    _job_routes(app, state)
    return app


def _load(config: ServeConfig, state: ServerState) -> list[Runner]:
    """Each hosted model loaded in this process, or on its own Ray actor."""
    if config.executor == "ray":
        from ._ray import RayRunner, connect

        state.disconnect = connect(config)
        return [RayRunner(n, config) for n in config.models]
    return [LocalRunner(HostedModel(n, device=config.device, dtype=config.dtype), config)
            for n in config.models]  # fmt: skip


async def _sweep(registry: Registry) -> None:
    while True:
        await asyncio.sleep(max(1.0, min(30.0, registry.ttl / 4)))
        registry.sweep()


def _info_routes(app: FastAPI, state: ServerState) -> None:
    @app.get("/health")
    async def health() -> dict[str, Any]:
        models = {name: w.state() for name, w in state.workers.items()}
        healthy = all(m["alive"] for m in models.values())
        return {"status": "ok" if healthy else "degraded", "models": models,
                "nnsight": NNSIGHT_VERSION, "vrp": version("vrp")}  # fmt: skip

    @app.get("/models", response_model=None)
    async def models(request: Request) -> JSONResponse | list[dict[str, Any]]:
        try:
            authorize(state.config, request.headers.get(KEY_HEADER), _client(request))
        except AccessDenied as denied:
            return _error(denied.status, denied.detail)
        return [{**w.runner.describe(), "queued": w.queue.qsize()} for w in state.workers.values()]


def _delivery_routes(app: FastAPI, state: ServerState) -> None:
    registry = state.registry

    @app.websocket("/subscribe")
    async def subscribe(socket: WebSocket) -> None:
        try:
            owner = authorize(state.config, socket.headers.get(KEY_HEADER), _client(socket))
        except AccessDenied as denied:
            await socket.send_denial_response(_error(denied.status, denied.detail))
            return
        await socket.accept()
        session = registry.open_session(owner)
        await socket.send_json({"session_id": session.id})
        sender = asyncio.create_task(_send_frames(socket, session.outbox))
        try:
            while True:  # the client sends nothing; this notices when it goes away
                message = await socket.receive()
                if message["type"] == "websocket.disconnect":
                    break
        except WebSocketDisconnect:
            pass
        finally:
            registry.close_session(session)
            sender.cancel()

    @app.get("/result/{job_id}/{token}", response_model=None)
    async def result(job_id: str, token: str) -> Response:
        job = registry.get(job_id)
        blob = job.result if job is not None else None
        if job is None or blob is None or not hmac.compare_digest(token, job.token):
            return _error(404, "No such result (the link is wrong, or the result expired).")
        return Response(blob, media_type="application/octet-stream")


def _job_routes(app: FastAPI, state: ServerState) -> None:
    registry = state.registry

    @app.post("/request", response_model=None)
    async def request(http: Request) -> JSONResponse:
        try:
            owner = authorize(state.config, http.headers.get(KEY_HEADER), _client(http))
            job = await _job_from(http, state, owner)
        except AccessDenied as denied:
            return _error(denied.status, denied.detail)
        except _Refused as refused:
            return _error(refused.status, refused.detail)
        registry.add(job)
        worker = state.workers[job.model]
        registry.report(job, Status.QUEUED, f"Your job is queued for {job.model}.")
        try:
            waiting = worker.submit(job)
        except VrpError as error:
            registry.report(job, Status.ERROR, str(error))
            return _error(503, str(error))
        received = ResponseModel(
            id=job.id, status=Status.RECEIVED,
            description=f"Your job has been received; {waiting} job(s) ahead of it.",
        )  # fmt: skip
        return JSONResponse(received.model_dump(mode="json"))

    @app.get("/response/{job_id}", response_model=None)
    async def response(job_id: str, http: Request) -> JSONResponse:
        try:
            owner = authorize(state.config, http.headers.get(KEY_HEADER), _client(http))
        except AccessDenied as denied:
            return _error(denied.status, denied.detail)
        job = registry.get(job_id)
        if job is None or job.owner != owner:
            return _error(404, f"No job {job_id!r} on this server (or it expired).")
        latest = registry.poll(job, str(http.base_url))
        if latest is None:
            return _error(404, f"Job {job_id!r} has no status yet.")
        return JSONResponse(latest.model_dump(mode="json"))


async def _send_frames(socket: WebSocket, outbox: "asyncio.Queue[str | bytes]") -> None:
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        while True:
            frame = await outbox.get()
            if isinstance(frame, bytes):
                await socket.send_bytes(frame)
            else:
                await socket.send_text(frame)


class _Refused(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


async def _job_from(http: Request, state: ServerState, owner: str | None) -> Job:
    """The job a ``POST /request`` describes, or `_Refused` saying what is wrong with it."""
    client_version = http.headers.get("nnsight-version", "")
    if client_version and client_version != NNSIGHT_VERSION:
        raise _Refused(
            400,
            f"This server runs nnsight {NNSIGHT_VERSION}; the client sent nnsight "
            f"{client_version}. Payloads are version-specific: pip install "
            f"nnsight=={NNSIGHT_VERSION}.",
        )
    try:
        form = await http.form(max_files=1, max_fields=1)
    except Exception as err:  # noqa: BLE001  (starlette raises several types for bad multipart)
        raise _Refused(400, f"The request is not a multipart form ({err}).") from None
    try:
        data, blob = form.get("data"), form.get("blob")
        payload = await blob.read() if isinstance(blob, UploadFile) else None
    finally:
        await form.close()  # the upload's spooled temporary file
    if not isinstance(data, str) or payload is None:
        raise _Refused(
            400,
            "The request must be a multipart form with a 'data' field (the RequestModel JSON) "
            "and a 'blob' file (the payload), as nnsight's remote backend sends.",
        )
    try:
        envelope = RequestModel.model_validate_json(data)
        name = model_name(envelope.model_key)
    except (ValidationError, VrpError) as err:
        raise _Refused(400, f"The request envelope is malformed: {err}") from None
    if name not in state.workers:
        raise _Refused(
            404,
            f"{name!r} is not hosted here; this server hosts {', '.join(state.workers)}. Load the "
            "model on the client under the same name (vrp.load(name)).",
        )
    session = None
    if envelope.session_id:
        session = state.registry.session(envelope.session_id)
        if session is None or session.owner != owner:
            raise _Refused(400, f"Unknown session {envelope.session_id!r}: subscribe first.")
    return Job(
        model=name, payload=payload, compress=envelope.compress,
        env=dict(envelope.env), session=session, owner=owner, base_url=str(http.base_url),
    )  # fmt: skip
