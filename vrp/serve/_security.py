"""API keys and the request-size limit: the checks made before a request reaches a model.

Keys travel in nnsight's ``ndif-api-key`` header (the client sends ``CONFIG.API.APIKEY``, which
the ``NDIF_API_KEY`` environment variable sets). They are compared in constant time against every
configured key, so the response time says nothing about how much of a key matched, or which.
"""

import hashlib
import hmac
import logging
from typing import Any

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ._config import ServeConfig

log = logging.getLogger("vrp.serve")

KEY_HEADER = "ndif-api-key"
_HOW = (
    "Send it in the ndif-api-key header: with nnsight, set nnsight.CONFIG.API.APIKEY = KEY "
    "(or the NDIF_API_KEY environment variable) before tracing."
)


class AccessDenied(Exception):
    """A missing or wrong key; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


def authorize(config: ServeConfig, key: str | None, client: str) -> str | None:
    """The owner id of a request (a digest of its key; None on a server without keys).

    Raises:
      AccessDenied: the server has keys and `key` is missing or none of them.
    """
    if not config.requires_key:
        return None
    if not key:
        log.warning("refused a request without an API key from %s", client)
        raise AccessDenied(
            401, f"This server requires an API key and the request carried none. {_HOW}"
        )
    sent = key.encode()
    matched = False
    for known in config.api_keys:  # no early exit: every key is compared
        matched |= hmac.compare_digest(sent, known.encode())
    if not matched:
        log.warning("refused a request with a wrong API key from %s", client)
        raise AccessDenied(
            403, "The API key in the ndif-api-key header is not one of this server's keys."
        )
    return hashlib.sha256(sent).hexdigest()[:16]


class BodyLimit:
    """ASGI middleware refusing request bodies over `limit` bytes with a 413 that says so.

    The body is read (and discarded) up to 64 times the limit before answering, so the client,
    which sends the whole body before reading the response, gets the message rather than a reset
    connection.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared <= self.limit:
            await self.app(scope, _capped(receive, self.limit), send)
            return
        size = await _drain(receive, 64 * self.limit) if declared is None else declared
        if size <= self.limit:  # a body without Content-Length that fitted: refuse plainly
            detail = "The request carries no Content-Length header; send the body with one."
            await JSONResponse({"detail": detail}, status_code=411)(scope, receive, send)
            return
        if declared is not None:
            await _drain(receive, 64 * self.limit)
        detail = (
            f"The request body is {size / 2**20:.1f} MB, over this server's limit of "
            f"{self.limit / 2**20:.1f} MB (--max-request-mb). Send less data with the trace "
            "(fewer or smaller inputs, or tensors computed inside the trace)."
        )
        log.warning("refused a %.1f MB request (limit %.1f MB)", size / 2**20, self.limit / 2**20)
        await JSONResponse({"detail": detail}, status_code=413)(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _drain(receive: Receive, cap: int) -> int:
    size = 0
    while size <= cap:
        message = await receive()
        size += len(message.get("body", b""))
        if message["type"] != "http.request" or not message.get("more_body", False):
            break
    return size


def _capped(receive: Receive, limit: int) -> Receive:
    """Guards against a body longer than its declared Content-Length."""
    seen = 0

    async def wrapped() -> Message:
        nonlocal seen
        message: Any = await receive()
        seen += len(message.get("body", b""))
        if seen > limit:
            raise ValueError(f"request body longer than its Content-Length ({seen} bytes)")
        return message  # type: ignore[no-any-return]

    return wrapped
