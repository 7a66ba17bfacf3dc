"""How well the answer's log-probability predicts correctness, on the shipped organisms.

Run: ``OMP_NUM_THREADS=2 python benchmarks/answer_signal_auroc.py [--n 600] [--seed 2026]``

For each organism: `n` adversarial + `n` spatial questions (fresh synthetic ones, seeded) through
the signal pipeline (`vrp.pipeline.dataset_signals`, self-consistency off). Prints the AUROC for
correctness (DeLong 95% CI, n) of `answer_logprob` (the log-probability of the answer token greedy
decoding emits), of the yes/no margin's size |margin| (the confidence of the yes/no choice) and,
for reference, of the signed margin; then checks the issue's target: answer_logprob within 0.02 of
|margin| and above 0.7 for every family. Exit code 1 when a target is missed.
"""

import argparse
import sys
import time
import warnings

import numpy as np
import torch

import vrp
from vrp.data import SyntheticConfig, generate
from vrp.pipeline import SignalConfig, dataset_signals
from vrp.stats import auroc

FAMILIES = ("llava", "paligemma", "qwen2_vl")


def questions(n: int, seed: int) -> list:
    dataset = generate(SyntheticConfig(n_per_split=n, n_counting=0, n_spatial=n, seed=seed))
    return [s for s in dataset if s.split in ("adversarial", "spatial")]


def measure(family: str, samples: list, batch_size: int) -> dict:
    vlm = vrp.load(f"organism/{family}")
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", vrp.UndefinedSignalWarning)  # C_k on the 4x4 grid
        batches = dataset_signals(vlm, samples, SignalConfig(batch_size=batch_size, samples=0))
    rows = [r for b in batches for r in b.samples]
    correct = np.array([r.correct for r in rows], dtype=int)
    logprob = np.array([r.answer_logprob for r in rows])
    margin = np.array([r.yes_no_margin for r in rows])
    return {
        "family": family,
        "n": len(rows),
        "accuracy": correct.mean(),
        "seconds": time.perf_counter() - start,
        "answer_logprob": auroc(logprob, correct),
        "|margin|": auroc(np.abs(margin), correct),
        "signed margin": auroc(margin, correct),
        "logprob range": (logprob.min(), np.median(logprob), logprob.max()),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--n", type=int, default=600, help="questions per split (adversarial, spatial)"
    )
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--batch-size", type=int, default=50)
    args = parser.parse_args()
    torch.set_num_threads(2)
    samples = questions(args.n, args.seed)
    print(f"{len(samples)} questions per organism (seed {args.seed}), torch {torch.__version__}")
    ok = True
    for family in FAMILIES:
        m = measure(family, samples, args.batch_size)
        lo, med, hi = m["logprob range"]
        print(f"\n{family}: accuracy {m['accuracy']:.3f} (n = {m['n']}), {m['seconds']:.0f} s")
        print(f"  answer_logprob range {lo:.2f} .. {hi:.2f} nats (median {med:.2f})")
        for key in ("answer_logprob", "|margin|", "signed margin"):
            print(f"  AUROC {key:<15} {m[key]}")
        gap = abs(m["answer_logprob"].estimate - m["|margin|"].estimate)
        met = gap <= 0.02 and m["answer_logprob"].estimate > 0.7
        ok &= met
        print(
            f"  |AUROC(logprob) - AUROC(|margin|)| = {gap:.3f}; target (<= 0.02, > 0.7) met: {met}"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
