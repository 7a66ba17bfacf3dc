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
    VrpError as VrpError,
)

if TYPE_CHECKING:
    from .models import (
        VLM as VLM,
        ModelSpec as ModelSpec,
        VlmInputs as VlmInputs,
        build_vlm as build_vlm,
        families as families,
        load as load,
        save as save,
    )

__version__ = "0.1.0"

_LAZY = {
    "VLM": "vrp.models",
    "ModelSpec": "vrp.models",
    "VlmInputs": "vrp.models",
    "build_vlm": "vrp.models",
    "families": "vrp.models",
    "load": "vrp.models",
    "save": "vrp.models",
}

__all__ = [
    "AdapterError", "AllTokens", "Component", "ConfigError", "DataError", "GraphError",
    "ImageTokens", "Indices", "LastToken", "ModelNotFoundError", "Positions", "PromptError",
    "ShapeError", "SignalError", "Site", "SiteError", "TextTokens", "Tower", "VrpError", *_LAZY,
]  # fmt: skip


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'vrp' has no attribute {name!r}")
