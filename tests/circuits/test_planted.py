"""Localisation and recovery on planted models whose structure is known by construction.

The LLaVA organism with attention knockouts as the model variant (`patch_sweep(base=...)`):

- late bottleneck: no text token may attend to the image at any layer but the last, so image
  information can reach the answer only through the last layer's attention. Patching the
  attention output at the answer position of an image-noise pair restores nothing before the
  last layer, by construction, and `localise` must call it a late bottleneck, with intervals.
- planted heads: at the last layer only heads 0 and 2 may read the image (and no head before),
  so head patching must put exactly those two heads first.
"""

import numpy as np
import pytest
import torch

from circuits import attribution_patching, corrupt_pairs, localise, patch_sweep
from vrp import Component, ImageTokens, LastToken, Site, TextTokens, Tower
from vrp.interventions import AttentionKnockout, Graph, run_graph
from vrp.organisms import evaluation_set


@pytest.fixture(scope="module")
def noisy(load_model):
    vlm = load_model("organism/llava")
    data = evaluation_set(n_per_split=20, n_counting=0, n_spatial=0, seed=5)
    pairs = corrupt_pairs([data[i] for i in range(len(data))], kind="noise", seed=0,
                          noise_std=128.0)  # fmt: skip
    clean = vlm.encode([p.clean.image for p in pairs], [p.clean.question for p in pairs])
    corrupt = vlm.encode([p.corrupt.image for p in pairs], [p.corrupt.question for p in pairs])
    return vlm, clean, corrupt


def _blocked(layers, heads=None) -> list[AttentionKnockout]:
    return [AttentionKnockout(layer=layer, heads=heads, queries=TextTokens(), keys=ImageTokens())
            for layer in layers]  # fmt: skip


def _oriented(result, min_gap: float = 0.5) -> np.ndarray:
    """Per pair (with a clean-corrupt gap of at least `min_gap`) and cell: restored margin
    oriented to the clean answer, in units of the mean gap."""
    gap = result.clean_per_row - result.corrupt_per_row
    keep = gap.abs() >= min_gap
    shift = torch.sign(gap)[None, :] * (result.per_row - result.corrupt_per_row[None, :])
    return (shift[:, keep].T / gap.abs()[keep].mean()).numpy()


def test_a_planted_late_bottleneck_is_found(noisy) -> None:
    vlm, clean, corrupt = noisy
    last = vlm.adapter.n_layers - 1
    base = _blocked(range(last))
    sites = [Site(layer=layer, component=Component.ATTN_OUT, positions=LastToken())
             for layer in range(last + 1)]  # fmt: skip
    result = patch_sweep(vlm, clean, corrupt, sites, vlm.yes_no_margin, base=base)
    plain = run_graph(vlm, Graph(nodes=tuple(base)), clean).answer_logits["main"]
    torch.testing.assert_close(result.clean_per_row, vlm.yes_no_margin(plain))  # base applied
    profile = _oriented(result)
    assert len(profile) >= 5
    np.testing.assert_allclose(profile[:, :last], 0.0, atol=1e-5)  # nothing before the last layer
    where = localise(profile, seed=0)
    assert where.verdict == "late bottleneck"
    assert where.concentration_ci[0] >= 0.5 and where.late_share_ci[0] > 0.5


def test_planted_heads_are_recovered(noisy) -> None:
    vlm, clean, corrupt = noisy
    last, n_heads = vlm.adapter.n_layers - 1, vlm.adapter.shape(Tower.LANGUAGE).n_heads
    planted = {(last, 0), (last, 2)}
    others = tuple(h for h in range(n_heads) if (last, h) not in planted)
    base = [*_blocked(range(last)), *_blocked([last], heads=others)]
    sites = [Site(layer=layer, component=Component.HEAD_OUT, heads=(h,), positions=LastToken())
             for layer in range(last + 1) for h in range(n_heads)]  # fmt: skip
    result = patch_sweep(vlm, clean, corrupt, sites, vlm.yes_no_margin, base=base)
    scores = np.abs(_oriented(result, min_gap=0.0).mean(axis=0))  # pooled over every pair
    top = {(sites[i].layer, sites[i].heads[0]) for i in np.argsort(-scores)[: len(planted)]}
    assert top == planted  # recovered: 100% (the bar is 80%)
    unplanted = [i for i, s in enumerate(sites) if (s.layer, s.heads[0]) not in planted]
    assert scores[unplanted].max() < 0.01
    # attribution patching on the same variant finds them too, from one backward pass
    whole = [Site(layer=layer, component=Component.HEAD_OUT) for layer in range(last + 1)]
    atp = attribution_patching(vlm, clean, corrupt, whole, vlm.yes_no_margin, base=base)
    gap = atp.clean_metric - atp.corrupt_metric
    per_head = torch.stack([(torch.sign(gap)[:, None] * atp.score(s)[:, -1]).mean(dim=0)
                            for s in whole])  # layer x head, answer position  # fmt: skip
    order = torch.argsort(per_head.abs().flatten(), descending=True)[: len(planted)]
    assert {divmod(int(i), n_heads) for i in order} == planted


def test_base_nodes_cannot_read_another_run(noisy) -> None:
    from vrp import ConfigError
    from vrp.interventions import Patch

    vlm, clean, corrupt = noisy
    site = Site(layer=0, component=Component.MLP_OUT)
    with pytest.raises(ConfigError, match="base nodes define the model variant .* cannot read"):
        patch_sweep(vlm, clean, corrupt, [site], vlm.yes_no_margin,
                    base=[Patch(site=site, source="clean")])  # fmt: skip
