"""Patching sweeps on the organisms: what a sweep costs against the plain forward passes it
stands for, measured side by side in one run.

Run: ``python benchmarks/bench_sweep.py [--pairs 8] [--repeats 5] [--threads 1]``

For each organism, object-swap pairs of one token layout (`circuits.usable_pairs`), and a
forward-equivalent (FE) = the median time of one plain forward trace of the corrupted rows:

(a) a full layer x position residual sweep (`RESID_POST` of every layer at every position):
    `patch_sweep`, which computes only what a patch can change (each cell resumed at its layer),
    in FE per cell. A naive sweep costs at least 1 FE per cell (one patched forward each, plus
    the clean run); goal (issue #16): at most 0.5 on the causal organisms (LLaVA, Qwen2-VL).
    The same sweep with every layer run (a no-op base node forces the plain path) is printed
    beside it.
(b) 32 single-site patches (residual, 4 layers x the last 8 positions): `patch_sweep` against
    32 separate traces (each the clean run and one patched corrupted run). Goal: >= 8x.

Timings are medians over repeats that run the compared works in turn (interleaved), so that
a slow spell of the machine hits both sides of a ratio alike.
"""

import argparse
import statistics
import time
from collections.abc import Callable

import torch

import vrp
from circuits import corrupt_pairs, patch_sweep, usable_pairs
from vrp import Component, Indices, Site
from vrp.interventions import Graph, Patch, Scale, graph, run_graph
from vrp.organisms import evaluation_set

ORGANISMS = ("organism/llava", "organism/qwen2_vl", "organism/paligemma")


def _medians(works: list[Callable[[], object]], repeats: int) -> list[float]:
    """Median seconds of each of `works`, timed in turn within every repeat (interleaved), so
    that a slow spell of the machine hits all of them alike."""
    for work in works:
        work()  # warm-up
    times: list[list[float]] = [[] for _ in works]
    for _ in range(repeats):
        for work, kept in zip(works, times, strict=True):
            start = time.perf_counter()
            work()
            kept.append(time.perf_counter() - start)
    return [statistics.median(kept) for kept in times]


def measure(name: str, pairs: int, repeats: int) -> dict[str, float]:
    vlm = vrp.load(name)
    data = evaluation_set(n_per_split=4 * pairs, n_counting=0, n_spatial=0, seed=11)
    found = corrupt_pairs([data[i] for i in range(len(data))], kind="object", seed=0)
    _, clean, corrupt = usable_pairs(vlm, found)
    keep = range(min(pairs, clean.batch_size))
    clean, corrupt = clean.rows(keep), corrupt.rows(keep)
    margin, n_layers, seq = vlm.yes_no_margin, vlm.adapter.n_layers, corrupt.seq_len
    grid = [Site(layer=layer, component=Component.RESID_POST, positions=Indices((p,)))
            for layer in range(n_layers) for p in range(seq)]  # fmt: skip
    noop = [Scale(site=Site(layer=0, component=Component.RESID_PRE), factor=1.0)]
    forward, sweep = _medians([lambda: run_graph(vlm, Graph(nodes=()), corrupt),
                               lambda: patch_sweep(vlm, clean, corrupt, grid, margin)],
                              max(3, repeats // 2))  # fmt: skip
    plain = _medians([lambda: patch_sweep(vlm, clean, corrupt, grid, margin, base=noop)], 1)[0]
    cells = [Site(layer=layer, component=Component.RESID_POST, positions=Indices((p,)))
             for layer in range(n_layers) for p in range(seq - 8, seq)][:32]  # fmt: skip

    def separate() -> None:
        for cell in cells:
            g = graph(Patch(site=cell, source="clean", run="corrupt"), runs=("clean", "corrupt"))
            run_graph(vlm, g, {"clean": clean, "corrupt": corrupt})

    together, apart = _medians(
        [lambda: patch_sweep(vlm, clean, corrupt, cells, margin), separate], max(3, repeats // 2)
    )
    return {"pairs": clean.batch_size, "layers": n_layers, "seq": seq, "forward_ms": 1e3 * forward,
            "grid_cells": len(grid), "sweep_fe": sweep / (len(grid) * forward),
            "plain_fe": plain / (len(grid) * forward), "speedup32": apart / together}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{'organism':<20} {'pairs':>5} {'layers x seq':>12} {'forward ms':>10} "
          f"{'sweep FE/cell':>13} {'every layer FE/cell':>19} {'32 patches speed-up':>19}")  # fmt: skip
    for name in ORGANISMS:
        r = measure(name, args.pairs, args.repeats)
        print(f"{name:<20} {r['pairs']:>5.0f} {r['layers']:>5.0f} x {r['seq']:<4.0f} "
              f"{r['forward_ms']:>10.1f} {r['sweep_fe']:>13.3f} {r['plain_fe']:>19.3f} "
              f"{r['speedup32']:>18.1f}x")  # fmt: skip


if __name__ == "__main__":
    main()
