"""Benchmark: per-layer probe sweep vs a plain scikit-learn loop, and activation-store memory.

Run (single-threaded, as on the shared 2-core machine; about 2-4 minutes):

    OMP_NUM_THREADS=1 python benchmarks/bench_probe_sweep.py

Options: `--n 3090 --layers 32 --d 512 --folds 5 --C 1.0 --threads 1`; `--quick` shrinks the
problem for a smoke run.

Part 1 (speed). Synthetic answer-position activations, `(n, layer, d)`, are written to an
`ActivationStore` (float32): anisotropic Gaussian features (a few large-variance "outlier"
dimensions with non-zero means, a decaying spectrum, a random rotation per layer) plus a
correctness signal along one direction whose strength grows with depth, so held-out AUROC runs
from chance at the first layers to near 1 at the last. Both contenders compute the same thing
for every layer: stratified k-fold held-out AUROC of an L2 logistic probe with C=`--C`, and the
same with shuffled labels (the control), on the same folds and the same shuffled labels.

- `probe_sweep`: `vrp.probes.probe_sweep(store, y)`, default `SweepConfig` (tol 1e-6, stricter
  than scikit-learn's default 1e-4, plus an all-data refit per layer the baseline does not do).
- baseline: a loop over layers, folds and (true, shuffled) labels of
  `sklearn.linear_model.LogisticRegression(C=C, max_iter=1000)` (lbfgs, default tol), reading each
  layer from the same store.

It prints the wall time of each, the speed-up, and the largest per-layer AUROC difference (probe
and control), which must stay below 0.01.

Part 2 (memory). A stand-in extraction loop (a random `(16, layer, d)` float32 batch per step, as
a model's answer-position hidden states would arrive) appends to a float16 store, for 1,000 and
for 10,000 samples, each in a fresh subprocess. It prints the peak traced allocation
(`tracemalloc`: Python and numpy allocations) and the process's peak resident memory (VmHWM,
reset through /proc/self/clear_refs just before the loop, so it is the loop's peak; pages written
to the store sit in the OS page cache, not in the process), with their 10k/1k ratios (target:
below 1.10), and the few MiB by which the loop raised the resident memory.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402
from sklearn.model_selection import StratifiedKFold  # noqa: E402

from vrp.probes import SweepConfig, probe_sweep  # noqa: E402
from vrp.store import ActivationStore  # noqa: E402


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3090)
    parser.add_argument("--layers", type=int, default=32)
    parser.add_argument("--d", type=int, default=512)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--C", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="n=800, 6 layers, d=64")
    parser.add_argument("--memory-child", type=int, default=0, help=argparse.SUPPRESS)
    return parser.parse_args()


def synthetic_store(path: Path, n: int, layers: int, d: int, seed: int = 0) -> np.ndarray:
    """Writes synthetic activations to a float32 store at `path`; returns the 0/1 labels."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.6).astype(np.int64)
    store = ActivationStore.create(path, layers=range(layers), d=d, dtype="float32")
    spectrum = 1.0 / np.sqrt(np.arange(1, d + 1))
    block = np.empty((n, layers, d), dtype=np.float32)
    for layer in range(layers):
        rotation, _ = np.linalg.qr(rng.standard_normal((d, d)))
        x = (rng.standard_normal((n, d)) * spectrum) @ rotation.T
        x[:, :4] = 20.0 * x[:, :4] + 5.0  # outlier dimensions, as in real residual streams
        direction = rng.standard_normal(d)
        strength = 0.25 * (layer / max(layers - 1, 1)) ** 2
        x += strength * np.outer(2 * y - 1, direction / np.linalg.norm(direction))
        block[:, layer] = x
    for start in range(0, n, 256):
        store.append(block[start : start + 256])
    return y


def sklearn_loop(
    store: ActivationStore, y: np.ndarray, folds: int, C: float
) -> tuple[np.ndarray, np.ndarray]:
    """Held-out AUROC per layer (true and shuffled labels) by plain per-fold sklearn fits."""
    shuffled = np.random.default_rng(0).permutation(y)  # the sweep's control labels (seed 0)
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=0)
    splits = list(cv.split(np.zeros((y.size, 1)), y))
    result = np.empty((2, len(store.layers)))
    for i, layer in enumerate(store.layers):
        x = np.asarray(store.layer(layer), dtype=np.float64)
        for j, labels in enumerate((y, shuffled)):
            oof = np.empty(y.size)
            for train, test in splits:
                model = LogisticRegression(C=C, max_iter=1000).fit(x[train], labels[train])
                oof[test] = model.decision_function(x[test])
            result[j, i] = roc_auc_score(labels, oof)
    return result[0], result[1]


def speed(args: argparse.Namespace, root: Path) -> None:
    y = synthetic_store(root / "speed", args.n, args.layers, args.d)
    store = ActivationStore.open(root / "speed")
    print(f"data: n={args.n}, layers={args.layers}, d={args.d}, {args.folds}-fold, C={args.C}")
    start = time.perf_counter()
    sweep = probe_sweep(store, y, SweepConfig(C=args.C, n_splits=args.folds))
    t_sweep = time.perf_counter() - start
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        base, base_control = sklearn_loop(store, y, args.folds, args.C)
    t_base = time.perf_counter() - start
    ours = sweep.auroc_values
    control = np.array([e.estimate for e in sweep.control])
    fits = 2 * args.layers * args.folds
    print(f"probe_sweep   : {t_sweep:7.2f} s  (all layers, folds, control and refit)")
    print(f"sklearn loop  : {t_base:7.2f} s  ({fits} LogisticRegression fits, ", end="")
    print(f"{len(caught)} warnings)")
    print(f"speed-up      : {t_base / t_sweep:7.2f}x   (target >= 3x)")
    print(f"max |AUROC diff| probe   : {np.abs(ours - base).max():.4f}   (target < 0.01)")
    print(f"max |AUROC diff| control : {np.abs(control - base_control).max():.4f}")
    print("layer  AUROC(sweep)  AUROC(sklearn)  control(sweep)")
    for i in np.linspace(0, args.layers - 1, min(args.layers, 6)).astype(int):
        print(f"{sweep.layers[i]:5d}  {ours[i]:12.4f}  {base[i]:14.4f}  {control[i]:14.4f}")


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as handle:
        line = next(row for row in handle if row.startswith(field + ":"))
    return int(line.split()[1])


def memory_child(n: int, layers: int, d: int, path: Path) -> dict[str, float]:
    """Extraction stand-in: appends `n` samples in batches of 16; returns peak memory figures."""
    store = ActivationStore.create(path, layers=range(layers), d=d, dtype="float16")
    generator = torch.Generator().manual_seed(0)
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")  # reset the peak-RSS mark (VmHWM) to the current RSS
    rss_before = _status_kib("VmRSS")
    tracemalloc.start()
    for start in range(0, n, 16):
        hidden = torch.randn(min(16, n - start), layers, d, generator=generator)
        store.append(hidden)
    traced = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    peak = _status_kib("VmHWM") * 1024
    return {"traced": traced, "peak_rss": peak, "rss_growth": peak - rss_before * 1024}


def memory(args: argparse.Namespace, root: Path) -> None:
    figures = {}
    for n in (1_000, 10_000):
        cmd = [sys.executable, __file__, "--memory-child", str(n), "--layers", str(args.layers)]
        cmd += ["--d", str(args.d)]
        env = dict(os.environ, VRP_BENCH_DIR=str(root / f"mem{n}"))
        out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
        figures[n] = json.loads(out.strip().splitlines()[-1])
    print(f"store writes ({args.layers} layers x d={args.d}, float16, batches of 16):")
    rows = (
        ("traced", "peak traced allocation"),
        ("peak_rss", "peak RSS of the process"),
        ("rss_growth", "  of which during writes"),
    )
    for key, label in rows:
        small, large = figures[1_000][key], figures[10_000][key]
        line = f"  {label:25s}: 1k {small / 2**20:8.2f} MiB, 10k {large / 2**20:8.2f} MiB"
        if key != "rss_growth":  # a few MiB of allocator noise: a ratio of it means nothing
            line += f", ratio {large / small:.3f} (target < 1.10)"
        print(line)


def main() -> None:
    args = _parse()
    if args.quick:
        args.n, args.layers, args.d = 800, 6, 64
    torch.set_num_threads(args.threads)
    if args.memory_child:
        path = Path(os.environ["VRP_BENCH_DIR"])
        print(json.dumps(memory_child(args.memory_child, args.layers, args.d, path)))
        return
    print(
        f"torch threads: {torch.get_num_threads()}, OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        speed(args, Path(tmp))
        memory(args, Path(tmp))


if __name__ == "__main__":
    main()
