"""The core vocabulary: sites, position selectors, shape aliases and errors (torch + jaxtyping only)."""

from . import types as types
from ._errors import (
    AdapterError as AdapterError,
)
from ._errors import (
    ConfigError as ConfigError,
)
from ._errors import (
    DataError as DataError,
)
from ._errors import (
    GraphError as GraphError,
)
from ._errors import (
    ModelNotFoundError as ModelNotFoundError,
)
from ._errors import (
    PromptError as PromptError,
)
from ._errors import (
    ShapeError as ShapeError,
)
from ._errors import (
    SiteError as SiteError,
)
from ._errors import (
    VrpError as VrpError,
)
from ._positions import (
    AllTokens as AllTokens,
)
from ._positions import (
    ImageTokens as ImageTokens,
)
from ._positions import (
    Indices as Indices,
)
from ._positions import (
    LastToken as LastToken,
)
from ._positions import (
    Positions as Positions,
)
from ._positions import (
    TextTokens as TextTokens,
)
from ._positions import (
    positions_from_dict as positions_from_dict,
)
from ._select import merge as merge
from ._select import select as select
from ._site import Component as Component
from ._site import Site as Site
from ._site import Tower as Tower
from ._site import sort_sites as sort_sites
