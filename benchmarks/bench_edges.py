"""Edge attribution against exact edge patching, and edge discovery, on the organisms.

Run: ``python benchmarks/bench_edges.py [--pairs 16] [--threads 2]``

For each organism: object-swap pairs the model can be studied on (`usable_pairs`), every edge of
the language model (`edge_universe`), EAP estimates (`edge_attribution`, 2 forward + 1 backward
passes) against exact single-edge patching (`edge_patching`, one run per edge), compared pooled
over pairs (Spearman, top-10 recall); then `discover_edges` at 80% faithfulness. Prints times in
forward-equivalents (FE: one plain forward of the corrupted rows) beside the figures.
"""

import argparse
import statistics
import time
from collections.abc import Callable

import torch


def _seconds(work: Callable[[], object], repeats: int = 3) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = work()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def measure(family: str, pairs: int) -> str:
    import vrp
    from circuits import (
        EdgeDiscoveryConfig,
        agreement,
        attributed,
        corrupt_pairs,
        discover_edges,
        edge_attribution,
        edge_patching,
        edge_universe,
        usable_pairs,  # fmt: skip
    )
    from vrp.interventions import Graph, run_graph
    from vrp.organisms import evaluation_set

    vlm = vrp.load(f"organism/{family}")
    data = evaluation_set(n_per_split=4 * pairs, n_counting=0, n_spatial=0, seed=7)
    found = corrupt_pairs([data[i] for i in range(len(data))], kind="object", seed=0)
    _, clean, corrupt = usable_pairs(vlm, found)
    keep = list(range(min(pairs, clean.batch_size)))
    clean, corrupt = clean.rows(keep), corrupt.rows(keep)
    universe = edge_universe(vlm)
    forward, _ = _seconds(lambda: run_graph(vlm, Graph(nodes=()), corrupt))
    eap_s, eap = _seconds(lambda: edge_attribution(vlm, clean, corrupt, vlm.yes_no_margin))
    exact_s, exact = _seconds(lambda: edge_patching(vlm, clean, corrupt, universe), 1)
    score = agreement(attributed(eap, universe), exact.pooled(), k=10)  # type: ignore[arg-type]
    discovery = discover_edges(vlm, clean, corrupt, EdgeDiscoveryConfig(threshold=0.8))
    circuit = discovery.circuit
    size = len(circuit.edges) if circuit else None
    faith = discovery.faithfulness[discovery.sizes.index(size)] if size else None
    return (f"{family:>10}: {clean.batch_size} pairs, {len(universe)} edges | EAP "
            f"{eap_s / forward:.1f} FE, exact {exact_s / forward:.1f} FE | Spearman "
            f"{score.spearman:.2f}, top-10 recall {score.top_k_recall:.2f} | circuit "
            f"{size}/{len(universe)} edges, faithfulness {faith}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for family in ("llava", "paligemma", "qwen2_vl"):
        print(measure(family, args.pairs), flush=True)


if __name__ == "__main__":
    main()
