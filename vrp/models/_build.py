"""Building small VLMs of the three real classes from a size spec, fully offline.

Tiny random instances serve the tests; the model organisms are the same builders at larger sizes,
trained. Each builder keeps the family's defining architecture: LLaVA's CLIP tower + 2-layer MLP
projector + causal Llama; PaliGemma's SigLIP + linear projector + Gemma with a bidirectional prefix;
Qwen2-VL's ViT with 2-D RoPE + 2x2 merger + M-RoPE Qwen2 decoder.
"""

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from transformers import (
    LlavaConfig,
    LlavaForConditionalGeneration,
    PaliGemmaConfig,
    PaliGemmaForConditionalGeneration,
    Qwen2VLConfig,
    Qwen2VLForConditionalGeneration,
)

from ..core import AdapterError
from . import _processors
from ._registry import adapter_for_config
from ._tokenizer import build_word_tokenizer
from ._vlm import VLM


@dataclass(frozen=True, kw_only=True)
class ModelSpec:
    """Sizes of a small VLM. Defaults give a tiny model that runs in milliseconds."""

    image_size: int = 32  # pixels per side
    patch_size: int = (
        8  # LLaVA / PaliGemma patch side; Qwen2-VL uses patch_size // 2 (then merges 2x2)
    )
    vision_layers: int = 2
    vision_width: int = 32
    vision_heads: int = 4
    vision_mlp: int = 64  # differs from the widths so that transposed axes fail loudly in tests
    text_layers: int = 2
    text_width: int = 32
    text_heads: int = 4
    text_kv_heads: int = 2
    text_mlp: int = 48
    text_head_dim: int | None = None  # PaliGemma only: Gemma's head width, decoupled from the model
    # width as in Gemma-7B (16 heads of 256 over 3,072); None gives text_width // text_heads
    text_rope_theta: float | None = None  # the decoder's rotary base; None keeps the family's
    # default (Llama and Gemma 1e4, Qwen2-VL 1e6)
    mrope_section: tuple[int, int, int] | None = None  # Qwen2-VL only: how many of each head's
    # rotary frequency pairs go to (time, height, width), highest frequencies first, summing to
    # head width // 2; None splits them 1 : 1.5 : 1.5 like the real model's [16, 24, 24]
    attn_implementation: str = "eager"


DEFAULT_WORDS = (
    "is", "there", "a", "an", "the", "in", "image", "red", "blue", "green", "yellow",
    "circle", "square", "triangle", "cross", "how", "many", "are", "left", "of", "right",
    "above", "below", "empty", "one", "two", "three", "four", "zero", "Is", "How",
)  # fmt: skip
"""Vocabulary of tiny test models."""


def _text_config(spec: ModelSpec, vocab: int, model_type: str) -> dict[str, Any]:
    theta = {} if spec.text_rope_theta is None else {"rope_theta": spec.text_rope_theta}
    return theta | {
        "model_type": model_type,
        "vocab_size": vocab,
        "hidden_size": spec.text_width,
        "intermediate_size": spec.text_mlp,
        "num_hidden_layers": spec.text_layers,
        "num_attention_heads": spec.text_heads,
        "num_key_value_heads": spec.text_kv_heads,
        "max_position_embeddings": 512,
    }


def _vision_config(spec: ModelSpec, model_type: str) -> dict[str, Any]:
    return {
        "model_type": model_type,
        "hidden_size": spec.vision_width,
        "intermediate_size": spec.vision_mlp,
        "num_hidden_layers": spec.vision_layers,
        "num_attention_heads": spec.vision_heads,
        "image_size": spec.image_size,
        "patch_size": spec.patch_size,
    }


def _llava(spec: ModelSpec, tokenizer: Any) -> tuple[Any, Any]:
    processor = _processors.llava_processor(
        tokenizer, image_size=spec.image_size, patch_size=spec.patch_size
    )
    config = LlavaConfig(
        text_config=_text_config(spec, len(tokenizer), "llama"),
        vision_config=_vision_config(spec, "clip_vision_model"),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
        projector_hidden_act="gelu",
    )
    return LlavaForConditionalGeneration(config), processor


def _paligemma(spec: ModelSpec, tokenizer: Any) -> tuple[Any, Any]:
    processor = _processors.paligemma_processor(
        tokenizer, image_size=spec.image_size, patch_size=spec.patch_size
    )  # adds PaliGemma's <loc>/<seg> tokens: size the vocabulary after it
    text = _text_config(spec, len(tokenizer), "gemma")
    # Gemma's multi-query attention: one key-value head shared by every query head
    text.update(
        num_key_value_heads=1,
        head_dim=spec.text_head_dim
        if spec.text_head_dim is not None
        else spec.text_width // spec.text_heads,
    )
    config = PaliGemmaConfig(
        text_config=text,
        vision_config=_vision_config(spec, "siglip_vision_model"),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        projection_dim=spec.text_width,
    )
    config.vision_config.projection_dim = spec.text_width  # type: ignore[union-attr]
    return PaliGemmaForConditionalGeneration(config), processor


def _mrope_section(head_dim: int) -> list[int]:
    half = head_dim // 2  # M-RoPE splits the rotary half of each head into (time, height, width)
    t = half // 4
    h = (half - t) // 2
    return [t, h, half - t - h]


def _qwen2_vl(spec: ModelSpec, tokenizer: Any) -> tuple[Any, Any]:
    patch = spec.patch_size // 2
    processor = _processors.qwen2_vl_processor(
        tokenizer, image_size=spec.image_size, patch_size=patch
    )
    text = _text_config(spec, len(tokenizer), "qwen2_vl_text")
    text.update(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    section = spec.mrope_section or _mrope_section(spec.text_width // spec.text_heads)
    text["rope_scaling"] = {"type": "mrope", "mrope_section": list(section)}
    vision = {
        "depth": spec.vision_layers,
        "embed_dim": spec.vision_width,
        "hidden_size": spec.text_width,
        "num_heads": spec.vision_heads,
        "mlp_ratio": spec.vision_mlp // spec.vision_width,  # Qwen2-VL only takes whole ratios
        "patch_size": patch,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
        "in_chans": 3,
    }
    ids = tokenizer.convert_tokens_to_ids
    config = Qwen2VLConfig(  # type: ignore[call-arg]  # token ids are generic config fields
        text_config=text,
        vision_config=vision,
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return Qwen2VLForConditionalGeneration(config), processor


_BUILDERS: dict[str, Callable[[ModelSpec, Any], tuple[Any, Any]]] = {
    "llava": _llava,
    "paligemma": _paligemma,
    "qwen2_vl": _qwen2_vl,
}


def build_vlm(
    family: str,
    spec: ModelSpec | None = None,
    *,
    words: Iterable[str] = DEFAULT_WORDS,
    seed: int = 0,
    name: str | None = None,
) -> VLM:
    """Builds a randomly initialised VLM of `family` with a local word-level tokenizer.

    Args:
      family: "llava", "paligemma" or "qwen2_vl".
      spec: sizes; the tiny defaults when None.
      words: the tokenizer's vocabulary.
      seed: seeds the weights (the global torch RNG is left as it was).
      name: the handle's name; "tiny/<family>" by default.

    Raises:
      AdapterError: unknown family, a `text_head_dim` that is not positive or is set for a family
        other than PaliGemma, a `text_rope_theta` <= 1, or an `mrope_section` set for a family other
        than Qwen2-VL or not splitting its head's rotary pairs.
    """
    if family not in _BUILDERS:
        raise AdapterError(
            f"Cannot build a model of family {family!r}; buildable: {', '.join(_BUILDERS)}."
        )
    spec = spec or ModelSpec()
    if spec.text_head_dim is not None and (family != "paligemma" or spec.text_head_dim < 1):
        raise AdapterError(
            f"text_head_dim={spec.text_head_dim} for {family}: only PaliGemma (Gemma) decouples "
            "its head width from text_width // text_heads, and it must be >= 1. Leave it None."
        )
    _check_rope(family, spec)
    tokenizer = build_word_tokenizer(words)
    with torch.random.fork_rng(devices=[]):
        torch.random.default_generator.manual_seed(seed)  # the CPU only: weights are built there
        model, processor = _BUILDERS[family](spec, tokenizer)
    model.set_attn_implementation(spec.attn_implementation)
    _tie_generation_ids(model, tokenizer)
    adapter = adapter_for_config(model.config)
    return VLM(
        model=model.eval(), processor=processor, adapter=adapter, name=name or f"tiny/{family}"
    )


def _check_rope(family: str, spec: ModelSpec) -> None:
    theta = spec.text_rope_theta
    if theta is not None and not (isinstance(theta, int | float) and 1 < theta < math.inf):
        raise AdapterError(
            f"text_rope_theta must be a finite number above 1 (rotary frequencies are "
            f"base ** (-2i / head width)); got {theta!r}. Leave it None for the family's default."
        )
    section = spec.mrope_section
    if section is None:
        return
    if family != "qwen2_vl":
        raise AdapterError(
            f"mrope_section={section!r} for {family}: only Qwen2-VL has M-RoPE (time, height, "
            "width) positions. Leave it None."
        )
    pairs = spec.text_width // spec.text_heads // 2
    counts = tuple(section)
    if (
        len(counts) != 3
        or not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts)
        or sum(counts) != pairs
    ):
        raise AdapterError(
            f"mrope_section must be three whole counts >= 0 (time, height, width) summing to the "
            f"head's {pairs} rotary frequency pairs (head width // 2); got {section!r}. Leave it "
            "None for the 1 : 1.5 : 1.5 split."
        )


def _tie_generation_ids(model: Any, tokenizer: Any) -> None:
    gen = model.generation_config
    gen.pad_token_id = tokenizer.pad_token_id
    gen.eos_token_id = tokenizer.eos_token_id
    gen.bos_token_id = tokenizer.bos_token_id
