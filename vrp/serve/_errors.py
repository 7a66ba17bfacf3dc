"""Errors of the server. Each becomes the description of an ERROR status the client raises as
nnsight's `RemoteError`, so the message is written for the person who sent the request."""

from ..core import VrpError


class ServeError(VrpError):
    """A request the server cannot run as sent (unknown model, bad envelope, version skew)."""


class LimitError(ServeError):
    """A request over one of the server's limits (size, run time, queue length, result size)."""


class SandboxError(ServeError):
    """Code in a request tried something the restricted environment refuses (an import, a
    builtin, a private attribute, a file, the model's object graph)."""


class JobTimeout(BaseException):
    """Raised inside a job's thread when it passes its time limit.

    A BaseException, like KeyboardInterrupt, so the `except Exception` of user code does not
    swallow it (broader handlers are refused by the sandbox)."""
