"""Shape aliases used by the signals, over the axis vocabulary documented in `vrp.core`.

The attention maps live on the patch grid: ``grid_h`` x ``grid_w`` cells, one per image token, in
row-major (raster) order of the image tokens.
"""

from jaxtyping import Float
from torch import Tensor

Pattern = Float[Tensor, "batch head seq key"]
"""One layer's attention weights (softmax output), as the core vocabulary defines them."""
AnswerLogits = Float[Tensor, "batch vocab"]
"""Logits at the answer position."""
HeadMaps = Float[Tensor, "batch layer head grid_h grid_w"]
"""Attention from the answer position(s) to each image token, per layer and head, on the grid."""
LayerMaps = Float[Tensor, "batch layer grid_h grid_w"]
"""Head-averaged attention maps, one per layer."""
GridMaps = Float[Tensor, "*batch grid_h grid_w"]
"""Any stack of attention maps on the patch grid (one map per leading index)."""
LayerValues = Float[Tensor, "*batch layer"]
"""One number per layer (an entropy, a margin), for any stack of samples."""
