"""Building VLMs of any registered family offline: tiny ones from a `ModelSpec`, real-size ones
from a published config, directly on a device and in a dtype.

Tiny random instances serve the tests; the model organisms are the same builders at larger sizes,
trained. Each family's builder lives in its adapter (`build_tiny`, `build_config`,
`build_processor`); this module only seeds, places and wraps. Weights are allocated where they go
(a ``torch.device`` context), so a real-size model never passes through the CPU on its way to a GPU.
"""

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch

from ..core import AdapterError, ConfigError
from ._registry import adapter_class, families
from ._spec import DEFAULT_WORDS, ModelSpec
from ._tokenizer import build_word_tokenizer
from ._vlm import VLM


def build_vlm(  # noqa: PLR0913  (each is one documented knob of the build)
    family: str,
    spec: ModelSpec | None = None,
    *,
    words: Iterable[str] = DEFAULT_WORDS,
    seed: int = 0,
    name: str | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> VLM:
    """Builds a randomly initialised VLM of `family` with a local word-level tokenizer.

    Args:
      family: a registered family (`vrp.models.families()`).
      spec: sizes; the tiny defaults when None.
      words: the tokenizer's vocabulary.
      seed: seeds the weights (the global torch RNG is left as it was).
      name: the handle's name; "tiny/<family>" by default.
      device: where the weights are allocated.
      dtype: the weights' floating dtype.

    Raises:
      AdapterError: unknown family, or a spec the family refuses (see its `check_spec`: e.g. a
        `text_head_dim` for a family other than PaliGemma, an `mrope_section` for a family without
        M-RoPE or not splitting its head's rotary pairs, a `text_rope_theta` <= 1).
    """
    if family not in families():
        raise AdapterError(
            f"Cannot build a model of family {family!r}; buildable: {', '.join(families())}. "
            "Pass one of those, or register an adapter with @vrp.models.register."
        )
    adapter = adapter_class(family)
    spec = spec or ModelSpec()
    adapter.check_spec(spec)
    tokenizer = build_word_tokenizer(words)
    with _seeded(seed), _allocating(device, dtype):
        model, processor = adapter.build_tiny(spec, tokenizer)
    return _wrap(model, processor, tokenizer, spec.attn_implementation, name or f"tiny/{family}")


def published_configs() -> dict[str, str]:
    """Names of the published configs `build_published` knows, with their family."""
    return {name: f for f in families() for name in adapter_class(f).published}


def build_published(  # noqa: PLR0913  (each is one documented knob of the build)
    name: str,
    *,
    text_layers: int | None = None,
    vision_layers: int | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.bfloat16,
    seed: int = 0,
    attn_implementation: str = "sdpa",
) -> VLM:
    """Builds a randomly initialised VLM at the real size of a published checkpoint.

    Every width, head count, vocabulary size and position limit is the published config's; only
    the layer counts can be cut (`text_layers`, `vision_layers`) so that tests stay fast at real
    width. The processor is the family's own class with the published image settings, around an
    offline word-level tokenizer whose token ids replace the config's special-token ids (the
    vocabulary keeps its published size).

    Args:
      name: a published config (`published_configs()`), e.g. "llava-1.5-7b".
      text_layers: decoder layers to keep (None: all).
      vision_layers: vision layers to keep (None: all).
      device: where the weights are allocated (no CPU copy for a GPU).
      dtype: the weights' floating dtype.
      seed: seeds the weights (the global torch RNG is left as it was).
      attn_implementation: "sdpa" or "eager".

    Raises:
      ConfigError: an unknown name, or a layer count below 1 or above the published one.
    """
    known = published_configs()
    if name not in known:
        raise ConfigError(
            f"Unknown published config {name!r}. Known: {', '.join(known)}. Pass one of those, or "
            "build_vlm(family, ModelSpec(...)) for other sizes."
        )
    adapter = adapter_class(known[name])
    values = _cut_layers(name, adapter.published[name], text_layers, vision_layers)
    tokenizer = build_word_tokenizer(DEFAULT_WORDS)
    config = adapter.build_config(values, tokenizer)
    processor = adapter.build_processor(config, tokenizer)
    with _seeded(seed), _allocating(device, dtype):
        model = adapter.model_class(config)
    return _wrap(model, processor, tokenizer, attn_implementation, f"published/{name}")


_LAYER_KEYS = ("num_hidden_layers", "depth")
"""How a sub-config counts its layers (ViT encoders and decoders, Qwen-VL vision towers)."""


def _cut_layers(
    name: str, values: Mapping[str, Any], text: int | None, vision: int | None
) -> dict[str, Any]:
    out = dict(values)
    for part, keep in (("text_config", text), ("vision_config", vision)):
        if keep is None:
            continue
        sub = dict(values[part])
        key = next(k for k in _LAYER_KEYS if k in sub)
        if isinstance(keep, bool) or not isinstance(keep, int) or not 1 <= keep <= sub[key]:
            raise ConfigError(
                f"{part.split('_')[0]}_layers must be a whole number in 1..{sub[key]} ({name} has "
                f"{sub[key]}); got {keep!r}. Pass fewer layers, or None for all of them."
            )
        out[part] = {**sub, key: keep}
    return out


@contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Seeds torch's generators for the block and restores them afterwards (every CUDA device's
    too: weights allocated on a GPU draw from its generator)."""
    cuda = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(seed)
        yield


@contextmanager
def _allocating(device: str | torch.device, dtype: torch.dtype) -> Iterator[None]:
    """Allocates new parameters on `device` in `dtype` for the block."""
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ConfigError(
            f"dtype must be a floating torch dtype; got {dtype!r}. Pass e.g. torch.bfloat16."
        )
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            yield
    finally:
        torch.set_default_dtype(previous)


def _wrap(model: Any, processor: Any, tokenizer: Any, attn: str, name: str) -> VLM:
    model.set_attn_implementation(attn)
    gen = model.generation_config
    gen.pad_token_id = tokenizer.pad_token_id
    gen.eos_token_id = tokenizer.eos_token_id
    gen.bos_token_id = tokenizer.bos_token_id
    adapter = adapter_class(str(model.config.model_type))(model.config)
    return VLM(model=model.eval(), processor=processor, adapter=adapter, name=name)
