"""Gradients from a shared prefix: a batch that agrees with another up to a position (same images,
a later question word swapped) runs only from there, on the other's cached keys and values. On
the causal families its values and gradients equal the whole run's at those positions; what it
cannot do is refused."""

from dataclasses import replace

import pytest
import torch

import circuits._attribution as attribution
from circuits import attribution_patching
from tests.conftest import random_images
from vrp import Component, ConfigError, Site, Tower
from vrp.interventions import Zero, run_cached, run_gradients, shared_prefix

CAUSAL = ("llava", "qwen2_vl", "qwen2_5_vl")
CLEAN = ["is there a red circle ?", "is there a blue square ?", "is there a green cross ?"]
SWAPPED = ["is there a red square ?", "is there a blue circle ?", "is there a green circle ?"]
COMPONENTS = (Component.RESID_POST, Component.ATTN_OUT, Component.HEAD_OUT,
              Component.MLP_NEURONS, Component.MLP_OUT)  # fmt: skip


def _pair(vlm):  # type: ignore[no-untyped-def]
    images = random_images(3)
    return vlm.encode(images, CLEAN), vlm.encode(images, SWAPPED)


def _sites(vlm) -> list[Site]:  # type: ignore[no-untyped-def]
    return [Site(layer=i, component=c) for i in range(vlm.adapter.n_layers) for c in COMPONENTS]


def test_the_prefix_is_where_the_question_words_first_differ(tiny_vlms) -> None:
    vlm = tiny_vlms["llava"]
    clean, swapped = _pair(vlm)
    start = shared_prefix(clean, swapped)
    ids_a, ids_b = clean.data["input_ids"], swapped.data["input_ids"]
    assert 0 < start < clean.seq_len and not bool(clean.image_mask[:, start:].any())
    assert torch.equal(ids_a[:, :start], ids_b[:, :start])
    assert bool((ids_a[:, start] != ids_b[:, start]).any())
    other_images = vlm.encode(random_images(3, seed=9), SWAPPED)
    assert shared_prefix(clean, other_images) == 0  # other pixels: nothing is shared
    assert shared_prefix(clean, clean) == 0  # nothing differs: nothing to resume


@pytest.mark.parametrize("family", CAUSAL)
def test_a_run_from_a_prefix_equals_the_whole_run_after_it(tiny_vlms, family: str) -> None:
    vlm = tiny_vlms[family]
    clean, swapped = _pair(vlm)
    sites, start = _sites(vlm), shared_prefix(clean, swapped)
    cached = run_cached(vlm, clean, sites)
    tail = run_gradients(vlm, swapped, sites, vlm.yes_no_margin, prefix=cached.prefix(start))
    whole = run_gradients(vlm, swapped, sites, vlm.yes_no_margin)
    assert tail.start == start and whole.start == 0
    for site in sites:
        assert tail.value(site).shape[1] == swapped.seq_len - start
        torch.testing.assert_close(tail.value(site), whole.value(site)[:, start:],
                                   atol=1e-5, rtol=1e-5)  # fmt: skip
        torch.testing.assert_close(tail.grad(site), whole.grad(site)[:, start:],
                                   atol=1e-5, rtol=1e-4)  # fmt: skip
    torch.testing.assert_close(tail.metric, whole.metric, atol=1e-5, rtol=1e-5)
    # the cached run's values are the clean run's
    plain = run_gradients(vlm, clean, sites, vlm.yes_no_margin)
    for site in sites:
        torch.testing.assert_close(cached.value(site), plain.value(site), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("family", [*CAUSAL, "paligemma"])
def test_attribution_from_a_prefix_equals_the_whole_computation(
    tiny_vlms, family: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Attribution patching of a word-swap pair takes the prefix path on the causal families;
    its scores equal the whole computation's (and are exactly 0 before the first difference)."""
    vlm = tiny_vlms[family]
    clean, swapped = _pair(vlm)
    sites = _sites(vlm)
    taken = _spy_prefix_path(monkeypatch)
    fast = attribution_patching(vlm, clean, swapped, sites, vlm.yes_no_margin)
    assert taken == ([shared_prefix(clean, swapped)] if family in CAUSAL else [])
    assert family not in CAUSAL or taken[0] > 0
    calls: list[int] = []
    monkeypatch.setattr(attribution, "_shared_start", lambda *a: calls.append(1) or 0)
    whole = attribution_patching(vlm, clean, swapped, sites, vlm.yes_no_margin)
    assert calls == [1]
    scale = max(float(whole.score(s).abs().max()) for s in sites)
    assert scale > 1e-4
    for site in sites:
        torch.testing.assert_close(fast.score(site), whole.score(site), atol=1e-6 * scale + 1e-7,
                                   rtol=0)  # fmt: skip
    torch.testing.assert_close(fast.corrupt_metric, whole.corrupt_metric, atol=1e-5, rtol=0)
    torch.testing.assert_close(fast.clean_metric, whole.clean_metric, atol=1e-5, rtol=0)
    if family in CAUSAL:
        start = shared_prefix(clean, swapped)
        assert all(bool((fast.score(s)[:, :start] == 0).all()) for s in sites)


def _spy_prefix_path(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Records the start of every attribution run that took the prefix path."""
    taken: list[int] = []
    real = attribution._from_prefix

    def spy(vlm, clean, corrupt, sites, metric, start, config):  # type: ignore[no-untyped-def]
        taken.append(start)
        return real(vlm, clean, corrupt, sites, metric, start, config)

    monkeypatch.setattr(attribution, "_from_prefix", spy)
    return taken


def test_what_a_prefix_cannot_do_is_refused(tiny_vlms) -> None:
    llava, paligemma = tiny_vlms["llava"], tiny_vlms["paligemma"]
    clean, swapped = _pair(llava)
    site = Site(layer=1, component=Component.RESID_POST)
    prefix = run_cached(llava, clean, [site]).prefix(shared_prefix(clean, swapped))
    margin = llava.yes_no_margin
    other = llava.encode(random_images(3, seed=9), SWAPPED)
    with pytest.raises(ConfigError, match=r"share no prefix with the prefix's run: other "
                                          r"'pixel_values' \(images or masks\)"):  # fmt: skip
        run_gradients(llava, other, [site], margin, prefix=prefix)
    fewer = llava.encode(random_images(2), SWAPPED[:2])
    with pytest.raises(ConfigError, match=r"2 rows of \d+ tokens against 3 rows"):
        run_gradients(llava, fewer, [site], margin, prefix=prefix)
    late = replace(prefix, start=prefix.start + 1)
    with pytest.raises(ConfigError, match=rf"share {prefix.start} leading positions .* not the "
                                          rf"{prefix.start + 1}"):  # fmt: skip
        run_gradients(llava, swapped, [site], margin, prefix=late)
    for bad in (replace(prefix, start=True), replace(prefix, past=None)):
        with pytest.raises(ConfigError, match=r"a Prefix needs"):
            run_gradients(llava, swapped, [site], margin, prefix=bad)
    with pytest.raises(ConfigError, match=r"takes no base nodes"):
        run_gradients(llava, swapped, [site], margin, base=[Zero(site=site)], prefix=prefix)
    vision = Site(tower=Tower.VISION, layer=0, component=Component.RESID_POST)
    with pytest.raises(ConfigError, match=r"are vision or projector sites"):
        run_gradients(llava, swapped, [site, vision], margin, prefix=prefix)
    p_clean, p_swapped = _pair(paligemma)
    p_prefix = run_cached(paligemma, p_clean, [site]).prefix(shared_prefix(p_clean, p_swapped))
    with pytest.raises(ConfigError, match=r"prompt attends bidirectionally"):
        run_gradients(paligemma, p_swapped, [site], paligemma.yes_no_margin, prefix=p_prefix)


@pytest.mark.parametrize("family", ["llava", "qwen2_vl"])
def test_edge_attribution_from_a_prefix_equals_the_whole_computation(
    tiny_vlms, family: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from circuits import edge_attribution

    vlm = tiny_vlms[family]
    clean, swapped = _pair(vlm)
    taken = _spy_prefix_path(monkeypatch)
    fast = edge_attribution(vlm, clean, swapped, vlm.yes_no_margin)
    assert taken == [shared_prefix(clean, swapped)] and taken[0] > 0
    monkeypatch.setattr(attribution, "_shared_start", lambda *a: 0)
    whole = edge_attribution(vlm, clean, swapped, vlm.yes_no_margin)
    known = ~torch.isnan(whole.scores)
    assert bool((torch.isnan(fast.scores) == ~known).all())
    scale = float(whole.scores[known].abs().max())
    assert scale > 1e-4
    torch.testing.assert_close(fast.scores[known], whole.scores[known], atol=1e-6 * scale + 1e-7,
                               rtol=0)  # fmt: skip


@pytest.mark.parametrize("family", CAUSAL)
def test_padded_rows_resume_from_their_prefix_too(tiny_vlms, family: str) -> None:
    """Rows of different lengths (left padding; Qwen's position ids depend on the mask)."""
    vlm = tiny_vlms[family]
    images = random_images(3)
    clean = vlm.encode(images, ["is there a red circle ?", "is there a circle ?",
                                "is there a red circle left of a blue square ?"])  # fmt: skip
    swapped = vlm.encode(images, ["is there a red square ?", "is there a square ?",
                                  "is there a red circle left of a blue cross ?"])  # fmt: skip
    assert bool((clean.attention_mask == 0).any())  # some rows padded
    start = shared_prefix(clean, swapped)
    assert start > 0
    sites = _sites(vlm)
    tail = run_gradients(vlm, swapped, sites, vlm.yes_no_margin,
                         prefix=run_cached(vlm, clean, sites).prefix(start))  # fmt: skip
    whole = run_gradients(vlm, swapped, sites, vlm.yes_no_margin)
    for site in sites:
        torch.testing.assert_close(tail.grad(site), whole.grad(site)[:, start:],
                                   atol=1e-5, rtol=1e-4)  # fmt: skip
    torch.testing.assert_close(tail.metric, whole.metric, atol=1e-5, rtol=1e-5)
