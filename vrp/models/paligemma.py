"""PaliGemma: a SigLIP tower, a linear projector, and a Gemma decoder.

Early fusion: the image tokens and the prompt form one prefix that attends bidirectionally; the
processor marks it with ``token_type_ids`` (0 = prefix), which the model turns into the prefix mask.
"""

from collections.abc import Mapping
from typing import Any, ClassVar

from torch import Tensor
from transformers import PaliGemmaConfig, PaliGemmaForConditionalGeneration

from ..core import AdapterError
from . import _processors
from ._base import ENCODER_PATHS, BaseAdapter, LayerPaths
from ._registry import register
from ._spec import ModelSpec, text_config, vision_config


@register
class PaliGemmaAdapter(BaseAdapter):
    """Adapter for `PaliGemmaForConditionalGeneration`."""

    model_class: ClassVar[type[Any]] = PaliGemmaForConditionalGeneration
    family: ClassVar[str] = "paligemma"
    vision_enters_at_embeddings: ClassVar[bool] = True  # image features replace embeddings
    title: ClassVar[str] = "PaliGemma"
    description: ClassVar[str] = (
        "Early fusion, as PaliGemma: a SigLIP vision tower, a linear projector, and a Gemma decoder. "
        "Image tokens, <bos>, the prompt and its newline form one prefix that attends "
        "bidirectionally (token_type_ids = 0); the answer is a causal suffix (token_type_ids = 1)."
    )
    image_placeholder: ClassVar[str] = "<image>"
    vision_paths: ClassVar[LayerPaths] = ENCODER_PATHS
    causal_prompt: ClassVar[bool] = False  # the prefix attends bidirectionally
    spec_options: ClassVar[frozenset[str]] = frozenset({"text_head_dim"})
    published: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        # google/paligemma-3b-pt-224's config.json
        "paligemma-3b-224": {
            "text_config": {
                "model_type": "gemma",
                "vocab_size": 257216,
                "hidden_size": 2048,
                "intermediate_size": 16384,
                "num_hidden_layers": 18,
                "num_attention_heads": 8,
                "num_key_value_heads": 1,
                "head_dim": 256,
                "max_position_embeddings": 8192,
            },
            "vision_config": {
                "model_type": "siglip_vision_model",
                "hidden_size": 1152,
                "intermediate_size": 4304,
                "num_hidden_layers": 27,
                "num_attention_heads": 16,
                "image_size": 224,
                "patch_size": 14,
                "projection_dim": 2048,
                "vision_use_head": False,
            },
            "image_token_index": 257152,
            "projection_dim": 2048,
            "hidden_size": 2048,
        },
    }

    def _vision_layer(self, model: Any, layer: int) -> Any:
        return model.model.vision_tower.encoder.layers[layer]

    def final_norm_gain(self, hf: Any) -> Tensor:
        # Gemma's RMSNorm scales by (1 + weight)
        return 1.0 + self.final_norm(hf).weight

    def prompt(self, question: str) -> str:
        # PaliGemma's task-prefix format; the processor adds <bos> after the image tokens and "\n"
        return f"<image>answer en {question}"

    @classmethod
    def check_spec(cls, spec: ModelSpec) -> None:
        super().check_spec(spec)
        if spec.text_head_dim is not None and spec.text_head_dim < 1:
            raise AdapterError(
                f"text_head_dim={spec.text_head_dim} for paligemma: Gemma's head width must be "
                ">= 1. Leave it None for text_width // text_heads."
            )

    @classmethod
    def build_tiny(cls, spec: ModelSpec, tokenizer: Any) -> tuple[Any, Any]:
        # the processor adds PaliGemma's <loc>/<seg> tokens: size the vocabulary after it
        processor = _processors.paligemma_processor(
            tokenizer, image_size=spec.image_size, patch_size=spec.patch_size
        )
        text = text_config(spec, len(tokenizer), "gemma")
        # Gemma's multi-query attention: one key-value head shared by every query head
        head_dim = spec.text_head_dim or spec.text_width // spec.text_heads
        text.update(num_key_value_heads=1, head_dim=head_dim)
        values = {
            "text_config": text,
            "vision_config": vision_config(spec, "siglip_vision_model"),
            "projection_dim": spec.text_width,
        }
        return cls.model_class(cls.build_config(values, tokenizer)), processor

    @classmethod
    def build_config(cls, values: Mapping[str, Any], tokenizer: Any) -> Any:
        image = tokenizer.convert_tokens_to_ids("<image>")
        config = PaliGemmaConfig(**{**values, "image_token_index": image})
        config.vision_config.projection_dim = config.projection_dim  # type: ignore[union-attr]
        return config

    @classmethod
    def build_processor(cls, config: Any, tokenizer: Any) -> Any:
        vision = config.vision_config
        return _processors.paligemma_processor(
            tokenizer, image_size=int(vision.image_size), patch_size=int(vision.patch_size)
        )
