"""Sites, position selectors and selection: plain tensor code, checked without a model."""

import pytest
import torch
from hypothesis import given, settings, strategies as st

from vrp.core import (
    AllTokens,
    Component,
    ImageTokens,
    Indices,
    LastToken,
    ShapeError,
    Site,
    SiteError,
    TextTokens,
    Tower,
    merge,
    merge_into,
    positions_from_dict,
    select,
    selection_shape,
    sort_sites,
)

IMAGE = torch.tensor([[0, 0, 1, 1, 0, 0], [0, 1, 1, 0, 0, 0]], dtype=torch.bool)
ATTN = torch.tensor([[1, 1, 1, 1, 1, 1], [0, 1, 1, 1, 1, 1]])  # row 1 left-padded


def test_site_json_round_trip() -> None:
    site = Site(layer=3, component=Component.HEAD_OUT, heads=[1, 2], positions=Indices((0, -1)))
    assert site.heads == (1, 2)
    assert Site.from_dict(site.to_dict()) == site
    assert str(site) == "[language.L3.head_out heads=[1, 2] positions=indices[0, -1]]"


def test_site_from_bad_dict() -> None:
    with pytest.raises(SiteError, match=r"Cannot read a site.*Expected keys tower, layer"):
        Site.from_dict({"tower": "audio", "layer": 0, "component": "resid_post"})
    with pytest.raises(SiteError, match=r"Unknown position selector kind 'middle'"):
        positions_from_dict({"kind": "middle"})


def test_forward_order() -> None:
    sites = [
        Site(layer=1, component=Component.RESID_PRE),
        Site(layer=0, component=Component.RESID_POST),
        Site(layer=0, component=Component.MLP_NEURONS),
        Site(tower=Tower.VISION, layer=5, component=Component.MLP_OUT),
        Site(tower=Tower.PROJECTOR, layer=0, component=Component.RESID_POST),
        Site(layer=0, component=Component.HEAD_OUT),
    ]
    names = [str(s) for s in sort_sites(sites)]
    assert names == [
        "[vision.L5.mlp_out]",
        "[projector.L0.resid_post]",
        "[language.L0.head_out]",
        "[language.L0.mlp_neurons]",
        "[language.L0.resid_post]",
        "[language.L1.resid_pre]",
    ]


def test_bad_indices() -> None:
    with pytest.raises(SiteError, match=r"duplicates"):
        Site(layer=0, component=Component.HEAD_OUT, heads=(1, 1))
    with pytest.raises(SiteError, match=r"non-empty sequence of ints"):
        Site(layer=0, component=Component.HEAD_OUT, heads=())


def test_position_selectors() -> None:
    assert AllTokens().resolve(IMAGE, ATTN).all()  # padding included: rows keep one seq axis
    assert ImageTokens().resolve(IMAGE, ATTN).tolist() == IMAGE.tolist()
    assert TextTokens().resolve(IMAGE, ATTN)[1].tolist() == [False, False, False, True, True, True]
    assert LastToken().resolve(IMAGE, ATTN)[:, -1].all()
    # index 0 is each row's first real token, wherever padding put it
    first = Indices((0,)).resolve(IMAGE, ATTN)
    assert first[0, 0] and first[1, 1] and first.sum() == 2
    with pytest.raises(SiteError, match=r"Position 5 is outside row 1, which has 5 tokens"):
        Indices((5,)).resolve(IMAGE, ATTN)


def test_select_ragged_positions_is_a_clear_error() -> None:
    site = Site(layer=0, component=Component.RESID_POST, positions=TextTokens())
    value = torch.randn(2, 6, 4)
    with pytest.raises(ShapeError, match=r"differ in number between rows \(\[4, 3\]\)"):
        select(site, value, site.positions.resolve(IMAGE, ATTN))


def test_merge_shape_error() -> None:
    site = Site(layer=0, component=Component.RESID_POST, positions=LastToken())
    value = torch.randn(2, 6, 4)
    with pytest.raises(ShapeError, match=r"selection's shape \(2, 1, 4\), got \(2, 2, 4\)"):
        merge(site, value, torch.zeros(2, 2, 4), site.positions.resolve(IMAGE, ATTN))


_COMPONENTS = {
    Component.HEAD_OUT: (2, 6, 3, 5),
    Component.ATTN_PATTERN: (2, 3, 6, 6),
    Component.MLP_NEURONS: (2, 6, 7),
    Component.RESID_POST: (2, 6, 4),
}


@settings(max_examples=60, deadline=None)
@given(
    component=st.sampled_from(list(_COMPONENTS)),
    units=st.lists(st.integers(0, 2), min_size=1, max_size=3, unique=True) | st.none(),
    positions=st.sampled_from([AllTokens(), ImageTokens(), LastToken(), Indices((-1, -2))]),
)
def test_merge_writes_exactly_the_selection(component, units, positions) -> None:
    kwargs = {}
    if units is not None and component in (Component.HEAD_OUT, Component.ATTN_PATTERN):
        kwargs["heads"] = tuple(units)
    if units is not None and component is Component.MLP_NEURONS:
        kwargs["neurons"] = tuple(units)
    site = Site(layer=0, component=component, positions=positions, **kwargs)
    full = torch.randn(_COMPONENTS[component])
    mask = positions.resolve(IMAGE, torch.ones(2, 6, dtype=torch.long))
    part = select(site, full, mask)
    merged = merge(site, full, part + 100.0, mask)
    # the selection moved by exactly 100, everything else is untouched
    torch.testing.assert_close(select(site, merged, mask), part + 100.0)
    assert int((merged != full).sum()) == part.numel()
    assert torch.equal(merge(site, full, part, mask), full)
    assert selection_shape(site, full, mask) == tuple(part.shape)
    # in place, into a view of some rows of a larger tensor (as the executor writes one run)
    stacked = torch.cat([full, full])
    before = full.clone()
    merge_into(site, stacked[2:], part + 100.0, mask)
    assert torch.equal(stacked[2:], merged) and torch.equal(stacked[:2], full)
    assert torch.equal(full, before)  # merge copied; the input is untouched


def test_indices_refuse_repeated_positions() -> None:
    with pytest.raises(SiteError, match=r"repeated positions"):
        Indices((1, 1))
    with pytest.raises(SiteError, match=r"name one position twice in row 0"):
        Indices((0, -6)).resolve(IMAGE, ATTN)
    # written order does not matter: selection follows the sequence
    assert (
        Indices((3, 1)).resolve(IMAGE, ATTN).tolist()
        == Indices((1, 3)).resolve(IMAGE, ATTN).tolist()
    )


def test_cached_resolution_follows_the_masks_it_was_given() -> None:
    """`resolve_cached` equals `resolve`; an in-place edit of a mask, or other mask tensors of the
    same values, resolve afresh."""
    image, attention = IMAGE.clone(), ATTN.clone()
    for positions in (AllTokens(), ImageTokens(), LastToken(), Indices((-1, 0))):
        first = positions.resolve_cached(image, attention)
        assert torch.equal(first, positions.resolve(image, attention))
        assert positions.resolve_cached(image, attention) is first  # remembered
    before = LastToken().resolve_cached(image, attention)
    attention[0, -1] = 0  # in place: the last real token of row 0 moves one left
    after = LastToken().resolve_cached(image, attention)
    assert after is not before and torch.equal(after, LastToken().resolve(image, attention))
    copy = attention.clone()
    assert LastToken().resolve_cached(image, copy) is not after  # other tensors: resolved again


def test_masks_made_in_inference_mode_resolve_too() -> None:
    with torch.inference_mode():
        image, attention = IMAGE.clone(), ATTN.clone()
    mask = Indices((-1,)).resolve_cached(image, attention)
    assert torch.equal(mask, Indices((-1,)).resolve(IMAGE, ATTN))
