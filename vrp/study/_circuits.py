"""The circuits stage: where the answer is computed, by activation patching of clean/corrupt pairs.

Each yes/no question is corrupted two ways (`circuits.corrupt_pairs`): "object" swaps the object
a POPE-style question names so that the true answer flips (spatial questions name no single
object and are skipped), "noise" adds Gaussian pixel noise (std `NOISE_STD`) to the image. A pair
is used only where the model answers the clean question right, its corrupted answer differs, and
both prompts have one token layout (`circuits.patch_pairs`). For every used pair the clean run's
residual stream, attention output and MLP output are patched into the corrupted run at each
layer and position group ("answer": the last token; "question": every other text token; "image":
the image tokens), scored by the yes-minus-no margin normalised per pair (0 = corrupted,
1 = clean).

Rows: one per used pair per cell, plus one row (cell fields empty) per pair that could not be
used, so the table counts every pair. The summary gives, per corruption, how many pairs were
used, each cell's pooled normalised score by layer and the localisation verdict of each
component and position group. Pooled, not a mean of the per-pair scores: a pair whose answers
barely flip has a clean-corrupt gap near zero, and its per-pair score (a margin divided by that
gap) can reach any size and dominate a mean. The pooled score is the restored margin summed over
pairs over their gap summed (each pair oriented towards its clean answer; `vrp.stats.
ratio_of_means`: bootstrap CI over pairs, sign-flip permutation p against 0, n), with
Benjamini-Hochberg q-values over every cell and layer of a corruption (FDR 0.05), and the
localisation reads each pair's restored margin in units of the mean gap (`PairPatching.profile`).
"""

import math
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import numpy as np
import pyarrow as pa

from circuits import (
    COMPONENTS,
    POSITION_GROUPS,
    CorruptionKind,
    corrupt_pairs,
    localise,
    patch_pairs,
    question_key,
)

from ..core import ConfigError, DataError
from ..data import Sample
from ..stats import benjamini_hochberg, proportion, ratio_of_means
from ._stages import Batched, StageContext, estimate_json, run_batched, yes_no_samples

KINDS: tuple[CorruptionKind, ...] = ("object", "noise")  # "remove" needs scene graphs
NOISE_STD = 128.0  # pixel noise of the "noise" corruption, grey levels (64 rarely flips answers)
RESAMPLES = 1999  # permutation and bootstrap resamples per layer score
FDR = 0.05  # false discovery rate across the cells of one corruption
HEADLINE = ("object", "mlp_out", "answer")  # the profile the run's summary reports
CELL_KEYS = ("layer", "component", "positions", "metric", "score")


def run_circuits(ctx: StageContext) -> dict[str, Any]:
    """Streams every pair's patching rows and summarises them (see module doc)."""
    return run_batched(ctx, "circuits", prepare_circuits(ctx))


def prepare_circuits(ctx: StageContext) -> Batched:
    """The circuits stage's batches and summary (see `run_circuits`)."""
    samples = yes_no_samples(ctx.samples)
    pool = ctx.samples.questions
    seed = ctx.config.seed

    def compute(batch: Sequence[Sample], index: int) -> tuple[list[dict[str, Any]], None]:
        items = samples.batch_items(index, ctx.config.batch_size)
        item_of = {question_key(s): item for s, item in zip(batch, items, strict=True)}
        rows: list[dict[str, Any]] = []
        for kind in KINDS:
            pairs = corrupt_pairs(batch, kind=kind, seed=seed, pool=pool, noise_std=NOISE_STD)
            if not pairs:
                continue
            records = patch_pairs(ctx.vlm, pairs).to_records(include_invalid=True)
            rows += [{"model": ctx.model, "item": item_of[f"{r['split']}/{r['question_id']}"],
                      **{k: v for k, v in r.items() if k != "pair"}}
                     for r in records]  # fmt: skip
        return rows, None

    n_layers = ctx.vlm.adapter.n_layers
    return Batched(items=samples, compute=compute,
                   summarise=lambda table: circuits_summary(table, n_layers=n_layers, seed=seed))  # fmt: skip


def circuits_summary(table: pa.Table, *, n_layers: int, seed: int = 0) -> dict[str, Any]:
    """The stage's numbers from its rows (one model's): pair counts, each cell's pooled
    normalised score by layer and localisation verdicts, per corruption."""
    rows = table.to_pylist()
    out: dict[str, Any] = {"noise_std": NOISE_STD, "layers": n_layers, "corruptions": {}}
    for kind in KINDS:
        mine = [r for r in rows if r["corruption"] == kind]
        out["corruptions"][kind] = _corruption_json(mine, n_layers, seed)
    head = out["corruptions"][HEADLINE[0]].get("cells", {}).get(HEADLINE[1], {})
    verdict = head.get(HEADLINE[2], {}).get("localisation", {"undefined": "no usable pairs"})
    out["headline"] = {"corruption": HEADLINE[0], "component": HEADLINE[1],
                       "positions": HEADLINE[2], "localisation": verdict}  # fmt: skip
    out["n"] = len({r["item"] for r in rows})
    return out


def _corruption_json(rows: list[dict[str, Any]], n_layers: int, seed: int) -> dict[str, Any]:
    pairs = {r["item"]: r for r in rows}  # one entry per pair, with its validity columns
    counts = {k: sum(bool(p[k]) for p in pairs.values())
              for k in ("clean_correct", "flipped", "aligned", "valid")}  # fmt: skip
    out: dict[str, Any] = {"pairs": len(pairs), **counts}
    if not pairs:
        return out
    out["valid_share"] = estimate_json(proportion(counts["valid"], len(pairs)))
    scores: dict[tuple[str, str], dict[int, tuple[list[float], float]]] = {}
    for r in rows:
        if r["valid"]:
            gap = r["clean_metric"] - r["corrupt_metric"]
            cell = scores.setdefault((r["component"], r["positions"]), {})
            restored, _ = cell.setdefault(r["item"], ([float("nan")] * n_layers, abs(gap)))
            restored[r["layer"]] = math.copysign(1.0, gap) * (r["metric"] - r["corrupt_metric"])
    out["cells"] = {
        component.value: {
            group: _cell_json(scores.get((component.value, group), {}), seed)
            for group in POSITION_GROUPS
        }
        for component in COMPONENTS
    }  # fmt: skip
    out["fdr"] = _fdr(out["cells"])
    return out


def _fdr(cells: dict[str, dict[str, dict[str, Any]]]) -> dict[str, Any]:
    """Benjamini-Hochberg over every defined (component, group, layer) p-value of one corruption:
    each such per-layer entry gains its q-value and whether it is a discovery at FDR 0.05."""
    entries = [entry for groups in cells.values() for cell in groups.values()
               for entry in cell.get("per_layer", []) if entry.get("p_value") is not None]  # fmt: skip
    if not entries:
        return {"n": 0, "undefined": "no defined p-value"}
    result = benjamini_hochberg([e["p_value"] for e in entries], alpha=FDR)
    for entry, q, hit in zip(entries, result.q_values, result.rejected, strict=True):
        entry["q_value"], entry["discovery"] = float(q), bool(hit)
    return {"n": result.n, "alpha": FDR, "discoveries": result.n_rejected,
            "method": "Benjamini-Hochberg over every cell and layer of this corruption"}  # fmt: skip


def _cell_json(by_item: dict[int, tuple[list[float], float]], seed: int) -> dict[str, Any]:
    """Pooled normalised score per layer (ratio of means: bootstrap CI, permutation p against 0,
    n) and the localisation of the pairs x layers profile in units of the mean gap."""
    if len(by_item) < 2:
        return {"n": len(by_item), "undefined": "fewer than 2 usable pairs"}
    restored = np.array([by_item[i][0] for i in sorted(by_item)])
    gap = np.array([by_item[i][1] for i in sorted(by_item)])
    means = []
    for layer in restored.T:
        try:
            est = ratio_of_means(layer, gap, n_resamples=RESAMPLES, seed=seed)
            means.append(estimate_json(est))
        except DataError as err:  # e.g. a NaN margin
            means.append({"n": len(layer), "undefined": str(err)})
    try:
        where: dict[str, Any] = asdict(localise(restored / gap.mean(), seed=seed))
    except ConfigError as err:  # no positive mass, or non-finite scores
        where = {"undefined": str(err)}
    return {"n": len(by_item), "per_layer": means, "localisation": where}
