"""One conformance battery, run on every registered family (tiny random instances).

Reads are compared with a plain PyTorch forward-hook reference whose module paths are written here,
independently of the adapters.
"""

from collections.abc import Callable
from typing import Any

import nnsight
import pytest
import torch

import vrp.models as models
from tests.conftest import QUESTIONS, random_images
from tests.reference import (
    FLAT_TOWERS,
    eager_attention,
    flat_vision_patterns,
    processor_order,
    reference_path as _reference_path,
)
from vrp.core import Component, Site, Tower


def _flat_pattern(vlm: models.VLM, site: Site) -> bool:
    """A vision pattern of a flat (Qwen) tower, whose blocks return no weights."""
    return (
        vlm.family in FLAT_TOWERS
        and site.tower is Tower.VISION
        and site.component is Component.ATTN_PATTERN
    )


def _hook_reference(vlm: models.VLM, sites: list[Site], inputs: models.VlmInputs) -> list[Any]:
    """Each site's value from plain forward hooks: patterns from one forward under eager
    attention (its own returned weights), everything else from the model as it runs."""
    flat = flat_vision_patterns(vlm, inputs, [s for s in sites if _flat_pattern(vlm, s)])
    patterns = [s for s in sites if s.component is Component.ATTN_PATTERN and s not in flat]
    others = [s for s in sites if s.component is not Component.ATTN_PATTERN]
    with eager_attention(vlm):
        captured = dict(zip(patterns, _hooked(vlm, patterns, inputs), strict=True))
    captured.update(zip(others, _hooked(vlm, others, inputs), strict=True))
    return [
        flat[s] if s in flat else processor_order(vlm, inputs, s, captured[s].detach().clone())
        for s in sites
    ]


def _hooked(vlm: models.VLM, sites: list[Site], inputs: models.VlmInputs) -> list[torch.Tensor]:
    captured: dict[int, torch.Tensor] = {}
    handles = []
    for index, site in enumerate(sites):
        path, what = _reference_path(vlm.family, site)
        module = vlm.hf.get_submodule(path)

        def hook(_m: Any, args: Any, out: Any, index: int = index, what: str = what) -> None:
            value = {"input": lambda: args[0], "output": lambda: out}.get(what)
            captured[index] = value() if value else out[int(what[-1])]

        handles.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            vlm.hf(**inputs.data)
    finally:
        for handle in handles:
            handle.remove()
    return [captured[i] for i in range(len(sites))]


def _all_sites(vlm: models.VLM) -> list[Site]:
    return [s for tower in Tower for s in vlm.sites(tower)]


def _read_all(vlm: models.VLM, sites: list[Site], inputs: models.VlmInputs) -> list[torch.Tensor]:
    with vlm.nnsight.trace(inputs.data):
        values = nnsight.save([vlm.adapter.read(vlm.nnsight, s, inputs) for s in sites])
    return list(values)


def _expected_shape(vlm: models.VLM, site: Site, inputs: models.VlmInputs) -> tuple[int, ...]:
    shape = vlm.adapter.shape(site.tower)
    batch, seq = inputs.batch_size, inputs.seq_len
    if site.tower is not Tower.LANGUAGE:
        # vision and projector: one row per image; seq = that tower's tokens, checked below
        return ()
    tails = {
        Component.HEAD_OUT: (seq, shape.n_heads, shape.d_head),
        Component.ATTN_PATTERN: (shape.n_heads, seq, seq),
        Component.MLP_NEURONS: (seq, shape.d_mlp),
    }
    return (batch, *tails.get(site.component, (seq, shape.d_model)))


def check_reads_match_hooks(vlm: models.VLM, inputs: models.VlmInputs) -> None:
    sites = _all_sites(vlm)
    reads = _read_all(vlm, sites, inputs)
    refs = _hook_reference(vlm, sites, inputs)
    for site, read, ref in zip(sites, reads, refs, strict=True):
        assert read.numel() == ref.numel(), site
        torch.testing.assert_close(read.reshape(ref.shape), ref, atol=1e-5, rtol=0, msg=str(site))


def check_canonical_shapes(vlm: models.VLM, inputs: models.VlmInputs) -> None:
    sites = _all_sites(vlm)
    for site, read in zip(sites, _read_all(vlm, sites, inputs), strict=True):
        expected = _expected_shape(vlm, site, inputs)
        if expected:
            assert tuple(read.shape) == expected, site
            continue
        shape = vlm.adapter.shape(site.tower)
        assert read.shape[0] == inputs.batch_size, site
        tail = {
            Component.HEAD_OUT: (shape.n_heads, shape.d_head),
            Component.MLP_NEURONS: (shape.d_mlp,),
        }
        if site.component is Component.ATTN_PATTERN:
            assert read.shape[1] == shape.n_heads and read.shape[2] == read.shape[3], site
        elif site.tower is Tower.VISION:
            assert tuple(read.shape[2:]) == tail.get(site.component, (shape.d_model,)), site


def check_write_back_identity(vlm: models.VLM, inputs: models.VlmInputs) -> None:
    clean = vlm.logits(inputs)
    writable = [s for s in _all_sites(vlm) if s.component is not Component.ATTN_PATTERN]
    with vlm.nnsight.trace(inputs.data):
        for site in writable:
            value = vlm.adapter.read(vlm.nnsight, site, inputs)
            vlm.adapter.write(vlm.nnsight, site, inputs, value.clone())
        logits = vlm.nnsight.output.logits.save()
    torch.testing.assert_close(logits, clean, atol=1e-5, rtol=0)


def check_zero_ablation_changes_logits(vlm: models.VLM, inputs: models.VlmInputs) -> None:
    clean = vlm.logits(inputs)
    layers = [Site(layer=i, component=Component.MLP_OUT) for i in range(vlm.adapter.n_layers)]
    layers.append(Site(tower=Tower.VISION, layer=0, component=Component.RESID_POST))
    for site in layers:
        with vlm.nnsight.trace(inputs.data):
            value = vlm.adapter.read(vlm.nnsight, site, inputs)
            vlm.adapter.write(vlm.nnsight, site, inputs, torch.zeros_like(value))
            logits = vlm.nnsight.output.logits.save()
        assert (logits - clean).abs().max() > 1e-4, f"zeroing {site} left the logits unchanged"


def check_image_mask_counts_features(vlm: models.VLM, inputs: models.VlmInputs) -> None:
    site = Site(tower=Tower.PROJECTOR, layer=0, component=Component.RESID_POST)
    (features,) = _read_all(vlm, [site], inputs)
    n_features = features.shape[0] * features.shape[1]
    assert int(inputs.image_mask.sum()) == n_features
    grid_h, grid_w = inputs.grids[0]
    assert inputs.n_image_tokens == grid_h * grid_w == features.shape[1]


def check_padded_batch_equals_single_runs(vlm: models.VLM, inputs: models.VlmInputs) -> None:
    images = random_images(4, seed=1)
    batch = vlm.answer_logits(vlm.encode(images, QUESTIONS))
    assert len({len(q.split()) for q in QUESTIONS}) > 1  # rows really differ in length: padding
    for row, (image, question) in enumerate(zip(images, QUESTIONS, strict=True)):
        single = vlm.answer_logits(vlm.encode([image], [question]))
        torch.testing.assert_close(batch[row], single[0], atol=1e-4, rtol=0)


CHECKS: list[Callable[[models.VLM, models.VlmInputs], None]] = [
    check_canonical_shapes,
    check_reads_match_hooks,
    check_write_back_identity,
    check_zero_ablation_changes_logits,
    check_image_mask_counts_features,
    check_padded_batch_equals_single_runs,
]


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_adapter_conformance(vlm: models.VLM, check: Callable[..., None]) -> None:
    inputs = vlm.encode(random_images(3), QUESTIONS[:3])
    check(vlm, inputs)
