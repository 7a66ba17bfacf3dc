"""The study's batches on Ray: throughput with 1 and 2 workers, and the coordination overhead.

Run: ``python benchmarks/bench_ray.py [--model organism/llava] [--n 20] [--stage causal]``

Starts a local Ray cluster with 2 CPUs and runs one batched stage of the study three ways, side
by side in this one process: locally with 1 torch thread, on Ray with 1 worker (1 thread), and
on Ray with 2 workers (1 thread each). Prints each run's seconds, the 2-worker speed-up over 1
worker (expect near 2x on 2 cores for a model-bound stage), and the overhead per batch of going
through Ray (1 worker against local, per batch). The workers' model loading is timed apart
(`warm-up`) so the figures are about batches.
"""

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import ray
import torch

from vrp.study import RayExecutor, RayOptions, Stage, StudyConfig, run_study


def _timed(config: StudyConfig, executor: RayExecutor | None) -> float:
    start = time.perf_counter()
    run_study(config, executor=executor)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="organism/llava")
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--stage", default="causal")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    root = Path(tempfile.mkdtemp())

    def config(name: str) -> StudyConfig:
        return StudyConfig(models=(args.model,), n=args.n, stages=(Stage(args.stage),),
                           batch_size=10, out=root / name)  # fmt: skip

    local = _timed(config("local"), None)
    seconds = {}
    for workers in (1, 2):
        executor = RayExecutor(config(f"ray{workers}"), RayOptions(workers=workers))
        start = time.perf_counter()
        ray.get([a.pid.remote() for a in executor.pool(args.model)])  # the replicas are loaded
        warm = time.perf_counter() - start
        seconds[workers] = _timed(config(f"ray{workers}"), executor)
        executor.close()
        print(f"ray, {workers} worker(s): warm-up {warm:.1f} s, stage run {seconds[workers]:.1f} s")
    batches = len(list((root / "local" / "parts" / args.stage).rglob("part-*.parquet")))
    print(f"local (1 thread): {local:.1f} s for {batches} batches")
    print(f"speed-up, 2 workers over 1: {seconds[1] / seconds[2]:.2f}x")
    print(
        f"Ray overhead per batch (1 worker - local): {(seconds[1] - local) / batches * 1000:.0f} ms"
    )
    ray.shutdown()


if __name__ == "__main__":
    main()
