"""A process audit hook (PEP 578) that refuses files, processes and sockets to running jobs.

The source checks and protected modules keep request code away from ``os``, ``open`` and friends;
this hook is the net below them. While a thread runs a job (`guarded`), Python's own audit events
for opening a file outside the Python installation, writing any file, starting a process, opening
a socket or loading native code raise `SandboxError` in that thread, whatever library call led
there. Other threads (the web server, other clients of an in-process server) are not affected.

Reads under the Python installation and VRP's own package stay allowed: libraries import lazily
while a model runs (transformers' generation utilities, for one), and nothing there is secret.
"""

import contextlib
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ._errors import SandboxError

_REFUSED_PREFIXES = (
    "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty", "os.kill",
    "os.killpg", "os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.chmod", "os.chown",
    "os.link", "os.symlink", "os.truncate", "os.utime", "os.chdir",
    "os.putenv", "os.unsetenv", "os.startfile", "subprocess.", "socket.", "ctypes.", "shutil.",
    "urllib.", "http.client.", "ftplib.", "smtplib.", "webbrowser.", "pty.", "glob.", "import_dll",
    "_posixsubprocess.", "resource.setrlimit", "signal.",
)  # fmt: skip
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND

_local = threading.local()
_installed = False
_install_lock = threading.Lock()


def _readable_roots() -> tuple[str, ...]:
    import vrp

    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, str(Path(vrp.__file__).parent)}
    return tuple(os.path.realpath(r) + os.sep for r in roots)


_ROOTS: tuple[str, ...] = ()


def _readable(path: str) -> bool:
    return (os.path.realpath(path) + os.sep).startswith(_ROOTS)


def _check_open(args: tuple[Any, ...]) -> None:
    path, mode, flags = (tuple(args) + (None, None, None))[:3]
    if isinstance(path, int):
        return  # an already-open descriptor (the check happened when it was opened)
    name = os.fsdecode(path) if isinstance(path, str | bytes | os.PathLike) else str(path)
    writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
        mode is None and isinstance(flags, int) and flags & _WRITE_FLAGS
    )
    if writing:
        raise SandboxError(f"Writing the file {name!r} is refused to request code.")
    if not _readable(name):
        raise SandboxError(f"Reading the file {name!r} is refused to request code.")


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if not getattr(_local, "guarded", False):
        return
    if event == "open":
        _check_open(args)
    elif event in ("os.listdir", "os.scandir"):  # the import system lists package folders
        folder = args[0] if args and args[0] is not None else "."
        if not isinstance(folder, int) and not _readable(os.fsdecode(folder)):
            raise SandboxError(f"Listing the folder {folder!r} is refused to request code.")
    elif event.startswith(_REFUSED_PREFIXES):
        raise SandboxError(
            f"The operation {event!r} (files, processes, sockets or native code) is refused to "
            "request code."
        )


def install() -> None:
    """Adds the hook to this process once (audit hooks cannot be removed; it idles outside jobs)."""
    global _installed, _ROOTS
    with _install_lock:
        if not _installed:
            _ROOTS = _readable_roots()
            sys.addaudithook(_hook)
            _installed = True


@contextlib.contextmanager
def guarded() -> Iterator[None]:
    """Refuses files, processes and sockets to this thread for the block (the hook must be
    installed)."""
    previous = getattr(_local, "guarded", False)
    _local.guarded = True
    try:
        yield
    finally:
        _local.guarded = previous
