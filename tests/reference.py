"""Plain-PyTorch references: module paths written independently of the adapters, and hook helpers.

Every read and intervention of VRP is checked against these on the tiny models.
"""

from collections.abc import Callable
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
_PROJECTOR = {
    "llava": "model.multi_modal_projector",
    "paligemma": "model.multi_modal_projector",
    "qwen2_vl": "model.visual.merger",
    "qwen2_5_vl": "model.visual.merger",
}
_WINDOWED = {"qwen2_5_vl"}
"""Families whose vision tower runs its flat sequence in window order (Qwen2.5-VL)."""


def reference_path(family: str, site: Site) -> tuple[str, str]:
    """(module path, one of 'input' | 'output' | 'output0' | 'output1') holding `site`."""
    if site.tower is Tower.PROJECTOR:
        return _PROJECTOR[family], "input" if site.component is Component.RESID_PRE else "output"
    if site.tower is Tower.LANGUAGE:
        base, attn, proj, fc2 = _LM.format(i=site.layer), "self_attn", "o_proj", "down_proj"
    else:
        template, attn, proj, fc2 = _VISION[family]
        base = template.format(i=site.layer)
    tuple_attn = not (family in ("qwen2_vl", "qwen2_5_vl") and site.tower is Tower.VISION)
    table = {
        Component.RESID_PRE: (base, "input"),
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
