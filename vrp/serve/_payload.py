"""Reading a request's payload under a restricted unpickler, and writing a job's result.

nnsight 0.8.1 ships a trace as ``zstd(cloudpickle((tracer, (source, globals, locals))))``: the
block travels as source text, the values it reads are pickled, the model is referenced by
persistent ids. Unpickling runs code chosen by the sender (any global a pickle names can be
called), so `RestrictedUnpickler` resolves only what such payloads legitimately name: torch and
numpy tensor reconstruction, nnsight's tracer and envoy classes, VRP's graph, site and adapter
classes, transformers configs, and cloudpickle's by-value reconstruction, in which every function
shipped as source is checked by the sandbox and gets the restricted builtins. Functions shipped
from library files (nnsight's own ``generate``) are recognised by their source and use the
server's own copy.
"""

import io
import linecache
import os
import pickle
import sys
import textwrap
import threading
import types
import weakref
from dataclasses import dataclass, field
from typing import Any

import torch
from nnsight.intervention.serialization import CustomCloudUnpickler, UnknownPersistentIdError
from nnsight.tracing.tracer import Tracer
from nnsight.tracing.util import SerializedFrame

from ._errors import LimitError, SandboxError, ServeError
from ._sandbox import (
    DENIED_MODULE_NAMES,
    DENIED_MODULES,
    SAFE_BUILTINS,
    _getattr,
    attribute_problem,
    check_source,
    module_problem,
    protected_import,
)

_PICKLE_BUILTINS = frozenset(
    {"object", "slice", "type", "set", "frozenset", "list", "dict", "tuple", "int", "float",
     "complex", "bool", "str", "bytes", "bytearray", "range", "Ellipsis", "NotImplemented",
     "reversed", "enumerate", "zip", "map", "filter", "property", "staticmethod", "classmethod",
     "super", "ValueError", "KeyError", "IndexError", "TypeError", "RuntimeError", "Exception"}
)  # fmt: skip
_PRIVATE_ALLOWED = frozenset(
    {("torch._utils", n) for n in ("_rebuild_tensor_v2", "_rebuild_tensor", "_rebuild_parameter",
     "_rebuild_parameter_with_state", "_rebuild_device_tensor_from_numpy",
     "_rebuild_meta_tensor_no_storage", "_rebuild_wrapper_subclass", "_rebuild_qtensor",
     "_rebuild_sparse_tensor", "_rebuild_nested_tensor")}
    | {("torch._tensor", "_rebuild_from_type_v2"), ("torch._tensor", "_rebuild_from_type")}
    | {(m, n) for m in ("numpy.core.multiarray", "numpy._core.multiarray")
       for n in ("_reconstruct", "scalar")}
    | {(m, "_frombuffer") for m in ("numpy.core.numeric", "numpy._core.numeric")}
    | {("copyreg", "_reconstructor"), ("copyreg", "__newobj__"), ("copyreg", "__newobj_ex__"),
       ("_codecs", "encode")}
    | {("cloudpickle.cloudpickle", n) for n in ("_make_skeleton_class", "_make_skeleton_enum",
       "_class_setstate", "_enum_setstate", "_make_cell", "_make_empty_cell", "_make_dict_keys",
       "_make_dict_values", "_make_dict_items")}
)  # fmt: skip
_VRP_MODULES = (
    "vrp.core", "vrp.interventions", "vrp.signals", "vrp.models._inputs", "vrp.models._protocol",
    "vrp.models._vlm", "vrp.models._base", "vrp.models._remote", "vrp.models.llava",
    "vrp.models.paligemma", "vrp.models.qwen2_vl",
)  # fmt: skip
"""VRP modules a payload may name: vocabulary, graphs, adapters; none of them reads files."""
_NNSIGHT_MODULES = ("nnsight.intervention", "nnsight.modeling", "nnsight.tracing")
_NNSIGHT_REFUSED = (
    "nnsight.intervention.backends", "nnsight.intervention.serialization",
    "nnsight.modeling.vllm", "nnsight.tracing.globals",
)  # fmt: skip
_BUILTIN_TYPES = frozenset({"MethodType", "SimpleNamespace", "CellType", "MappingProxyType"})
_TRUSTED_ROOTS = ("nnsight", "vrp", "circuits", "torch", "transformers")
_TRUSTED: "weakref.WeakSet[Any]" = weakref.WeakSet()


def _under(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def _refuse(module: str, name: str, why: str) -> SandboxError:
    return SandboxError(
        f"The payload names {module}.{name}, which this server does not load: {why}. Send traces "
        "with nnsight 0.8.1's remote backend; request code may use torch, numpy, einops, math, "
        "collections, functools, itertools, operator, time and nnsight.save."
    )


def _policy(module: str, name: str) -> str | None:
    """Why a payload may not name `module.name`, or None when it may (before resolving it)."""
    private = name.startswith("_") or any(p.startswith("_") for p in name.split("."))
    if (module, name) in _PRIVATE_ALLOWED:
        return None
    if module == "builtins":
        return None if name in _PICKLE_BUILTINS else "not an allowed builtin"
    if module == "collections":
        return None if name in ("OrderedDict", "defaultdict", "deque", "Counter") else "refused"
    if _under(module, ("torch", "numpy", "einops", "math")):
        if private or any(p.startswith("_") for p in module.split(".")):
            return "private names of libraries are refused"
        leaf = name.split(".")[-1]
        if leaf in DENIED_MODULE_NAMES.get(module.split(".")[0], ()):
            return "it reaches files or process-wide state"
        return module_problem(module) or attribute_problem(leaf)
    if _under(module, _NNSIGHT_MODULES):
        return (
            "it reaches nnsight's transport or caches" if _under(module, _NNSIGHT_REFUSED) else None
        )
    if _under(module, _VRP_MODULES):
        return None
    if module.startswith("transformers."):
        return None  # checked once resolved: configuration and output classes only
    return "the module is not on the server's allow-list"


def _check_resolved(module: str, name: str, obj: Any) -> None:
    if isinstance(obj, types.ModuleType):
        raise _refuse(module, name, "it is a module")
    if module.startswith("transformers."):
        from transformers import BatchEncoding, BatchFeature, GenerationConfig, PretrainedConfig
        from transformers.utils import ModelOutput

        kinds = (PretrainedConfig, GenerationConfig, BatchFeature, BatchEncoding, ModelOutput)
        if not (isinstance(obj, type) and issubclass(obj, kinds)):
            raise _refuse(module, name, "only configuration, encoding and output classes load")
    home = getattr(obj, "__module__", None)
    for prefixes in (_VRP_MODULES, _NNSIGHT_MODULES):
        if not _under(module, prefixes):
            continue
        # a name imported into an allowed module (`ctypes` helpers, `linecache`) stays refused
        if not isinstance(obj, type | types.FunctionType):
            raise _refuse(module, name, "only classes and functions load from this module")
        if not (isinstance(home, str) and _under(home, prefixes)) or _under(home, _NNSIGHT_REFUSED):
            raise _refuse(module, name, f"it is defined in {home}")
    if isinstance(home, str) and _under(home, DENIED_MODULES):
        raise _refuse(module, name, f"it is defined in {home}, which is refused")


# ----- by-value reconstruction, sandboxed ---------------------------------------------------------
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


_current = threading.local()


def _files() -> JobFiles:
    files = getattr(_current, "files", None)
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
        _check_resolved(library.__module__, library.__qualname__, library)
        if (why := _policy(library.__module__, library.__qualname__)) is not None:
            raise _refuse(library.__module__, library.__qualname__, why)
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


_SWAPS: dict[tuple[str, str], Any] = {
    ("nnsight.intervention.serialization", "_load_function"): load_function,
    ("nnsight.intervention.serialization", "_fill"): fill_function,
    ("cloudpickle.cloudpickle", "subimport"): subimport,
    ("cloudpickle.cloudpickle", "dynamic_subimport"): dynamic_subimport,
    ("cloudpickle.cloudpickle", "_builtin_type"): builtin_type,
    ("torch.storage", "_load_from_bytes"): load_from_bytes,
    ("builtins", "getattr"): _getattr,
}


_ALLOWED: set[tuple[str, str]] = set()


class RestrictedUnpickler(CustomCloudUnpickler):
    """nnsight's unpickler with an allow-list in `find_class` (see the module docstring)."""

    def find_class(self, module: str, name: str) -> Any:
        swap = _SWAPS.get((module, name))
        if swap is not None:
            return swap
        if (module, name) == ("nnsight.intervention.interleaver", "Mediator"):
            raise _refuse(module, name, "persistent edits (model.edit) do not run remotely here")
        if (module, name) == ("cloudpickle.cloudpickle", "_make_function"):
            raise _refuse(
                module,
                name,
                "a function without source (typed into a REPL, or made by exec) "
                "travels as bytecode, which does not run here; define it in a file",
            )
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        why = _policy(module, name)
        if why is not None:
            raise _refuse(module, name, why)
        obj = super().find_class(module, name)
        _check_resolved(module, name, obj)
        _ALLOWED.add((module, name))  # server modules do not change: decide each name once
        return obj


# ----- requests -----------------------------------------------------------------------------------
class PushedLocals(dict):  # type: ignore[type-arg]
    """The frame locals of a deserialised trace; records the names the trace pushes back (its
    saved values), which are the job's result."""

    def __init__(self, values: dict[str, Any]) -> None:
        super().__init__(values)
        self.pushed: list[str] = []

    def update(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        new = dict(*args, **kwargs)
        self.pushed.extend(k for k in new if k not in self.pushed)
        super().update(new)


def decompress(blob: bytes, limit: int) -> bytes:
    """zstd-decompresses `blob`, refusing output larger than `limit` bytes."""
    import zstandard

    try:
        with zstandard.ZstdDecompressor().stream_reader(blob) as reader:
            data = reader.read(limit + 1)
    except zstandard.ZstdError as err:
        raise ServeError(
            f"The payload is marked compressed but is not zstd data ({err}). Send it with "
            "nnsight 0.8.1's remote backend."
        ) from None
    if len(data) > limit:
        raise LimitError(
            f"The payload decompresses to more than {limit / 2**20:.1f} MB, this server's limit "
            "(--max-payload-mb). Send less data with the trace (fewer or smaller inputs)."
        )
    return data


def load_request(
    data: bytes, persistent: dict[str, Any], files: JobFiles, model_name: str
) -> Tracer:
    """The tracer of a (decompressed) payload, with its block compiled under a job-unique
    filename and the restricted builtins in its scope.

    Raises:
      SandboxError: the payload names something refused, or its code is refused.
      ServeError: the payload is not an nnsight 0.8 trace of the hosted model.
    """
    _current.files = files
    try:
        loaded = RestrictedUnpickler(io.BytesIO(data), persistent).load()
    except (SandboxError, ServeError):
        raise
    except UnknownPersistentIdError as err:
        raise ServeError(
            f"The payload references {err.args[0]!r}, which the hosted model {model_name!r} does "
            "not have: the client traced a different model (or a different version of it) "
            "under this name."
        ) from None
    except Exception as err:  # noqa: BLE001  (any unpickling failure is a malformed payload)
        raise ServeError(
            f"The payload does not unpickle ({type(err).__name__}: {err}). Send traces with "
            "nnsight 0.8.1's remote backend (model.trace(..., remote=URL))."
        ) from None
    finally:
        _current.files = None
    return _prepare(loaded, files)


def _prepare(loaded: Any, files: JobFiles) -> Tracer:
    try:
        tracer, (source, glbls, variables) = loaded
    except (TypeError, ValueError):
        tracer = source = glbls = variables = None
    frame = getattr(getattr(tracer, "info", None), "frame", None)
    shaped = (
        isinstance(tracer, Tracer)
        and isinstance(source, str)
        and isinstance(glbls, dict)
        and isinstance(variables, dict)
    )
    if not (
        shaped
        and isinstance(frame, SerializedFrame)
        and isinstance(frame.f_code.co_filename, str)
        and isinstance(frame.f_code.co_name, str)
    ):
        raise ServeError(
            "The payload is not an nnsight 0.8 trace (expected a tracer and its block's source, "
            "globals and locals). Send traces with model.trace(..., remote=URL)."
        )
    check_source(source, frame.f_code.co_filename)
    filename = files.register(frame.f_code.co_filename, source)
    tracer.info.code = compile(source, filename, "exec").replace(co_name=frame.f_code.co_name)
    frame.f_code.co_filename = filename
    clean = {k: v for k, v in glbls.items() if not str(k).startswith("__")}
    frame.f_globals = {**clean, "__builtins__": SAFE_BUILTINS}
    scope = {k: v for k, v in variables.items() if not str(k).startswith("__")}
    frame.f_locals = PushedLocals({**scope, "__builtins__": SAFE_BUILTINS})
    return tracer


# ----- results ------------------------------------------------------------------------------------
def _refused_result_types() -> tuple[type, ...]:
    from greenlet import greenlet
    from nnsight.intervention.envoy import Envoy
    from nnsight.intervention.interleaver import Interleaver, Mediator

    return (
        torch.nn.Module, Envoy, Interleaver, Mediator, Tracer, types.ModuleType, types.FrameType,
        types.CodeType, greenlet,
    )  # fmt: skip


class _ResultPickler(pickle.Pickler):
    refused: tuple[type, ...] = ()

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, self.refused):
            raise SandboxError(
                f"A saved value holds an object of type {type(obj).__name__}, part of the hosted "
                "model's object graph, which does not leave the server. Save tensors instead (e.g. "
                "`model.layer.output.save()`, or `module.weight.detach().clone().save()`)."
            )
        return NotImplemented


_RESULT_PICKLE = types.ModuleType("vrp_result_pickle")
_RESULT_PICKLE.Pickler = _ResultPickler  # type: ignore[attr-defined]
_RESULT_PICKLE.dump = pickle.dump  # type: ignore[attr-defined]


def encode_result(saves: dict[str, Any], *, compress: bool, limit: int) -> bytes:
    """``torch.save`` of the saved values (zstd when the request was), as the client loads it.

    Raises:
      SandboxError: a saved value holds a module, envoy, tracer or frame.
      LimitError: the encoded result is larger than `limit` bytes.
    """
    if not _ResultPickler.refused:
        _ResultPickler.refused = _refused_result_types()
    buffer = io.BytesIO()
    torch.save(saves, buffer, pickle_module=_RESULT_PICKLE)
    data = buffer.getvalue()
    if compress:
        import zstandard

        data = zstandard.ZstdCompressor(level=3).compress(data)
    if len(data) > limit:
        raise LimitError(
            f"The result is {len(data) / 2**20:.1f} MB, over this server's limit of "
            f"{limit / 2**20:.1f} MB (--max-result-mb). Save less (slice positions or layers "
            "inside the trace), or split the work over several traces."
        )
    return data
