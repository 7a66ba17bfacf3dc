"""The restricted environment request code runs in, modelled on NDIF's protected environment.

Code from a request (the traced block, and every function the client shipped by value) is checked
before it runs and then runs with restricted builtins:

- its source is parsed (`_source`) and refused if it imports a module outside `ALLOWED_IMPORTS`,
  touches a private or dunder attribute (``x._module``, ``f.__globals__``), names a refused
  builtin (``open``, ``exec``, ``eval``, ``compile``, ``__import__``, ...), uses a refused
  attribute (frames, ``format``, ``register_*`` hooks, file readers and writers), or could outlive
  the job's time limit (a bare ``except:``, ``except BaseException``, control flow leaving a
  ``finally``);
- its builtins lack ``open``, ``exec``, ``eval``, ``compile``, ``globals``, ``vars``, ``input``,
  ``breakpoint``; ``__import__`` hands out `ProtectedModule` views, ``getattr`` / ``setattr`` /
  ``hasattr`` / ``delattr`` apply the attribute rules to computed names, and ``print`` becomes a
  LOG status frame of the job;
- a `ProtectedModule` refuses the module attributes that reach the file system, the process or
  the network (``torch.load``, ``torch.os``, ``numpy.fromfile``, ``nnsight.CONFIG``...).

The other layers live beside this module: the payload's allow-list (`_policy`, `_rebuild`), the
audit hook refusing files, processes and sockets to a running job (`_audit`), the check that a job
left the model as it found it (`_hosted`), and the refusal to return the model's objects
(`_result`).

A Python-level sandbox is defence in depth, not an isolation boundary: run a server for untrusted
users in a container or VM as well, as NDIF does. What it does guarantee is checked by the tests:
each escape attempt listed in the issue fails with a `SandboxError` that says what was refused.
"""

import builtins
import contextlib
import importlib
import threading
import types
from collections.abc import Callable, Iterator
from typing import Any

from ._errors import SandboxError

ALLOWED_IMPORTS = (
    "torch",
    "numpy",
    "einops",
    "math",
    "collections",
    "nnsight",
    "functools",
    "itertools",
    "operator",
    "time",
)
"""Top-level modules request code may import (their submodules too, minus `DENIED_MODULES`;
nnsight itself only for the names in `NNSIGHT_NAMES`). ``typing`` is left out on purpose:
``typing.get_type_hints(f, globalns={})`` evaluates annotation strings with the real builtins."""

NNSIGHT_NAMES = frozenset({"save", "Envoy", "Object", "NNsightDeprecationWarning"})
"""What request code may take from ``nnsight``: the rest loads models, reads the client's
configuration, talks to NDIF or reads source files (``Tracer.source``)."""

DENIED_MODULES = (
    "torch.hub",
    "torch.utils",
    "torch.ops",
    "torch.classes",
    "torch.jit",
    "torch.package",
    "torch.serialization",
    "torch.multiprocessing",
    "torch.distributed",
    "torch.onnx",
    "torch.profiler",
    "torch.library",
    "torch.export",
    "torch.compiler",
    "torch.backends",
    "torch.testing",
    "torch.fx",
    "torch.autograd.profiler",
    "torch.autograd.profiler_util",
    "numpy.lib.npyio",
    "numpy.lib.format",
    "numpy.f2py",
    "numpy.distutils",
    "numpy.ctypeslib",
    "numpy.testing",
)
"""Submodules of allowed packages that read or write files, spawn processes, load native code or
reach the network, or generate and run code (``torch.fx``)."""

DENIED_MODULE_NAMES = {
    "torch": frozenset(
        {
            "load",
            "save",
            "from_file",
            "compile",
            "set_num_threads",
            "set_num_interop_threads",
            "set_default_dtype",
            "set_default_device",
            "set_default_tensor_type",
            "use_deterministic_algorithms",
            "set_flush_denormal",
        }
    ),  # fmt: skip
    "numpy": frozenset(
        {
            "load",
            "save",
            "savez",
            "savez_compressed",
            "loadtxt",
            "savetxt",
            "genfromtxt",
            "fromfile",
            "fromregex",
            "memmap",
            "DataSource",
            "show_config",
            "show_runtime",
        }
    ),  # fmt: skip
}
"""Per-package module attributes that touch files or process-wide state."""

DENIED_ATTRIBUTES = frozenset(
    {
        # frames, code and generator internals: the way out to the server's globals
        "f_back", "f_globals", "f_locals", "f_builtins", "f_code", "gi_frame", "gi_code",
        "cr_frame", "cr_code", "ag_frame", "ag_code", "tb_frame", "tb_next", "gr_frame", "mro",
        # attribute traversal hidden in strings or helpers
        "format", "format_map", "attrgetter", "methodcaller",
        # files, processes and the environment
        "from_file", "fromfile", "tofile", "dump", "load_library", "save_pretrained",
        "save_vocabulary", "from_pretrained", "push_to_hub", "to_json_file", "from_json_file",
        "get_config_dict", "backend_tokenizer",
        "environ", "getenv", "system", "popen",
        # process-wide state shared with other users' jobs
        "set_attn_implementation", "share_memory_",
    }
)  # fmt: skip
"""Attributes refused on any object. Names starting with ``register_`` (module hooks) and every
private or dunder name (except ``__init__``) are refused too."""

REFUSED_BUILTINS = frozenset(
    {"open", "exec", "eval", "compile", "__import__", "globals", "locals", "vars", "input",
     "breakpoint", "help", "exit", "quit", "memoryview", "copyright", "credits", "license"}
)  # fmt: skip

REFUSED_DEFINITIONS = frozenset(
    {"__del__", "__reduce__", "__reduce_ex__", "__getstate__", "__setstate__", "__exit__",
     "__aexit__", "__init_subclass__", "__set_name__", "__class_getitem__"}
)  # fmt: skip
"""Special methods request code may not define: they would run outside the job (garbage
collection, result pickling) or could swallow the time limit (``__exit__`` returning True)."""

_ALLOWED_DUNDER_ATTRIBUTES = frozenset({"__init__"})
FIX = "This server runs request code in a restricted environment (see the remote guide)."


def attribute_problem(name: str) -> str | None:
    """Why the attribute `name` is refused, or None when request code may use it."""
    if name.startswith("_") and name not in _ALLOWED_DUNDER_ATTRIBUTES:
        return f"the private attribute {name!r} is refused"
    if name in DENIED_ATTRIBUTES or name.startswith("register_"):
        return f"the attribute {name!r} is refused"
    return None


def module_problem(module: str) -> str | None:
    """Why importing `module` is refused, or None when it is allowed."""
    root = module.split(".")[0]
    if root not in ALLOWED_IMPORTS:
        return f"import of {module!r} is refused; allowed modules are {', '.join(ALLOWED_IMPORTS)}"
    if root == "nnsight" and module != "nnsight":
        return (
            f"import of {module!r} is refused; take {', '.join(sorted(NNSIGHT_NAMES))} from nnsight"
        )
    if any(module == d or module.startswith(d + ".") for d in DENIED_MODULES):
        return f"import of {module!r} is refused (it reaches files, processes or the network)"
    if any(part.startswith("_") for part in module.split(".")):
        return f"import of the private module {module!r} is refused"
    return None


# ----- protected modules -----------------------------------------------------------------------------
class ProtectedModule(types.ModuleType):
    """A read-only view of an allowed module that refuses what `module_problem`,
    `attribute_problem` and `DENIED_MODULE_NAMES` refuse (``torch.os``, ``torch.load``, ...).

    Every non-dunder name goes through `protected_attribute`, including ``save``: nnsight mounts a
    ``save`` method on every object, which would otherwise shadow ``nnsight.save``."""

    def __init__(self, module: types.ModuleType) -> None:
        super().__init__(module.__name__)
        object.__setattr__(self, "__wrapped_module__", module)

    def __getattribute__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):
            return object.__getattribute__(self, name)
        return protected_attribute(object.__getattribute__(self, "__wrapped_module__"), name)

    def __setattr__(self, name: str, value: Any) -> None:
        raise SandboxError(f"Modules are read-only in requests: cannot set {self.__name__}.{name}.")

    def __delattr__(self, name: str) -> None:
        raise SandboxError(
            f"Modules are read-only in requests: cannot delete {self.__name__}.{name}."
        )

    def __dir__(self) -> list[str]:
        module = object.__getattribute__(self, "__wrapped_module__")
        return [n for n in dir(module) if attribute_problem(n) is None]


def protected_attribute(module: types.ModuleType, name: str) -> Any:
    """`module.name` as request code may see it: modules come back protected, refused names raise."""
    root = module.__name__.split(".")[0]
    if (why := attribute_problem(name)) is not None:
        raise SandboxError(f"{module.__name__}.{name}: {why}. {FIX}")
    if root == "nnsight" and name not in NNSIGHT_NAMES:
        raise SandboxError(
            f"nnsight.{name} is refused; request code may use nnsight."
            f"{', nnsight.'.join(sorted(NNSIGHT_NAMES))}. {FIX}"
        )
    if name in DENIED_MODULE_NAMES.get(root, ()):
        raise SandboxError(
            f"{module.__name__}.{name} is refused (it reaches files or process-wide state). {FIX}"
        )
    value = getattr(module, name)
    if isinstance(value, types.ModuleType):
        if (why := module_problem(value.__name__)) is not None:
            raise SandboxError(f"{module.__name__}.{name}: {why}. {FIX}")
        return ProtectedModule(value)
    home = getattr(value, "__module__", None)
    if isinstance(home, str) and any(home == d or home.startswith(d + ".") for d in DENIED_MODULES):
        raise SandboxError(f"{module.__name__}.{name} lives in {home}, which is refused. {FIX}")
    return value


def protected_import(name: str) -> ProtectedModule:
    """Imports `name` if allowed and returns its protected view."""
    if (why := module_problem(name)) is not None:
        raise SandboxError(f"{why}. {FIX}")
    return ProtectedModule(importlib.import_module(name))


# ----- the job's builtins ----------------------------------------------------------------------------
_local = threading.local()


@contextlib.contextmanager
def job_output(log: Callable[[str], None]) -> Iterator[None]:
    """Routes `print` of request code running in this thread to `log` for the block."""
    previous = getattr(_local, "log", None)
    _local.log = log
    try:
        yield
    finally:
        _local.log = previous


def _print(*values: Any, sep: str | None = " ", end: str | None = "\n", **_: Any) -> None:
    text = (" " if sep is None else sep).join(str(v) for v in values)
    log = getattr(_local, "log", None)
    if log is not None:
        log(text + ("" if end in (None, "\n") else end))


def _import(
    name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0
) -> ProtectedModule:
    if level:
        raise SandboxError(f"relative imports are refused (from {'.' * level}{name}). {FIX}")
    module = protected_import(name)
    if fromlist:
        return module
    return protected_import(name.split(".")[0])


def _check_name(name: object) -> str:
    if not isinstance(name, str):
        raise TypeError(f"attribute name must be a string, not {type(name).__name__}")
    if (why := attribute_problem(name)) is not None:
        raise SandboxError(f"{why}. {FIX}")
    return name


def guarded_getattr(obj: Any, name: str, *default: Any) -> Any:
    return getattr(obj, _check_name(name), *default)


def _setattr(obj: Any, name: str, value: Any) -> None:
    setattr(obj, _check_name(name), value)


def _delattr(obj: Any, name: str) -> None:
    delattr(obj, _check_name(name))


def _hasattr(obj: Any, name: str) -> bool:
    return hasattr(obj, _check_name(name))


def _build_builtins() -> dict[str, Any]:
    allowed = {
        name: value
        for name, value in vars(builtins).items()
        if name not in REFUSED_BUILTINS and (not name.startswith("_") or name == "__build_class__")
    }
    allowed.update(
        __import__=_import,
        getattr=guarded_getattr,
        setattr=_setattr,
        delattr=_delattr,
        hasattr=_hasattr,
        print=_print,
        __name__="__vrp_request__",
    )
    return allowed


SAFE_BUILTINS: dict[str, Any] = _build_builtins()
"""The builtins of request code (shared, never handed out mutable: request code cannot reach
``__builtins__`` by name or attribute)."""
