"""The core vocabulary: sites, position selectors, shape aliases and errors (torch + jaxtyping only)."""

from ._errors import (
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
