"""Attribution patching on the vision tower and the projector: estimates equal a plain forward
hook + autograd reference (float64) on every family, and heatmaps lie on the tower's own patch
grid."""

import numpy as np
import pytest
import torch
from PIL import Image

import vrp
from circuits import attribution_patching
from tests.circuits.test_attribution import _pair
from tests.reference import captured, processor_order, reference_path
from vrp import Component, Site, Tower

SITES = [
    Site(tower=Tower.VISION, layer=0, component=Component.RESID_POST),
    Site(tower=Tower.VISION, layer=0, component=Component.MLP_OUT),
    Site(tower=Tower.VISION, layer=1, component=Component.ATTN_OUT),
    Site(tower=Tower.PROJECTOR, layer=0, component=Component.RESID_PRE),
    Site(tower=Tower.PROJECTOR, layer=0, component=Component.RESID_POST),
]


@pytest.fixture(scope="module", params=vrp.models.families())
def vlm64(request):
    # SDPA: transformers' eager attention turns padded float64 rows into NaN
    return vrp.load(f"tiny/{request.param}", dtype=torch.float64, attn_implementation="sdpa")


def _hooked_gradient(vlm, inputs, site: Site) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[no-untyped-def]
    """(raw value, raw gradient of the summed margin) at `site` by a plain forward hook and
    autograd: the hook hands the model a leaf copy that requires a gradient."""
    path, what = reference_path(vlm.family, site)
    module = vlm.hf.get_submodule(path)
    held: list[torch.Tensor] = []

    def leaf(x: torch.Tensor) -> torch.Tensor:
        held.append(x.detach().clone().requires_grad_(True))
        return held[-1]

    def post(_m: object, _a: object, out: object) -> object:
        if isinstance(out, tuple):
            return (leaf(out[0]), *out[1:])
        return leaf(out)  # type: ignore[arg-type]

    # first among the module's hooks, so that transformers' own output recorders see the leaf
    if what == "input":
        handle = module.register_forward_pre_hook(lambda _m, a: (leaf(a[0]), *a[1:]), prepend=True)
    else:
        handle = module.register_forward_hook(post, prepend=True)
    try:
        with torch.enable_grad():
            logits = vlm.hf(**inputs.data).logits[:, -1]
            (grad,) = torch.autograd.grad(vlm.yes_no_margin(logits).sum(), held, allow_unused=True)
    finally:
        handle.remove()
    unread = grad is None  # LLaVA's last vision layer: the projector reads the one before
    return held[0].detach(), torch.zeros_like(held[0]) if unread else grad


def test_vision_estimates_equal_hooks_and_autograd(vlm64) -> None:
    vlm = vlm64
    clean, corrupt = _pair(vlm, 2)
    atp = attribution_patching(vlm, clean, corrupt, SITES, vlm.yes_no_margin)
    for site in SITES:
        value, grad = (processor_order(vlm, corrupt, site, t)
                       for t in _hooked_gradient(vlm, corrupt, site))  # fmt: skip
        delta = captured(vlm, clean, site) - value  # `captured` is in the processor's order
        expected = (delta * grad).sum(dim=-1).reshape(atp.score(site).shape)
        torch.testing.assert_close(atp.score(site), expected.float(), atol=1e-7, rtol=1e-5)
        unread = vlm.family == "llava" and site.tower is Tower.VISION and site.layer == 1
        assert bool(atp.score(site).abs().max() > 0) != unread, site


def test_vision_heatmaps_lie_on_the_patch_grid(vlm64) -> None:
    vlm = vlm64
    clean, corrupt = _pair(vlm, 2)
    atp = attribution_patching(vlm, clean, corrupt, SITES, vlm.yes_no_margin)
    for site in SITES:
        index, (rows, cols) = vlm.adapter.token_grid(site, corrupt)
        grid = atp.image_grid(site, 1)
        assert grid.shape == (rows, cols) and len(index) == atp.score(site).shape[1], site
        on_grid = index >= 0
        assert sorted(index[on_grid].tolist()) == list(range(rows * cols))  # each patch once
        np.testing.assert_allclose(grid.ravel()[index[on_grid]], atp.score(site)[1][on_grid])
    assert int((vlm.adapter.token_grid(SITES[0], corrupt)[0] < 0).sum()) == (
        1 if vlm.family == "llava" else 0
    )  # CLIP's class token is on no patch
    records = atp.to_records()
    assert {r["tower"] for r in records} == {"vision", "projector"}


@pytest.mark.parametrize("family", ["qwen2_vl", "qwen2_5_vl"])
def test_qwen_vision_tokens_map_to_their_pixels(family: str) -> None:
    """A horizontal ramp in red and a vertical one in green: each vision token's patch pixels
    (the processor's own rows) placed by `token_grid` give ramps again."""
    vlm = vrp.load(f"tiny/{family}")
    side = 32
    x, y = np.meshgrid(np.arange(side), np.arange(side))
    pixels = np.stack([x * 8, y * 8, np.zeros_like(x)], axis=-1).astype(np.uint8)
    inputs = vlm.encode([Image.fromarray(pixels)], ["is there a red circle ?"])
    site = Site(tower=Tower.VISION, layer=0, component=Component.RESID_PRE)
    index, (rows, cols) = vlm.adapter.token_grid(site, inputs)
    patches = inputs.data["pixel_values"].reshape(len(index), 3, -1)  # token, channel, pixels
    red, green = np.zeros(rows * cols), np.zeros(rows * cols)
    red[index.numpy()] = patches[:, 0].mean(dim=1).numpy()
    green[index.numpy()] = patches[:, 1].mean(dim=1).numpy()
    assert (np.diff(red.reshape(rows, cols), axis=1) > 0).all()  # red grows to the right
    assert (np.diff(green.reshape(rows, cols), axis=0) > 0).all()  # green grows downwards
