"""`run_gradients` against plain PyTorch: hooks that turn each site's raw module value into a leaf
and backpropagate the same metric, on every family and every language component."""

from typing import Any

import pytest
import torch

from tests.conftest import QUESTIONS, random_images
from tests.reference import reference_path
from vrp import Component, ConfigError, LastToken, Site, SiteError, Tower
from vrp.interventions import ExecutionConfig, run_gradients


@pytest.fixture
def samples_for():
    def encode(vlm):
        return vlm.encode(random_images(3), QUESTIONS[:3])

    return encode


COMPONENTS = (
    Component.RESID_PRE,
    Component.HEAD_OUT,
    Component.ATTN_OUT,
    Component.MLP_NEURONS,
    Component.MLP_OUT,
    Component.RESID_POST,
)


def _hooked_grad(vlm, inputs, site: Site) -> torch.Tensor:
    """d(sum of the margin)/d(raw value at `site`), from a plain forward with one leaf."""
    path, what = reference_path(vlm.family, site)
    module = vlm.hf.get_submodule(path)
    leaf: dict[str, torch.Tensor] = {}

    def swap(value: torch.Tensor) -> torch.Tensor:
        leaf["x"] = value.detach().requires_grad_(True)
        return leaf["x"]

    if what == "input":
        handle = module.register_forward_pre_hook(lambda _m, args: (swap(args[0]), *args[1:]))
    else:

        def post(_m: Any, _a: Any, out: Any) -> Any:
            return swap(out) if what == "output" else (swap(out[0]), *out[1:])

        handle = module.register_forward_hook(post)
    try:
        with torch.enable_grad():
            logits = vlm.hf(**inputs.data).logits[:, -1]
            vlm.yes_no_margin(logits).sum().backward()
    finally:
        handle.remove()
        vlm.hf.zero_grad(set_to_none=True)
    grad = leaf["x"].grad
    if site.component is Component.HEAD_OUT:
        shape = vlm.adapter.shape(Tower.LANGUAGE)
        grad = grad.reshape(*grad.shape[:-1], shape.n_heads, shape.d_head)
    return grad


def test_gradients_equal_plain_pytorch(vlm, samples_for) -> None:
    inputs = samples_for(vlm)
    last = vlm.adapter.n_layers - 1
    sites = [Site(layer=layer, component=c) for layer in (last, 0) for c in COMPONENTS]
    result = run_gradients(vlm, inputs, sites, vlm.yes_no_margin)
    assert result.sites == tuple(sites)  # returned in the order asked, whatever the forward order
    for site in sites:
        expected = _hooked_grad(vlm, inputs, site)
        torch.testing.assert_close(result.grad(site), expected, atol=1e-5, rtol=1e-4)
        assert result.value(site).shape == expected.shape
    torch.testing.assert_close(result.metric, vlm.yes_no_margin(vlm.answer_logits(inputs)))
    assert all(p.grad is None for p in vlm.hf.parameters())  # no weight gradient left behind
    assert all(p.requires_grad for p in vlm.hf.parameters())  # the flags are restored


def test_a_rows_gradient_is_its_own_metrics(vlm, samples_for) -> None:
    inputs = samples_for(vlm)
    site = Site(layer=0, component=Component.RESID_POST)
    whole = run_gradients(vlm, inputs, [site], vlm.yes_no_margin).grads[0]
    alone = run_gradients(vlm, inputs.rows([1]), [site], vlm.yes_no_margin).grads[0]
    real = inputs.rows([1]).attention_mask.shape[1]
    torch.testing.assert_close(whole[1, -real:], alone[0], atol=1e-5, rtol=1e-4)


def test_bad_sites(tiny_vlms, samples_for) -> None:
    vlm = tiny_vlms["llava"]
    inputs = samples_for(vlm)
    margin = vlm.yes_no_margin
    with pytest.raises(ConfigError, match="at least one site"):
        run_gradients(vlm, inputs, [], margin)
    with pytest.raises(ConfigError, match="without heads, neurons or positions"):
        run_gradients(vlm, inputs, [Site(layer=0, component=Component.MLP_OUT,
                                         positions=LastToken())], margin)  # fmt: skip
    with pytest.raises(ConfigError, match="attention patterns are read-only"):
        run_gradients(vlm, inputs, [Site(layer=0, component=Component.ATTN_PATTERN)], margin)
    with pytest.raises(ConfigError, match="listed twice"):
        run_gradients(vlm, inputs, [Site(layer=0, component=Component.MLP_OUT)] * 2, margin)
    with pytest.raises(ConfigError, match="runs locally only; got backend 'serialise'"):
        run_gradients(vlm, inputs, [Site(layer=0, component=Component.MLP_OUT)], margin,
                      ExecutionConfig(backend="serialise"))  # fmt: skip
    last_vision = vlm.adapter.shape(Tower.VISION).n_layers - 1  # LLaVA reads the one before
    unread = Site(tower=Tower.VISION, layer=last_vision, component=Component.RESID_POST)
    for sites in ([unread], [Site(tower=Tower.VISION, layer=0, component=Component.MLP_OUT),
                             unread]):  # fmt: skip
        got = run_gradients(vlm, inputs, sites, margin)
        assert not got.grads[-1].any()  # nothing reads it: patching it changes nothing either
    language = Site(layer=0, component=Component.RESID_POST)  # after the unread site
    alone = run_gradients(vlm, inputs, [language], margin).grads[0]
    after = run_gradients(vlm, inputs, [unread, language], margin).grads[1]
    torch.testing.assert_close(after, alone, atol=1e-6, rtol=0)
    assert alone.abs().max() > 0
    with pytest.raises(SiteError):
        run_gradients(vlm, inputs, [Site(layer=99, component=Component.MLP_OUT)], margin)


def test_gradients_of_a_model_variant_equal_plain_pytorch(vlm, samples_for) -> None:
    """`base` nodes define the variant differentiated: a zeroed MLP output at layer 0 (applied
    with a plain hook in the reference) changes every later gradient."""
    from vrp.interventions import Zero

    inputs = samples_for(vlm)
    zeroed = Site(layer=0, component=Component.MLP_OUT)
    site = Site(layer=vlm.adapter.n_layers - 1, component=Component.RESID_PRE)
    mlp = vlm.hf.get_submodule(reference_path(vlm.family, zeroed)[0])
    handle = mlp.register_forward_hook(lambda _m, _a, out: torch.zeros_like(out))
    try:
        expected = _hooked_grad(vlm, inputs, site)
    finally:
        handle.remove()
    got = run_gradients(vlm, inputs, [site], vlm.yes_no_margin, base=[Zero(site=zeroed)])
    torch.testing.assert_close(got.grads[0], expected, atol=1e-5, rtol=1e-4)
    plain = run_gradients(vlm, inputs, [site], vlm.yes_no_margin)
    assert not torch.allclose(plain.grads[0], expected)  # the variant matters
