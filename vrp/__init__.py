"""VRP, the VLM Reliability Probe: mechanistic interpretability of vision-language models."""

from .core import (
    AdapterError as AdapterError,
    ConfigError as ConfigError,
    DataError as DataError,
    GraphError as GraphError,
    ModelNotFoundError as ModelNotFoundError,
    PromptError as PromptError,
    ShapeError as ShapeError,
    SiteError as SiteError,
    VrpError as VrpError,
)

__version__ = "0.1.0"
