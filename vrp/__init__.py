"""VRP, the VLM Reliability Probe: mechanistic interpretability of vision-language models.

The core vocabulary is imported eagerly; names that need transformers / nnsight (`load`, `VLM`, ...)
are imported on first use, so ``import vrp`` stays light and changes no global state.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .core import (
    AdapterError as AdapterError,
    AllTokens as AllTokens,
    Component as Component,
    ConfigError as ConfigError,
    DataError as DataError,
    GraphError as GraphError,
    ImageTokens as ImageTokens,
    Indices as Indices,
    LastToken as LastToken,
    ModelNotFoundError as ModelNotFoundError,
    Positions as Positions,
    PromptError as PromptError,
    ShapeError as ShapeError,
    SignalError as SignalError,
    Site as Site,
    SiteError as SiteError,
    TextTokens as TextTokens,
    Tower as Tower,
    UndefinedSignalWarning as UndefinedSignalWarning,
    VrpError as VrpError,
    to_rgb as to_rgb,
)

if TYPE_CHECKING:
    from pathlib import Path

    from . import models as models
    from .models import (
        VLM as VLM,
        ModelSpec as ModelSpec,
        VlmInputs as VlmInputs,
        build_vlm as build_vlm,
        families as families,
    )

__version__ = "0.1.0"

_LAZY = {
    "VLM": "vrp.models",
    "ModelSpec": "vrp.models",
    "VlmInputs": "vrp.models",
    "build_vlm": "vrp.models",
    "families": "vrp.models",
}
_SUBMODULES = ("models", "interventions", "data", "signals", "probes", "stats", "store", "pipeline")

__all__ = [
    "AdapterError", "AllTokens", "Component", "ConfigError", "DataError", "GraphError",
    "ImageTokens", "Indices", "LastToken", "ModelNotFoundError", "Positions", "PromptError",
    "ShapeError", "SignalError", "Site", "SiteError", "TextTokens", "Tower", "UndefinedSignalWarning", "VrpError",
    "load",
    "save", "to_rgb", *_LAZY,
]  # fmt: skip


def load(name_or_path: "str | Path", **kwargs: Any) -> "VLM":
    """Loads a VLM by built-in name, checkpoint directory or Hub id: see `vrp.models.load`."""
    from .models import load as load_model

    return load_model(name_or_path, **kwargs)


def save(vlm: "VLM", directory: "str | Path") -> "Path":
    """Saves a VLM so that `load` reads it back: see `vrp.models.save`.

    Defined here rather than resolved lazily: nnsight gives every object a ``save`` attribute,
    which would shadow a lazily resolved module attribute of that name.
    """
    from .models import save as save_model

    return save_model(vlm, directory)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return import_module(f"vrp.{name}")
    raise AttributeError(f"module 'vrp' has no attribute {name!r}")
