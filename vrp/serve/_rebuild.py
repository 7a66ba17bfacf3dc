"""Rebuilding what cloudpickle ships by value, under the sandbox's rules.

cloudpickle reconstructs a function the client defined (or registered with ``nnsight.register``)
from its source, through nnsight's ``_load_function`` / ``_fill`` and its own ``subimport`` /
``dynamic_subimport``. The twins here stand in for them: a function whose source is, line for line,
one in an installed library (nnsight ships some of its own methods by value) resolves to the
server's copy; any other is checked like the traced block, compiled under a job-unique filename and
given the restricted builtins; module references become protected views, or stand-ins that refuse
any use.
"""

import io
import linecache
import os
import sys
import textwrap
import threading
import types
import weakref
from dataclasses import dataclass, field
from typing import Any

import torch

from ._errors import SandboxError
from ._policy import check_resolved, payload_policy, refusal
from ._sandbox import SAFE_BUILTINS, module_problem, protected_import
from ._source import check_source

_BUILTIN_TYPES = frozenset({"MethodType", "SimpleNamespace", "CellType", "MappingProxyType"})
_TRUSTED_ROOTS = ("nnsight", "vrp", "circuits", "torch", "transformers")
_TRUSTED: "weakref.WeakSet[Any]" = weakref.WeakSet()


@dataclass
class JobFiles:
    """The source names a job registered (linecache, nnsight's caches); dropped after the job."""

    job: str
    names: list[str] = field(default_factory=list)

    def register(self, filename: str, source: str) -> str:
        name = f"{filename} [job {self.job}]"
        linecache.cache[name] = (len(source), None, source.splitlines(keepends=True), name)
        self.names.append(name)
        return name

    def drop(self) -> None:
        from nnsight.tracing.globals import BLOCKS, SOURCES

        for name in self.names:
            linecache.cache.pop(name, None)
            SOURCES.pop(name, None)
        for key in [k for k in BLOCKS if k[0] in self.names]:
            BLOCKS.pop(key, None)
        self.names.clear()


current = threading.local()
"""The job whose payload this thread is loading (`JobFiles`), set by `load_request`."""


def _files() -> JobFiles:
    files = getattr(current, "files", None)
    if files is None:
        raise SandboxError("Functions may only be reconstructed while a request is loading.")
    return files


def _library_function(source: str, name: str, origin: str, line: int) -> Any:
    """The server's own function when `source` is, line for line, that function in an installed
    library file (nnsight ships some of its methods by value); None otherwise."""
    for root in _TRUSTED_ROOTS:
        cut = origin.rfind(f"{os.sep}{root}{os.sep}")
        if cut < 0 or not origin.endswith(".py"):
            continue
        dotted = origin[cut + 1 : -3].replace(os.sep, ".").removesuffix(".__init__")
        module = sys.modules.get(dotted)
        path = getattr(module, "__file__", None)
        if module is None or not isinstance(path, str):
            continue
        lines = linecache.getlines(path)
        count = len(source.splitlines())
        if textwrap.dedent("".join(lines[line - 1 : line - 1 + count])) != source:
            return None
        return _find_function(module, name, line)
    return None


def _find_function(module: types.ModuleType, name: str, line: int) -> Any:
    candidates: list[Any] = []
    for value in vars(module).values():
        members = vars(value).values() if isinstance(value, type) else [value]
        for member in members:
            member = getattr(member, "__func__", getattr(member, "fget", member))
            while member is not None:
                candidates.append(member)
                member = getattr(member, "__wrapped__", None)
    for func in candidates:
        code = getattr(func, "__code__", None)
        if code is not None and func.__name__ == name and code.co_firstlineno == line:
            return func
    return None


def load_function(
    source: str,
    name: str,
    defaults: tuple[Any, ...] | None,
    kwdefaults: dict[str, Any] | None,
    annotations: dict[str, Any] | None,
    origin_filename: str,
    origin_line: int,
) -> Any:
    """Sandboxed twin of nnsight's `_load_function`: library code resolves to the server's copy;
    anything else is checked like the traced block and runs with the restricted builtins."""
    if not (isinstance(source, str) and isinstance(name, str) and name.isidentifier()):
        raise SandboxError("The payload holds a malformed function (no source or no name).")
    if not (isinstance(origin_filename, str) and isinstance(origin_line, int)):
        raise SandboxError(f"The payload's function {name!r} carries no origin.")
    library = _library_function(source, name, origin_filename, origin_line)
    if library is not None:
        check_resolved(library.__module__, library.__qualname__, library)
        if (why := payload_policy(library.__module__, library.__qualname__)) is not None:
            raise refusal(library.__module__, library.__qualname__, why)
        _TRUSTED.add(library)
        return library
    where = f"function {name} (shipped from {origin_filename})"
    check_source(source, where)
    padded = "\n" * (max(origin_line, 1) - 1) + source
    filename = _files().register(f"{origin_filename}:{name}", padded)
    module_code = compile(padded, filename, "exec")
    code = next(
        (c for c in module_code.co_consts if isinstance(c, types.CodeType) and c.co_name == name),
        None,
    )
    if code is None:
        raise SandboxError(f"The payload's {where} does not define {name}.")
    func = types.FunctionType(code, {"__builtins__": SAFE_BUILTINS}, name, defaults, None)
    if kwdefaults:
        func.__kwdefaults__ = kwdefaults
    if annotations:
        func.__annotations__ = annotations
    return func


def fill_function(func: Any, globals: dict[str, Any]) -> None:
    """Sandboxed twin of nnsight's `_fill`: library functions keep their own globals, and shipped
    ones cannot replace their builtins."""
    if func in _TRUSTED:
        return
    if not isinstance(globals, dict):
        raise SandboxError("The payload holds malformed function globals.")
    func.__globals__.update({k: v for k, v in globals.items() if not str(k).startswith("__")})


class RefusedModule(types.ModuleType):
    """Stands in for a module a payload references but request code may not use: loading
    succeeds (a shipped helper module may import ``os`` without using it); any use is refused."""

    def __getattr__(self, name: str) -> Any:
        raise SandboxError(f"{module_problem(self.__name__)}: {self.__name__}.{name} is refused.")


def subimport(name: str) -> types.ModuleType:
    if not isinstance(name, str):
        raise SandboxError("The payload holds a malformed module reference.")
    if module_problem(name) is not None:
        return RefusedModule(name)
    return protected_import(name)


def dynamic_subimport(name: str, values: dict[str, Any]) -> types.ModuleType:
    """A module the client registered by value (``nnsight.register``), rebuilt from its shipped
    names; its functions were reconstructed through `load_function`."""
    module = types.ModuleType(str(name))
    module.__dict__.update({k: v for k, v in values.items() if not str(k).startswith("__")})
    module.__dict__["__builtins__"] = SAFE_BUILTINS
    return module


def builtin_type(name: str) -> Any:
    if name not in _BUILTIN_TYPES:
        raise SandboxError(f"The payload asks for types.{name}, which is refused.")
    return getattr(types, name)


def load_from_bytes(data: bytes) -> Any:
    """torch's storage reconstruction with the weights-only unpickler (torch's own would run
    an unrestricted pickle nested in the payload)."""
    return torch.load(io.BytesIO(data), weights_only=True)
