"""Qwen2-VL: a native-resolution ViT with 2-D rotary positions, a 2x2 patch merger, and a Qwen2
decoder with M-RoPE positions.

Its vision tower runs on one flat sequence of all images' patches (no batch axis), in 2x2-merge
window order; canonical vision reads split it per image (all images of a batch share one grid).
The patch grid of the language model's image tokens is ``image_grid_thw`` after the 2x2 merge.
"""

from typing import Any, ClassVar

from torch import Tensor
from transformers import Qwen2VLForConditionalGeneration

from ..core import Component, ShapeError, Site, Tower
from ._base import ALL_COMPONENTS, BaseAdapter, LayerPaths, TowerShape
from ._inputs import VlmInputs


class Qwen2VLAdapter(BaseAdapter):
    """Adapter for `Qwen2VLForConditionalGeneration`."""

    model_class: ClassVar[type[Any]] = Qwen2VLForConditionalGeneration
    family: ClassVar[str] = "qwen2_vl"
    image_placeholder: ClassVar[str] = "<|vision_start|><|image_pad|><|vision_end|>"
    vision_paths: ClassVar[LayerPaths] = LayerPaths(
        attn="attn", head_proj="proj", mlp="mlp", neuron_proj="fc2", attn_returns_weights=False
    )

    def _vision_shape(self, cfg: Any) -> TowerShape:
        heads = int(cfg.num_heads)
        d_model = int(cfg.embed_dim)
        return TowerShape(
            n_layers=int(cfg.depth),
            n_heads=heads,
            d_model=d_model,
            d_head=d_model // heads,
            d_mlp=int(d_model * cfg.mlp_ratio),
            components=ALL_COMPONENTS
            - {Component.ATTN_PATTERN},  # its attention returns no weights
        )

    def _vision_layer(self, model: Any, layer: int) -> Any:
        return model.model.visual.blocks[layer]

    def vision_position_embedding(self, hf: Any) -> Any:
        """None: Qwen2-VL's vision tower has no learned position table (2-D rotary positions)."""
        return None

    def _projector(self, model: Any) -> Any:
        return model.model.visual.merger

    def prompt(self, question: str) -> str:
        return (
            "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>"
            f"{question}<|im_end|>\n<|im_start|>assistant\n"
        )

    def _grids(self, data: dict[str, Tensor]) -> tuple[tuple[int, int], ...]:
        merge = int(self.config.vision_config.spatial_merge_size)
        return tuple(
            (int(h) // merge, int(w) // merge) for _, h, w in data["image_grid_thw"].tolist()
        )

    @staticmethod
    def _flat(site: Site) -> bool:
        return site.tower is not Tower.LANGUAGE

    def _to_canonical(self, site: Site, raw: Tensor, inputs: VlmInputs) -> Tensor:
        if self._flat(site):
            n_images = int(inputs.data["image_grid_thw"].shape[0])
            if raw.shape[0] % n_images:
                raise ShapeError(
                    f"{site}: {raw.shape[0]} vision tokens do not split evenly over {n_images} images."
                )
            raw = raw.reshape(n_images, raw.shape[0] // n_images, *raw.shape[1:])
        return super()._to_canonical(site, raw, inputs)

    def _from_canonical(self, site: Site, value: Tensor, inputs: VlmInputs) -> Tensor:
        value = super()._from_canonical(site, value, inputs)
        return value.flatten(0, 1) if self._flat(site) else value
