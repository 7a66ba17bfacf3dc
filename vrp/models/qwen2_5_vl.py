"""Qwen2.5-VL: Qwen2-VL with a window-attention vision tower.

The diff with Qwen2-VL: the ViT's blocks use RMSNorm and SwiGLU MLPs (neurons at
``mlp.down_proj``), and most of them attend only within windows of the merged-token grid (a
few, ``fullatt_block_indexes``, attend over the whole image). To make windows contiguous the
tower reorders its flat sequence into window order, at the granularity of a 2x2 merge unit,
before the first block, and restores the processor's order only after the merger. Canonical
vision and projector values are in the processor's order (as Qwen2-VL's), so the adapter undoes
the window order on reads and re-applies it on writes.
"""

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from jaxtyping import Int
from torch import Tensor
from transformers import Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor

from ..core import Component, Site, Tower
from ._base import LayerPaths
from ._inputs import VlmInputs
from ._registry import register
from ._spec import ModelSpec
from .qwen2_vl import Qwen2VLAdapter


@register
class Qwen25VLAdapter(Qwen2VLAdapter):
    """Adapter for `Qwen2_5_VLForConditionalGeneration`."""

    model_class: ClassVar[type[Any]] = Qwen2_5_VLForConditionalGeneration
    processor_class: ClassVar[type[Any]] = Qwen2_5_VLProcessor
    family: ClassVar[str] = "qwen2_5_vl"
    title: ClassVar[str] = "Qwen2.5-VL"
    description: ClassVar[str] = (
        "Early fusion, as Qwen2.5-VL: a native-resolution ViT with 2-D rotary positions, RMSNorm "
        "and SwiGLU MLPs whose layers attend within windows of the merged-token grid (a few layers "
        "attend over the whole image), a 2x2 patch merger, and a Qwen2 decoder with M-RoPE "
        "positions (time, height, width) from the real image grid (image_grid_thw)."
    )
    vision_paths: ClassVar[LayerPaths] = LayerPaths(
        attn="attn",
        head_proj="proj",
        mlp="mlp",
        neuron_proj="down_proj",
        attn_returns_weights=False,
        attn_norm="norm1",
        mlp_norm="norm2",
    )
    published: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        # Qwen/Qwen2.5-VL-3B-Instruct's config.json, its text fields under text_config
        "qwen2.5-vl-3b": {
            "text_config": {
                "model_type": "qwen2_5_vl_text",
                "vocab_size": 151936,
                "hidden_size": 2048,
                "intermediate_size": 11008,
                "num_hidden_layers": 36,
                "num_attention_heads": 16,
                "num_key_value_heads": 2,
                "max_position_embeddings": 128000,
                "rms_norm_eps": 1e-6,
                "rope_theta": 1e6,
                "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]},
                "tie_word_embeddings": True,
            },
            "vision_config": {
                "depth": 32,
                "hidden_size": 1280,
                "intermediate_size": 3420,
                "num_heads": 16,
                "in_channels": 3,
                "out_hidden_size": 2048,
                "patch_size": 14,
                "spatial_merge_size": 2,
                "temporal_patch_size": 2,
                "window_size": 112,
                "fullatt_block_indexes": [7, 15, 23, 31],
                "tokens_per_second": 2,
            },
            "tie_word_embeddings": True,
        },
    }

    @staticmethod
    def _vision_widths(cfg: Any) -> tuple[int, int]:
        # main diff with Qwen2-VL: the MLP width is given, not a ratio of the model width
        return int(cfg.hidden_size), int(cfg.intermediate_size)

    # ----- window order <-> the processor's order -------------------------------------------------
    def window_order(self, grid_thw: Int[Tensor, "image 3"]) -> Int[Tensor, " merged"]:
        """Position in the processor's order of each merged token of the window order: the
        tower's sequence is ``processor_order[window_order]`` (in merge units)."""
        vision = self.config.vision_config
        merge = int(vision.spatial_merge_size)
        side = int(vision.window_size) // merge // int(vision.patch_size)  # merged tokens a side
        parts, offset = [], 0
        for t, h, w in grid_thw.tolist():
            rows, cols = int(h) // merge, int(w) // merge
            frames = torch.arange(int(t) * rows * cols).view(int(t), rows, cols) + offset
            parts += [
                frame[top : top + side, left : left + side].flatten()
                for frame in frames
                for top in range(0, rows, side)
                for left in range(0, cols, side)
            ]
            offset += int(t) * rows * cols
        return torch.cat(parts)

    def _unit(self, site: Site) -> int:
        """Rows of the flat sequence per merged token at `site` (1 after the merger)."""
        after_merge = site.tower is Tower.PROJECTOR and site.component is Component.RESID_POST
        return 1 if after_merge else int(self.config.vision_config.spatial_merge_size) ** 2

    def _reorder(
        self,
        site: Site,
        flat: Tensor,
        inputs: VlmInputs,
        *,
        to_window: bool,
        grid: Tensor | None = None,
    ) -> Tensor:
        grids = inputs.data["image_grid_thw"] if grid is None else grid
        order = self.window_order(grids).to(flat.device)
        if not to_window:
            order = torch.argsort(order)
        unit = self._unit(site)
        units = flat.reshape(flat.shape[0] // unit, unit, *flat.shape[1:])
        return units[order].reshape(flat.shape)

    def _image_order(self, site: Site, flat: Tensor, inputs: VlmInputs) -> Tensor:
        one = inputs.data["image_grid_thw"][:1]  # every image of a batch has the same grid
        return self._reorder(site, flat, inputs, to_window=False, grid=one)

    def _to_canonical(self, site: Site, raw: Tensor, inputs: VlmInputs) -> Tensor:
        if self._flat(site):
            raw = self._reorder(site, raw, inputs, to_window=False)
        return super()._to_canonical(site, raw, inputs)

    def _from_canonical(self, site: Site, value: Tensor, inputs: VlmInputs) -> Tensor:
        flat = super()._from_canonical(site, value, inputs)
        return self._reorder(site, flat, inputs, to_window=True) if self._flat(site) else flat

    # ----- the family: building -------------------------------------------------------------------
    @classmethod
    def _tiny_vision(cls, spec: ModelSpec) -> dict[str, Any]:
        patch = spec.patch_size // 2
        return {
            "depth": spec.vision_layers,
            "hidden_size": spec.vision_width,
            "intermediate_size": spec.vision_mlp,
            "num_heads": spec.vision_heads,
            "out_hidden_size": spec.text_width,
            "patch_size": patch,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "in_channels": 3,
            # windows of 2x2 merged tokens, so that a tiny image holds several; the last layer
            # attends over the whole image (the real model: every eighth)
            "window_size": 2 * 2 * patch,
            "fullatt_block_indexes": [spec.vision_layers - 1],
        }
