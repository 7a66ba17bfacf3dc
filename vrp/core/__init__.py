"""The core vocabulary: sites, position selectors, shape aliases, errors and the image rule.

Dependencies: torch, jaxtyping and PIL only (never transformers or nnsight).
"""

from . import types as types
from ._errors import (
    AdapterError as AdapterError,
    ConfigError as ConfigError,
    DataError as DataError,
    GraphError as GraphError,
    ModelNotFoundError as ModelNotFoundError,
    PromptError as PromptError,
    ShapeError as ShapeError,
    SignalError as SignalError,
    SiteError as SiteError,
    UndefinedSignalWarning as UndefinedSignalWarning,
    VrpError as VrpError,
)
from ._images import to_rgb as to_rgb
from ._positions import (
    AllTokens as AllTokens,
    ImageTokens as ImageTokens,
    Indices as Indices,
    LastToken as LastToken,
    Positions as Positions,
    TextTokens as TextTokens,
    positions_from_dict as positions_from_dict,
)
from ._records import TidyRecords as TidyRecords, records_frame as records_frame
from ._select import (
    merge as merge,
    merge_into as merge_into,
    select as select,
    selection_shape as selection_shape,
)
from ._site import Component as Component, Site as Site, Tower as Tower, sort_sites as sort_sites
