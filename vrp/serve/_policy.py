"""What a request payload may name: the allow-list behind `RestrictedUnpickler.find_class`.

Unpickling calls whatever globals a pickle names, with arguments the sender chose. A payload
nnsight 0.8.1 builds names only: torch and numpy tensor reconstruction, nnsight's tracer and envoy
classes, VRP's graph, site and adapter classes, transformers configurations, and cloudpickle's
by-value reconstruction. Everything else is refused, and each allowed name is checked again once
resolved (a module's imports, e.g. ``ctypes`` helpers, do not pass for its own classes).
"""

import types
from typing import Any

from ._errors import SandboxError
from ._sandbox import DENIED_MODULE_NAMES, DENIED_MODULES, attribute_problem, module_problem

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
_VRP_CORE_MODULES = (
    "vrp.core", "vrp.interventions", "vrp.signals", "vrp.models._inputs", "vrp.models._protocol",
    "vrp.models._vlm", "vrp.models._base", "vrp.models._attention", "vrp.models._remote",
)  # fmt: skip


def _vrp_modules() -> tuple[str, ...]:
    """VRP modules a payload may name: vocabulary, graphs, and the modules of the registered
    families' adapters (read from the registry when asked); none of them reads files."""
    from ..models import adapter_class, families

    return (*_VRP_CORE_MODULES, *(adapter_class(f).__module__ for f in families()))


_NNSIGHT_MODULES = ("nnsight.intervention", "nnsight.modeling", "nnsight.tracing")
_NNSIGHT_REFUSED = (
    "nnsight.intervention.backends", "nnsight.intervention.serialization",
    "nnsight.modeling.vllm", "nnsight.tracing.globals",
)  # fmt: skip


def under(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def refusal(module: str, name: str, why: str) -> SandboxError:
    return SandboxError(
        f"The payload names {module}.{name}, which this server does not load: {why}. Send traces "
        "with nnsight 0.8.1's remote backend; request code may use torch, numpy, einops, math, "
        "collections, functools, itertools, operator, time and nnsight.save."
    )


def payload_policy(module: str, name: str) -> str | None:
    """Why a payload may not name `module.name`, or None when it may (before resolving it)."""
    private = name.startswith("_") or any(p.startswith("_") for p in name.split("."))
    if (module, name) in _PRIVATE_ALLOWED:
        return None
    if module == "builtins":
        return None if name in _PICKLE_BUILTINS else "not an allowed builtin"
    if module == "collections":
        return None if name in ("OrderedDict", "defaultdict", "deque", "Counter") else "refused"
    if under(module, ("torch", "numpy", "einops", "math")):
        if private or any(p.startswith("_") for p in module.split(".")):
            return "private names of libraries are refused"
        leaf = name.split(".")[-1]
        if leaf in DENIED_MODULE_NAMES.get(module.split(".")[0], ()):
            return "it reaches files or process-wide state"
        return module_problem(module) or attribute_problem(leaf)
    if under(module, _NNSIGHT_MODULES):
        return (
            "it reaches nnsight's transport or caches" if under(module, _NNSIGHT_REFUSED) else None
        )
    if under(module, _vrp_modules()):
        return None
    if module.startswith("transformers."):
        return None  # checked once resolved: configuration and output classes only
    return "the module is not on the server's allow-list"


def check_resolved(module: str, name: str, obj: Any) -> None:
    if isinstance(obj, types.ModuleType):
        raise refusal(module, name, "it is a module")
    if module.startswith("transformers."):
        from transformers import BatchEncoding, BatchFeature, GenerationConfig, PretrainedConfig
        from transformers.utils import ModelOutput

        kinds = (PretrainedConfig, GenerationConfig, BatchFeature, BatchEncoding, ModelOutput)
        if not (isinstance(obj, type) and issubclass(obj, kinds)):
            raise refusal(module, name, "only configuration, encoding and output classes load")
    home = getattr(obj, "__module__", None)
    for prefixes in (_vrp_modules(), _NNSIGHT_MODULES):
        if not under(module, prefixes):
            continue
        # a name imported into an allowed module (`ctypes` helpers, `linecache`) stays refused
        if not isinstance(obj, type | types.FunctionType):
            raise refusal(module, name, "only classes and functions load from this module")
        if not (isinstance(home, str) and under(home, prefixes)) or under(home, _NNSIGHT_REFUSED):
            raise refusal(module, name, f"it is defined in {home}")
    if isinstance(home, str) and under(home, DENIED_MODULES):
        raise refusal(module, name, f"it is defined in {home}, which is refused")
