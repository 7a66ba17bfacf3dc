"""Shape aliases only the signals use, over the axis vocabulary documented in `vrp.core.types`.

The shared aliases (`Pattern`, `AnswerLogits`, ...) live in `vrp.core.types`; import them from
there. The attention maps below live on the patch grid: ``grid_h`` x ``grid_w`` cells, one per
image token, in row-major (raster) order of the image tokens.
"""

from jaxtyping import Float
from torch import Tensor

HeadMaps = Float[Tensor, "batch layer head grid_h grid_w"]
"""Attention from the answer position(s) to each image token, per layer and head, on the grid."""
LayerMaps = Float[Tensor, "batch layer grid_h grid_w"]
"""Head-averaged attention maps, one per layer."""
GridMaps = Float[Tensor, "*batch grid_h grid_w"]
"""Any stack of attention maps on the patch grid (one map per leading index)."""
LayerValues = Float[Tensor, "*batch layer"]
"""One number per layer (an entropy, a margin), for any stack of samples."""
