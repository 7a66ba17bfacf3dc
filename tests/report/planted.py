"""Run directories written by hand, with planted numbers whose report is known in advance.

`planted_run` writes the files `vrp run` writes (config, manifest, results JSON, records) with
only the keys the report reads, so a test can plant a value and look for it in the report.
"""

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq


def estimate(value: float, low: float, high: float, n: int, p: float | None = None,
             method: str = "planted") -> dict[str, Any]:  # fmt: skip
    return {"estimate": value, "ci_low": low, "ci_high": high, "p_value": p, "n": n,
            "method": method, "confidence": 0.95}  # fmt: skip


def slug(model: str) -> str:
    return model.replace("/", "--")


def planted_run(
    root: Path,
    results: dict[str, dict[str, dict[str, Any]]],
    records: dict[str, list[dict[str, Any]]] | None = None,
    *,
    manifest: bool = True,
    seed: int = 0,
) -> Path:
    """Writes a run directory: ``results[model][stage]`` as results JSON, ``records[stage]`` as
    Parquet, a config listing the stages present, and (unless `manifest` is False) a manifest."""
    stages = [s for s in ("accuracy", "signals", "probes", "causal", "circuits")
              if any(s in by_stage for by_stage in results.values())]  # fmt: skip
    config = {"models": list(results), "data": "synthetic", "n": 10, "stages": stages,
              "samples": 4, "seed": seed, "out": str(root)}  # fmt: skip
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text(json.dumps(config))
    for model, by_stage in results.items():
        for stage, value in by_stage.items():
            path = root / "results" / slug(model) / f"{stage}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({**value, "model": model}))
    for stage, rows in (records or {}).items():
        (root / "records").mkdir(exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rows), root / "records" / f"{stage}.parquet")
    if manifest:
        (root / "manifest.json").write_text(json.dumps({
            "format": "vrp-study-run", "version": 1, "config": config,
            "versions": {"vrp": "0.1.0"}, "machine": {"device": "cpu", "cpus": 2},
            "models": {m: {"sha256": "ab" * 32} for m in results},
            "timings": {m: {s: 1.0 for s in by_stage} for m, by_stage in results.items()},
        }))  # fmt: skip
    return root


def accuracy_rows(model: str, split: str, correct: list[bool], labels: list[str] | None = None
                  ) -> list[dict[str, Any]]:  # fmt: skip
    """Accuracy records of one split: question ids 1..n."""
    labels = labels or ["yes"] * len(correct)
    return [{"model": model, "item": i, "question_id": i + 1, "split": split,
             "category": "cat", "label": labels[i], "answer": "yes", "correct": c}
            for i, c in enumerate(correct)]  # fmt: skip


def accuracy_result(splits: dict[str, float], n: int) -> dict[str, Any]:
    return {"n": n * len(splits), "splits": {s: {"n": n, "accuracy": estimate(a, a - 0.1, a + 0.1, n)}
                                             for s, a in splits.items()}}  # fmt: skip
