"""VRP, the VLM Reliability Probe: mechanistic interpretability of vision-language models.

The core vocabulary is imported eagerly; names that need transformers / nnsight (`load`, `VLM`, ...)
are imported on first use, so ``import vrp`` stays light and changes no global state.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .core import (
    AdapterError as AdapterError,
)
from .core import (
    AllTokens as AllTokens,
)
from .core import (
    Component as Component,
)
from .core import (
    ConfigError as ConfigError,
)
from .core import (
    DataError as DataError,
)
from .core import (
    GraphError as GraphError,
)
from .core import (
    ImageTokens as ImageTokens,
)
from .core import (
    Indices as Indices,
)
from .core import (
    LastToken as LastToken,
)
from .core import (
    ModelNotFoundError as ModelNotFoundError,
)
from .core import (
    Positions as Positions,
)
from .core import (
    PromptError as PromptError,
)
from .core import (
    ShapeError as ShapeError,
)
from .core import (
    Site as Site,
)
from .core import (
    SiteError as SiteError,
)
from .core import (
    TextTokens as TextTokens,
)
from .core import (
    Tower as Tower,
)
from .core import (
    VrpError as VrpError,
)

if TYPE_CHECKING:
    from .models import (
        VLM as VLM,
    )
    from .models import (
        ModelSpec as ModelSpec,
    )
    from .models import (
        VlmInputs as VlmInputs,
    )
    from .models import (
        build_vlm as build_vlm,
    )
    from .models import (
        families as families,
    )
    from .models import (
        load as load,
    )
    from .models import (
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
    "ShapeError", "Site", "SiteError", "TextTokens", "Tower", "VrpError", *_LAZY,
]  # fmt: skip


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'vrp' has no attribute {name!r}")
