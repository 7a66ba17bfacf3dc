"""Shape aliases over one axis vocabulary.

Every public signature in VRP names tensor shapes with the aliases below, built from these axes:

- ``batch``: rows of a batched encoding (one question-image pair each).
- ``seq``: token positions of the language model's input, image tokens included.
- ``d_model``: width of a tower's residual stream (language or vision, as the site says).
- ``d_mlp``: width of an MLP's hidden layer (the units feeding ``down_proj`` / ``fc2``).
- ``head``: attention heads of one layer; ``d_head``: width of one head.
- ``key``: key positions of an attention pattern (the ``seq`` axis seen from a query).
- ``vocab``: the language model's output vocabulary.
- ``patch``: image tokens of one image after the projector (LLaVA 576, PaliGemma 256, Qwen2-VL
  ``t*h*w/4``); ``grid_h`` / ``grid_w``: the patch grid they tile.
- ``channel height width``: pixels.
- ``n`` / ``d``: samples and features of a probe's design matrix (numpy).
- ``layer``: language-model layers, for per-layer results.

Vision-tower sites use the same names: ``seq`` is then the tower's own token axis (patches, plus a
CLS token for CLIP), ``batch`` its images.
"""

from jaxtyping import Bool, Float, Int
from torch import Tensor

Resid = Float[Tensor, "batch seq d_model"]
Neurons = Float[Tensor, "batch seq d_mlp"]
HeadOut = Float[Tensor, "batch seq head d_head"]
Pattern = Float[Tensor, "batch head seq key"]
Logits = Float[Tensor, "batch seq vocab"]
AnswerLogits = Float[Tensor, "batch vocab"]
TokenIds = Int[Tensor, "batch seq"]
TokenMask = Bool[Tensor, "batch seq"]
Activation = Float[Tensor, "batch seq *rest"]
"""Any site's value in canonical layout: batch and seq first, the component's own axes after."""
