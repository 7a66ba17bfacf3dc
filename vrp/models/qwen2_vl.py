"""Qwen2-VL: a native-resolution ViT with 2-D rotary positions, a 2x2 patch merger, and a Qwen2
decoder with M-RoPE positions.

Its vision tower runs on one flat sequence of all images' patches (no batch axis), in 2x2-merge
window order; canonical vision reads split it per image (all images of a batch share one grid).
The patch grid of the language model's image tokens is ``image_grid_thw`` after the 2x2 merge.
"""

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import torch
from jaxtyping import Int
from torch import Tensor
from transformers import AutoTokenizer, Qwen2VLForConditionalGeneration
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

from ..core import Component, ShapeError, Site, SiteError, Tower
from . import _processors
from ._attention import block_inputs, flat_pattern
from ._base import ALL_COMPONENTS, BaseAdapter, LayerPaths, TowerShape
from ._inputs import VlmInputs
from ._registry import register
from ._spec import ModelSpec, mrope_section, text_config

_TOKEN_IDS = {
    "image_token_id": "<|image_pad|>",
    "video_token_id": "<|video_pad|>",
    "vision_start_token_id": "<|vision_start|>",
    "vision_end_token_id": "<|vision_end|>",
}


@register
class Qwen2VLAdapter(BaseAdapter):
    """Adapter for `Qwen2VLForConditionalGeneration`."""

    model_class: ClassVar[type[Any]] = Qwen2VLForConditionalGeneration
    family: ClassVar[str] = "qwen2_vl"
    vision_enters_at_embeddings: ClassVar[bool] = True  # image features replace embeddings
    title: ClassVar[str] = "Qwen2-VL"
    description: ClassVar[str] = (
        "Early fusion, as Qwen2-VL: a native-resolution ViT with 2-D rotary positions over 8 px "
        "patches, a 2x2 patch merger (an MLP over each 2x2 block), and a Qwen2 decoder whose M-RoPE "
        "positions (time, height, width) come from the real image grid (image_grid_thw)."
    )
    image_placeholder: ClassVar[str] = "<|vision_start|><|image_pad|><|vision_end|>"
    vision_paths: ClassVar[LayerPaths] = LayerPaths(
        attn="attn",
        head_proj="proj",
        mlp="mlp",
        neuron_proj="fc2",
        attn_returns_weights=False,
        attn_norm="norm1",
        mlp_norm="norm2",
    )
    # the processor's class is rebuilt from its parts (`_processors.qwen2_vl_from_parts`)
    processor_files: ClassVar[tuple[str, ...]] = (
        "tokenizer.json",
        "tokenizer_config.json",
        "preprocessor_config.json",
    )
    spec_options: ClassVar[frozenset[str]] = frozenset({"mrope_section"})
    processor_class: ClassVar[type[Any]] = _processors.Qwen2VLProcessor
    published: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        # Qwen/Qwen2-VL-2B-Instruct's config.json, its text fields under text_config
        "qwen2-vl-2b": {
            "text_config": {
                "model_type": "qwen2_vl_text",
                "vocab_size": 151936,
                "hidden_size": 1536,
                "intermediate_size": 8960,
                "num_hidden_layers": 28,
                "num_attention_heads": 12,
                "num_key_value_heads": 2,
                "max_position_embeddings": 32768,
                "rms_norm_eps": 1e-6,
                "rope_theta": 1e6,
                "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]},
                "tie_word_embeddings": True,
            },
            "vision_config": {
                "depth": 32,
                "embed_dim": 1280,
                "hidden_size": 1536,
                "mlp_ratio": 4,
                "num_heads": 16,
                "in_chans": 3,
                "patch_size": 14,
                "spatial_merge_size": 2,
                "temporal_patch_size": 2,
            },
            "tie_word_embeddings": True,
        },
    }

    def _vision_shape(self, cfg: Any) -> TowerShape:
        heads = int(cfg.num_heads)
        d_model, d_mlp = self._vision_widths(cfg)
        return TowerShape(
            n_layers=int(cfg.depth),
            n_heads=heads,
            d_model=d_model,
            d_head=d_model // heads,
            d_mlp=d_mlp,
            components=ALL_COMPONENTS,
        )

    @staticmethod
    def _vision_widths(cfg: Any) -> tuple[int, int]:
        """The vision tower's (d_model, d_mlp)."""
        return int(cfg.embed_dim), int(int(cfg.embed_dim) * cfg.mlp_ratio)

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

    def _read_pattern(self, block: Any, site: Site, inputs: VlmInputs) -> Tensor:
        """The vision tower's blocks return no weights and attend within segments of one flat
        sequence: the pattern is recomputed from their fused qkv projection, image by image
        (memory linear in the number of images)."""
        if not self._flat(site):
            return super()._read_pattern(block, site, inputs)
        _, kwargs = block_inputs(block)
        qkv, (cos, sin), bounds = (
            block.qkv.output,
            kwargs["position_embeddings"],
            kwargs["cu_seqlens"],
        )
        images = int(inputs.data["image_grid_thw"].shape[0])
        if qkv.shape[0] % images:
            raise SiteError(
                f"{site}: {qkv.shape[0]} vision tokens do not split over {images} images."
            )
        n, out = qkv.shape[0] // images, []
        for image in range(images):
            rows = slice(image * n, (image + 1) * n)
            inside = (bounds >= image * n) & (bounds <= (image + 1) * n)
            local = flat_pattern(qkv[rows], self._shapes[site.tower], bounds[inside] - image * n,
                                 (cos[rows], sin[rows]))  # fmt: skip
            queries = self._image_order(site, local.permute(1, 0, 2), inputs)  # query head key
            keys = self._image_order(site, queries.permute(2, 1, 0), inputs)  # key head query
            out.append(keys.permute(1, 2, 0))
        return torch.stack(out)

    def _image_order(self, site: Site, flat: Tensor, inputs: VlmInputs) -> Tensor:
        """One image's rows (in the tower's order) in the processor's order: the same here."""
        return flat

    def token_grid(
        self, site: Site, inputs: VlmInputs
    ) -> tuple[Int[Tensor, " token"], tuple[int, int]]:
        """Vision tokens (and the merger's input) are the image's patches in 2x2-merge order:
        the four patches of each merged token in a row, merged tokens in raster order."""
        if (
            not self._flat(site)
            or site.component is Component.RESID_POST
            and (site.tower is Tower.PROJECTOR)
        ):
            return super().token_grid(site, inputs)
        self.validate(site)
        _, height, width = (int(v) for v in inputs.data["image_grid_thw"][0].tolist())
        merge = int(self.config.vision_config.spatial_merge_size)
        block, col, i, j = torch.meshgrid(
            torch.arange(height // merge), torch.arange(width // merge), torch.arange(merge),
            torch.arange(merge), indexing="ij",
        )  # fmt: skip
        index = (block * merge + i) * width + col * merge + j
        return index.flatten(), (height, width)

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

    # ----- the family: building, loading and saving ----------------------------------------------
    @classmethod
    def _tiny_vision(cls, spec: ModelSpec) -> dict[str, Any]:
        return {
            "depth": spec.vision_layers,
            "embed_dim": spec.vision_width,
            "hidden_size": spec.text_width,
            "num_heads": spec.vision_heads,
            "mlp_ratio": spec.vision_mlp // spec.vision_width,  # Qwen2-VL only takes whole ratios
            "patch_size": spec.patch_size // 2,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "in_chans": 3,
        }

    @classmethod
    def build_tiny(cls, spec: ModelSpec, tokenizer: Any) -> tuple[Any, Any]:
        text = text_config(spec, len(tokenizer), f"{cls.family}_text")
        section = mrope_section(spec)
        text["rope_scaling"] = {"type": "mrope", "mrope_section": section}
        values = {"text_config": text, "vision_config": cls._tiny_vision(spec)}
        config = cls.build_config(values, tokenizer)
        # fixed to one resolution (min = max pixels)
        processor = cls._processor(tokenizer, patch=spec.patch_size // 2, pixels=spec.image_size**2)
        return cls.model_class(config), processor

    @classmethod
    def build_config(cls, values: Mapping[str, Any], tokenizer: Any) -> Any:
        specials = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id}
        text = {**values["text_config"], **specials}
        ids = {key: tokenizer.convert_tokens_to_ids(token) for key, token in _TOKEN_IDS.items()}
        config_class = cls.model_class.config_class
        return config_class(
            **{**values, "text_config": text, **ids, **specials},
            pad_token_id=tokenizer.pad_token_id,
        )

    @classmethod
    def build_processor(cls, config: Any, tokenizer: Any) -> Any:
        return cls._processor(tokenizer, patch=int(config.vision_config.patch_size))

    @classmethod
    def _processor(cls, tokenizer: Any, *, patch: int, pixels: int | None = None) -> Any:
        """The family's processor: its image processor's default resolutions, or only `pixels`."""
        size = None if pixels is None else {"shortest_edge": pixels, "longest_edge": pixels}
        images = Qwen2VLImageProcessorPil(
            size=size, patch_size=patch, merge_size=2, temporal_patch_size=2
        )
        return _processors.qwen2_vl_from_parts(
            images, tokenizer, _processors.QWEN2_VL_CHAT_TEMPLATE, cls.processor_class
        )

    @classmethod
    def load_processor(cls, source: str | Path, *, local_only: bool) -> Any:
        """The image processor and tokenizer saved with the checkpoint, assembled (no video part
        where torchvision is missing: see `_processors`)."""
        images = Qwen2VLImageProcessorPil.from_pretrained(source, local_files_only=local_only)
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local_only)
        template = getattr(tokenizer, "chat_template", None) or _processors.QWEN2_VL_CHAT_TEMPLATE
        return _processors.qwen2_vl_from_parts(images, tokenizer, template, cls.processor_class)

    @classmethod
    def save_processor(cls, processor: Any, directory: Path) -> None:
        """Writes the tokenizer and image processor (`load_processor` rebuilds the rest)."""
        processor.tokenizer.save_pretrained(directory)
        processor.image_processor.save_pretrained(directory)
