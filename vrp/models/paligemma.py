"""PaliGemma: a SigLIP tower, a linear projector, and a Gemma decoder.

Early fusion: the image tokens and the prompt form one prefix that attends bidirectionally; the
processor marks it with ``token_type_ids`` (0 = prefix), which the model turns into the prefix mask.
"""

from typing import Any, ClassVar

from torch import Tensor
from transformers import PaliGemmaForConditionalGeneration

from ._base import ENCODER_PATHS, BaseAdapter, LayerPaths


class PaliGemmaAdapter(BaseAdapter):
    """Adapter for `PaliGemmaForConditionalGeneration`."""

    model_class: ClassVar[type[Any]] = PaliGemmaForConditionalGeneration
    family: ClassVar[str] = "paligemma"
    image_placeholder: ClassVar[str] = "<image>"
    vision_paths: ClassVar[LayerPaths] = ENCODER_PATHS

    def _vision_layer(self, model: Any, layer: int) -> Any:
        return model.model.vision_tower.encoder.layers[layer]

    def final_norm_gain(self, hf: Any) -> Tensor:
        # Gemma's RMSNorm scales by (1 + weight)
        return 1.0 + self.final_norm(hf).weight

    def prompt(self, question: str) -> str:
        # PaliGemma's task-prefix format; the processor adds <bos> after the image tokens and "\n"
        return f"<image>answer en {question}"
