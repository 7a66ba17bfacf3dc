"""`ModelSpec`, the sizes of a small VLM, and the config pieces every family's builder shares.

A spec holds sizes common to all families plus a few family-specific options (`FAMILY_OPTIONS`);
each adapter says which options it accepts (`spec_options`) and checks their values itself, so no
code outside a family's file needs to know which family an option belongs to.
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..core import AdapterError


@dataclass(frozen=True, kw_only=True)
class ModelSpec:
    """Sizes of a small VLM. Defaults give a tiny model that runs in milliseconds.

    Attributes:
      image_size: pixels per side.
      patch_size: the vision patch side (Qwen-VL families use half of it, then merge 2x2).
      vision_mlp: differs from the widths so that transposed axes fail loudly in tests.
      text_head_dim: a family option (Gemma decouples its head width from the model width, as
        Gemma-7B's 16 heads of 256 over 3,072); None gives text_width // text_heads.
      text_rope_theta: the decoder's rotary base; None keeps the family's default (Llama and
        Gemma 1e4, Qwen-VL 1e6).
      mrope_section: a family option (M-RoPE): how many of each head's rotary frequency pairs go
        to (time, height, width), highest frequencies first, summing to head width // 2; None
        splits them 1 : 1.5 : 1.5 like the real models' [16, 24, 24].
      attn_implementation: "eager" or "sdpa".
    """

    image_size: int = 32
    patch_size: int = 8
    vision_layers: int = 2
    vision_width: int = 32
    vision_heads: int = 4
    vision_mlp: int = 64
    text_layers: int = 2
    text_width: int = 32
    text_heads: int = 4
    text_kv_heads: int = 2
    text_mlp: int = 48
    text_head_dim: int | None = None
    text_rope_theta: float | None = None
    mrope_section: tuple[int, int, int] | None = None
    attn_implementation: str = "eager"


FAMILY_OPTIONS = {
    "text_head_dim": "a decoder head width decoupled from text_width // text_heads",
    "mrope_section": "M-RoPE (time, height, width) positions",
}
"""`ModelSpec` fields that only some families accept, with what those families have."""


DEFAULT_WORDS = (
    "is", "there", "a", "an", "the", "in", "image", "red", "blue", "green", "yellow",
    "circle", "square", "triangle", "cross", "how", "many", "are", "left", "of", "right",
    "above", "below", "empty", "one", "two", "three", "four", "zero", "Is", "How",
)  # fmt: skip
"""Vocabulary of tiny test models."""


def check_options(
    family: str, spec: ModelSpec, accepted: frozenset[str], takers: Mapping[str, str]
) -> None:
    """Refuses a family option `family` does not accept, and a bad rotary base.

    Args:
      family: the family being built.
      spec: its sizes.
      accepted: the options this family accepts.
      takers: for the message, per option, the families that accept it (``{option: "A, B"}``,
        rendered by the caller, which knows the registry).
    """
    for option, has in FAMILY_OPTIONS.items():
        value = getattr(spec, option)
        if value is not None and option not in accepted:
            raise AdapterError(
                f"{option}={value!r} for {family}: only families with {has} take it "
                f"({takers.get(option) or 'none registered'}); {family} has none. Leave it None."
            )
    theta = spec.text_rope_theta
    if theta is not None and not (isinstance(theta, int | float) and 1 < theta < math.inf):
        raise AdapterError(
            f"text_rope_theta must be a finite number above 1 (rotary frequencies are "
            f"base ** (-2i / head width)); got {theta!r}. Leave it None for the family's default."
        )


def text_config(spec: ModelSpec, vocab: int, model_type: str) -> dict[str, Any]:
    """The decoder's config values for `spec` (a Llama-like text config of `model_type`)."""
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


def vision_config(spec: ModelSpec, model_type: str) -> dict[str, Any]:
    """A ViT encoder's config values for `spec` (CLIP's and SigLIP's field names)."""
    return {
        "model_type": model_type,
        "hidden_size": spec.vision_width,
        "intermediate_size": spec.vision_mlp,
        "num_hidden_layers": spec.vision_layers,
        "num_attention_heads": spec.vision_heads,
        "image_size": spec.image_size,
        "patch_size": spec.patch_size,
    }


def mrope_section(spec: ModelSpec) -> list[int]:
    """The spec's M-RoPE split, checked, or the default 1 : 1.5 : 1.5 split of the head's pairs.

    Raises:
      AdapterError: the split is not three whole counts >= 0 summing to the head's rotary pairs.
    """
    pairs = spec.text_width // spec.text_heads // 2
    section = spec.mrope_section
    if section is None:
        t = pairs // 4
        h = (pairs - t) // 2
        return [t, h, pairs - t - h]
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
    return list(counts)
