"""Plain-PyTorch references: module paths written independently of the adapters, and hook helpers.

Every read and intervention of VRP is checked against these on the tiny models.
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch

import vrp.models as models
from vrp.core import Component, Site, Tower

_LM = "model.language_model.layers.{i}"
_VISION = {
    "llava": ("model.vision_tower.encoder.layers.{i}", "self_attn", "out_proj", "fc2"),
    "paligemma": ("model.vision_tower.encoder.layers.{i}", "self_attn", "out_proj", "fc2"),
    "qwen2_vl": ("model.visual.blocks.{i}", "attn", "proj", "fc2"),
    "qwen2_5_vl": ("model.visual.blocks.{i}", "attn", "proj", "down_proj"),
}
_NORMS = {
    "llava": ("layer_norm1", "layer_norm2"),
    "paligemma": ("layer_norm1", "layer_norm2"),
    "qwen2_vl": ("norm1", "norm2"),
    "qwen2_5_vl": ("norm1", "norm2"),
}
"""The norms in front of each vision layer's attention and MLP blocks."""
_PROJECTOR = {
    "llava": "model.multi_modal_projector",
    "paligemma": "model.multi_modal_projector",
    "qwen2_vl": "model.visual.merger",
    "qwen2_5_vl": "model.visual.merger",
}
FLAT_TOWERS = {"qwen2_vl", "qwen2_5_vl"}
"""Families whose vision tower runs all images as one flat sequence (blocks return no weights)."""
_WINDOWED = {"qwen2_5_vl"}
"""Families whose vision tower runs its flat sequence in window order (Qwen2.5-VL)."""


def reference_path(family: str, site: Site) -> tuple[str, str]:
    """(module path, one of 'input' | 'output' | 'output0' | 'output1') holding `site`."""
    if site.tower is Tower.PROJECTOR:
        return _PROJECTOR[family], "input" if site.component is Component.RESID_PRE else "output"
    if site.tower is Tower.LANGUAGE:
        base, attn, proj, fc2 = _LM.format(i=site.layer), "self_attn", "o_proj", "down_proj"
        norm1, norm2 = "input_layernorm", "post_attention_layernorm"
    else:
        template, attn, proj, fc2 = _VISION[family]
        base = template.format(i=site.layer)
        norm1, norm2 = _NORMS[family]
    tuple_attn = not (family in ("qwen2_vl", "qwen2_5_vl") and site.tower is Tower.VISION)
    table = {
        Component.RESID_PRE: (base, "input"),
        Component.ATTN_IN: (f"{base}.{norm1}", "input"),
        Component.MLP_IN: (f"{base}.{norm2}", "input"),
        Component.HEAD_OUT: (f"{base}.{attn}.{proj}", "input"),
        Component.ATTN_PATTERN: (f"{base}.{attn}", "output1"),
        Component.ATTN_OUT: (f"{base}.{attn}", "output0" if tuple_attn else "output"),
        Component.MLP_NEURONS: (f"{base}.mlp.{fc2}", "input"),
        Component.MLP_OUT: (f"{base}.mlp", "output"),
        Component.RESID_POST: (base, "output"),
    }
    return table[site.component]


def processor_order(
    vlm: models.VLM, inputs: models.VlmInputs, site: Site, raw: torch.Tensor, *, back: bool = False
) -> torch.Tensor:
    """`raw` (a module's flat vision value) in the processor's order (`back`: from it to the
    module's order). Qwen2.5-VL's tower runs in window order, undone here with transformers' own
    window index, not the adapter's."""
    if vlm.family not in _WINDOWED or site.tower is Tower.LANGUAGE:
        return raw
    from transformers.vision_utils import get_vision_window_index

    vision = vlm.hf.config.vision_config
    merge = int(vision.spatial_merge_size)
    window, _ = get_vision_window_index(
        inputs.data["image_grid_thw"],
        spatial_merge_size=merge,
        window_size=int(vision.window_size),
        patch_size=int(vision.patch_size),
    )
    window = window.to(raw.device)
    merged = site.tower is Tower.PROJECTOR and site.component is Component.RESID_POST
    unit = 1 if merged else merge * merge
    units = raw.reshape(raw.shape[0] // unit, unit, *raw.shape[1:])
    return units[window if back else torch.argsort(window)].reshape(raw.shape)


def flat_vision_patterns(
    vlm: models.VLM, inputs: models.VlmInputs, sites: list[Site]
) -> dict[Site, torch.Tensor]:
    """Canonical vision attention patterns of a flat (Qwen) tower, from the weights transformers'
    own eager attention computes for each segment (image or window), recorded by wrapping the
    modeling module's `eager_attention_forward` for one eager forward."""
    import importlib

    if not sites:
        return {}
    modeling = importlib.import_module(type(vlm.hf).__module__)
    original = modeling.eager_attention_forward
    chunks: dict[int, list[torch.Tensor]] = {}

    def recording(module: Any, *args: Any, **kwargs: Any) -> Any:
        out, weights = original(module, *args, **kwargs)
        chunks.setdefault(id(module), []).append(weights.detach()[0])
        return out, weights

    config = vlm.hf.config.vision_config
    previous = config._attn_implementation
    config._attn_implementation = "eager"
    modeling.eager_attention_forward = recording
    try:
        with torch.no_grad():
            vlm.hf(**inputs.data)
    finally:
        modeling.eager_attention_forward = original
        config._attn_implementation = previous
    images = int(inputs.data["image_grid_thw"].shape[0])
    result = {}
    for site in sites:
        path, _ = reference_path(vlm.family, site)
        segments = chunks[id(vlm.hf.get_submodule(path))]
        heads = segments[0].shape[0]
        full = torch.stack([torch.block_diag(*(s[h] for s in segments)) for h in range(heads)])
        rows = processor_order(vlm, inputs, site, full.permute(1, 0, 2))  # query head key
        both = processor_order(vlm, inputs, site, rows.permute(2, 1, 0))  # key head query
        ordered = both.permute(1, 2, 0)  # head query key, in the processor's order
        n = ordered.shape[1] // images
        result[site] = torch.stack(
            [ordered[:, i * n : (i + 1) * n, i * n : (i + 1) * n] for i in range(images)]
        )
    return result


@contextmanager
def eager_attention(vlm: models.VLM) -> Iterator[None]:
    """The model under transformers' eager attention for the block (patterns are its returned
    weights there), then back to what it ran."""
    previous = vlm.attn_implementation
    vlm.hf.set_attn_implementation("eager")
    try:
        yield
    finally:
        vlm.hf.set_attn_implementation(previous)


Edit = Callable[[torch.Tensor], torch.Tensor]


def hooked_logits(
    vlm: models.VLM, inputs: models.VlmInputs, edits: list[tuple[Site, Edit]]
) -> torch.Tensor:
    """Answer logits of a plain forward in which each (site, edit) replaces the raw module value."""
    handles = []
    for site, plain in edits:
        path, what = reference_path(vlm.family, site)
        edit = _in_processor_order(vlm, inputs, site, plain)
        module = vlm.hf.get_submodule(path)
        if what == "input":
            handles.append(module.register_forward_pre_hook(_pre(edit)))
        else:
            handles.append(module.register_forward_hook(_post(edit, what)))
    try:
        with torch.no_grad():
            return vlm.hf(**inputs.data).logits[:, -1]
    finally:
        for handle in handles:
            handle.remove()


def _in_processor_order(vlm: models.VLM, inputs: models.VlmInputs, site: Site, edit: Edit) -> Edit:
    """`edit` applied to the value in the processor's order (see `processor_order`)."""

    def wrapped(raw: torch.Tensor) -> torch.Tensor:
        ordered = processor_order(vlm, inputs, site, raw)
        return processor_order(vlm, inputs, site, edit(ordered), back=True)

    return wrapped


def _pre(edit: Edit) -> Any:
    def hook(_module: Any, args: tuple) -> tuple:
        return (edit(args[0].clone()), *args[1:])

    return hook


def _post(edit: Edit, what: str) -> Any:
    def hook(_module: Any, _args: Any, out: Any) -> Any:
        if what == "output":
            return edit(out.clone())
        return (edit(out[0].clone()), *out[1:])

    return hook


def captured(vlm: models.VLM, inputs: models.VlmInputs, site: Site) -> torch.Tensor:
    """The raw module value at `site` in a plain forward."""
    store: list[torch.Tensor] = []

    def keep(value: torch.Tensor) -> torch.Tensor:
        store.append(value.clone())
        return value

    hooked_logits(vlm, inputs, [(site, keep)])
    return store[0]
