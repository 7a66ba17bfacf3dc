"""LLaVA-1.5: a CLIP tower, a 2-layer MLP projector, and a causal Llama (Vicuna) decoder.

Late fusion: the image tokens sit before the question and the decoder attends causally, so text
reads the image only through attention from later positions.
"""

from collections.abc import Mapping
from typing import Any, ClassVar

from transformers import LlavaConfig, LlavaForConditionalGeneration

from ..core import AdapterError
from . import _processors
from ._base import ENCODER_PATHS, BaseAdapter, LayerPaths
from ._registry import register
from ._spec import ModelSpec, text_config, vision_config


@register
class LlavaAdapter(BaseAdapter):
    """Adapter for `LlavaForConditionalGeneration`."""

    model_class: ClassVar[type[Any]] = LlavaForConditionalGeneration
    family: ClassVar[str] = "llava"
    class_token: ClassVar[bool] = True  # CLIP's class token leads its vision tokens
    vision_enters_at_embeddings: ClassVar[bool] = True  # image features replace embeddings
    title: ClassVar[str] = "LLaVA"
    description: ClassVar[str] = (
        "Late fusion, as LLaVA-1.5: a CLIP vision tower (CLS token dropped, features of the "
        "second-to-last layer), a 2-layer MLP projector (GELU), and a causal Llama decoder. The image "
        "tokens come before the question, and text reads them only through causal attention."
    )
    image_placeholder: ClassVar[str] = "<image>"
    vision_paths: ClassVar[LayerPaths] = ENCODER_PATHS
    published: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        # llava-hf/llava-1.5-7b-hf's config.json (transformers' class defaults written out)
        "llava-1.5-7b": {
            "text_config": {
                "model_type": "llama",
                "vocab_size": 32064,
                "hidden_size": 4096,
                "intermediate_size": 11008,
                "num_hidden_layers": 32,
                "num_attention_heads": 32,
                "num_key_value_heads": 32,
                "max_position_embeddings": 4096,
                "rms_norm_eps": 1e-5,
            },
            "vision_config": {
                "model_type": "clip_vision_model",
                "hidden_size": 1024,
                "intermediate_size": 4096,
                "num_hidden_layers": 24,
                "num_attention_heads": 16,
                "image_size": 336,
                "patch_size": 14,
                "projection_dim": 768,
            },
            "image_token_index": 32000,
            "projector_hidden_act": "gelu",
            "vision_feature_layer": -2,
            "vision_feature_select_strategy": "default",
            "tie_word_embeddings": False,
        },
    }

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

    @classmethod
    def build_tiny(cls, spec: ModelSpec, tokenizer: Any) -> tuple[Any, Any]:
        values = {
            "text_config": text_config(spec, len(tokenizer), "llama"),
            "vision_config": vision_config(spec, "clip_vision_model"),
            "vision_feature_layer": -2,
            "vision_feature_select_strategy": "default",
            "projector_hidden_act": "gelu",
        }
        config = cls.build_config(values, tokenizer)
        return cls.model_class(config), cls.build_processor(config, tokenizer)

    @classmethod
    def build_config(cls, values: Mapping[str, Any], tokenizer: Any) -> Any:
        image = tokenizer.convert_tokens_to_ids("<image>")
        return LlavaConfig(**{**values, "image_token_index": image})

    @classmethod
    def build_processor(cls, config: Any, tokenizer: Any) -> Any:
        vision = config.vision_config
        return _processors.llava_processor(
            tokenizer, image_size=int(vision.image_size), patch_size=int(vision.patch_size)
        )
