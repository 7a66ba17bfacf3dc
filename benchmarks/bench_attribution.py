"""Attribution patching on the organisms: its cost in forward-equivalents and its agreement with
exact patching, measured side by side in one run.

Run: ``python benchmarks/bench_attribution.py [--pairs 16] [--repeats 3] [--threads 2]
[--ig-steps 8]``

For each organism, object-swap pairs (`circuits.usable_pairs`) of one token layout:

- cost: the median time of `attribution_patching` over every position of every layer's
  residual, attention and MLP outputs, divided by the median time of one plain forward pass of
  the same rows (a forward-equivalent); and the exact layer x position residual sweep of the
  same grid (`patch_sweep`, one patched run per cell) in the same unit;
- agreement: per pair and cell (layer, component, position) of the question's last 12 tokens,
  the attribution estimate against the exact patching effect (Spearman over every pair x cell,
  top-10 recall by |effect|, `circuits.agreement`);
- the same cost and agreement for the integrated-gradients variant (AtP-IG, `--ig-steps` midpoint
  steps from the corrupted to the clean input embeddings; 0 skips it).
"""

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

import vrp
from circuits import agreement, attribution_patching, corrupt_pairs, patch_sweep, usable_pairs
from vrp import Component, Indices, Site
from vrp.interventions import Graph, run_graph
from vrp.organisms import evaluation_set

COMPONENTS = (Component.RESID_POST, Component.ATTN_OUT, Component.MLP_OUT)


def _median_seconds(work: Callable[[], object], repeats: int) -> float:
    work()  # warm-up: the first trace of a process pays one-off costs
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(name: str, pairs: int, repeats: int, ig_steps: int) -> dict[str, float]:
    vlm = vrp.load(name)
    data = evaluation_set(n_per_split=4 * pairs, n_counting=0, n_spatial=0, seed=11)
    found = corrupt_pairs([data[i] for i in range(len(data))], kind="object", seed=0)
    _, clean, corrupt = usable_pairs(vlm, found)
    clean, corrupt = (
        clean.rows(range(min(pairs, clean.batch_size))),
        corrupt.rows(range(min(pairs, corrupt.batch_size))),
    )
    sites = [Site(layer=layer, component=c) for layer in range(vlm.adapter.n_layers)
             for c in COMPONENTS]  # fmt: skip
    margin = vlm.yes_no_margin
    forward = _median_seconds(lambda: run_graph(vlm, Graph(nodes=()), corrupt), repeats)
    atp_time = _median_seconds(
        lambda: attribution_patching(vlm, clean, corrupt, sites, margin), repeats
    )
    atp = attribution_patching(vlm, clean, corrupt, sites, margin)
    positions = range(clean.seq_len - 12, clean.seq_len)
    cells = [Site(layer=s.layer, component=s.component, positions=Indices((p,)))
             for s in sites for p in positions]  # fmt: skip
    start = time.perf_counter()
    exact = patch_sweep(vlm, clean, corrupt, cells, margin)
    exact_time = time.perf_counter() - start
    effects = (exact.per_row - exact.corrupt_per_row[None, :]).float().numpy().ravel()
    estimates = np.array([atp.score(s)[:, p].float().numpy() for s in sites
                          for p in positions]).ravel()  # fmt: skip
    agree = agreement(estimates, effects, k=10)
    out = {"pairs": clean.batch_size, "cells": len(cells), "forward_s": forward,
           "atp_fe": atp_time / forward, "exact_fe": exact_time / forward,
           "spearman": agree.spearman, "recall10": agree.top_k_recall}  # fmt: skip
    if ig_steps:

        def ig() -> object:
            return attribution_patching(vlm, clean, corrupt, sites, margin, ig_steps=ig_steps)

        out["ig_fe"] = _median_seconds(ig, repeats) / forward
        result = ig()
        ig_estimates = np.array([result.score(s)[:, p].float().numpy() for s in sites
                                 for p in positions]).ravel()  # fmt: skip
        ig_agree = agreement(ig_estimates, effects, k=10)
        out["ig_spearman"], out["ig_recall10"] = ig_agree.spearman, ig_agree.top_k_recall
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--ig-steps", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    k = args.ig_steps
    print(f"{'organism':<20} {'pairs':>5} {'cells':>5} {'forward ms':>10} {'AtP (FE)':>9} "
          f"{'exact sweep (FE)':>16} {'Spearman':>8} {'top-10 recall':>13}"
          + (f" {f'IG{k} (FE)':>10} {'IG Spearman':>11} {'IG top-10':>9}" if k else ""))  # fmt: skip
    for name in ("organism/llava", "organism/paligemma", "organism/qwen2_vl"):
        r = measure(name, args.pairs, args.repeats, k)
        line = (f"{name:<20} {r['pairs']:>5.0f} {r['cells']:>5.0f} {1000 * r['forward_s']:>10.1f} "
                f"{r['atp_fe']:>9.2f} {r['exact_fe']:>16.1f} {r['spearman']:>8.3f} "
                f"{r['recall10']:>13.2f}")  # fmt: skip
        if k:
            line += f" {r['ig_fe']:>10.2f} {r['ig_spearman']:>11.3f} {r['ig_recall10']:>9.2f}"
        print(line)


if __name__ == "__main__":
    main()
