"""LLaVA-1.5: a CLIP tower, a 2-layer MLP projector, and a causal Llama (Vicuna) decoder.

Late fusion: the image tokens sit before the question and the decoder attends causally, so text
reads the image only through attention from later positions.
"""

from typing import Any, ClassVar

from transformers import LlavaForConditionalGeneration

from ..core import AdapterError
from ._base import ENCODER_PATHS, BaseAdapter, LayerPaths


class LlavaAdapter(BaseAdapter):
    """Adapter for `LlavaForConditionalGeneration`."""

    model_class: ClassVar[type[Any]] = LlavaForConditionalGeneration
    family: ClassVar[str] = "llava"
    image_placeholder: ClassVar[str] = "<image>"
    vision_paths: ClassVar[LayerPaths] = ENCODER_PATHS

    def __init__(self, config: Any) -> None:
        strategy = getattr(config, "vision_feature_select_strategy", "default")
        if strategy != "default":
            raise AdapterError(
                f"LLaVA adapter is checked for vision_feature_select_strategy='default' (CLS "
                f"dropped, as LLaVA-1.5), got {strategy!r}."
            )
        super().__init__(config)

    def _vision_layer(self, model: Any, layer: int) -> Any:
        return model.model.vision_tower.encoder.layers[layer]

    def prompt(self, question: str) -> str:
        return f"USER: <image>\n{question} ASSISTANT:"
