"""The causal stage: what happens to each yes/no answer when the model is intervened on.

Conditions (each question's correctness is kept under every one, one row per question per
condition, so any breakdown by split or category needs no rerun):

- masking: the top-attended 30% of image patches, the least-attended 30%, and `n_masks` random
  30% draws, at the token level (projected image tokens replaced by their mean) and the pixel
  level (cells painted grey); a question's random draw d masks the same patches at both levels;
- neurons: the top-k MLP neurons of the last language layer and `n_controls` random sets of k,
  zeroed at every position, against the plain model run in the same batches (condition
  "none"). The neurons are ranked on a held-out half of the questions and
  ablated only on the other half (rows exist for that half only): the yes/no questions are split
  per split into a ranking and an evaluation half (seeded), and `circuits.rank_neurons` ranks by
  the |weight| of a logistic correctness probe on z-scored answer-position activations. The
  last layer is the study's choice (its LLaVA finding is about the last layer) and keeps the
  evaluation half's labels out of the choice, which a best-probe layer from all questions
  would not;
- dims: random shares of the residual stream's dimensions zeroed after the most predictive
  layer, the probes stage's best layer when that stage ran, else the last layer (random
  dimensions use no labels, so no held-out split is needed); fraction 0 is the baseline;
- bypass: each language layer's MLP output zeroed.

Before the first batch the stage fixes a plan (the halves, the ranking, the neurons and controls,
the layers) and writes it to the run directory atomically; a resumed run reads it back. Every
other random draw is seeded by the config's seed and a stable key (`circuits.seeded_rng`), so a
batch's rows depend only on the config and the batch index.
"""

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from circuits import (
    AblationStudy,
    Arm,
    MaskingConfig,
    baseline_arm,
    bypass_arms,
    condition_outcomes,
    control_sets,
    dims_arms,
    masking_arms,
    neuron_arms,
    rank_neurons,
    seeded_rng,
    summarise_dimension_point,
    summarise_study,
)

from ..core import ConfigError, DataError, Tower
from ..data import Sample
from ..stats import mcnemar_exact, proportion
from ._rundir import model_slug, write_json
from ._samples import Samples
from ._stages import Batched, StageContext, estimate_json, run_batched, yes_no_samples


@dataclass(frozen=True, kw_only=True)
class CausalSettings:
    """The causal stage's sizes (the study's values; `CAUSAL` is what a run uses).

    Attributes:
      fraction: share of the image patches each mask covers.
      n_masks: random masks per level (the masking controls): 19, so that the rank test of the
        top mask against them can reach p = 1/20 = 0.05 (with 5 draws it could not go below 1/6).
      k: neurons ablated (the top-k of the ranking, and each random set).
      n_controls: random neuron sets.
      fractions: shares of the residual dimensions zeroed (0, the baseline, is added).
      n_dim_draws: random dimension sets per fraction.
      conditions_per_trace: conditions stacked into one trace.
    """

    fraction: float = 0.3
    n_masks: int = 19
    k: int = 5
    n_controls: int = 20
    fractions: tuple[float, ...] = (0.1, 0.25, 0.5, 0.75, 1.0)
    n_dim_draws: int = 3
    conditions_per_trace: int = 16


CAUSAL = CausalSettings()
KEYS = ("family", "condition", "level", "draw")
PLAN_VERSION = 2  # 2: the neuron conditions run with their own baseline arm ("none")


def run_causal(ctx: StageContext) -> dict[str, Any]:
    """Streams every condition's per-question outcomes and summarises them (see module doc)."""
    return run_batched(ctx, "causal", prepare_causal(ctx))


def prepare_causal(ctx: StageContext) -> Batched:
    """The causal stage's plan (read back, or made and written), batches and summary."""
    samples = yes_no_samples(ctx.samples)
    plan = causal_plan(ctx, samples)
    shared = shared_arms(ctx, plan)
    neurons = plan_neuron_arms(plan)
    evaluate = set(plan["eval_items"])

    def compute(batch: Sequence[Sample], index: int) -> tuple[list[dict[str, Any]], None]:
        items = samples.batch_items(index, ctx.config.batch_size)
        per_trace = CAUSAL.conditions_per_trace
        out = condition_outcomes(ctx.vlm, batch, shared, conditions_per_trace=per_trace)
        rows = _rows(ctx.model, items, out.to_records())
        chosen = [i for i, item in enumerate(items) if item in evaluate]
        if neurons and chosen:
            picked = [batch[i] for i in chosen]
            out = condition_outcomes(ctx.vlm, picked, neurons, conditions_per_trace=per_trace)
            rows += _rows(ctx.model, [items[i] for i in chosen], out.to_records())
        return rows, None

    return Batched(items=samples, compute=compute,
                   summarise=lambda table: causal_summary(table, plan, seed=ctx.config.seed))  # fmt: skip


def _rows(model: str, items: Sequence[int], records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Adds the model and each question's run-wide item id to `Outcomes.to_records` rows."""
    n = len(items)  # records run arm by arm, each over the batch's questions in order
    return [{"model": model, "item": items[i % n], **r} for i, r in enumerate(records)]


# ----- the plan ------------------------------------------------------------------------------------
def plan_path(ctx: StageContext) -> Path:
    return ctx.run.root / "parts" / "causal" / model_slug(ctx.model) / "plan.json"


def causal_plan(ctx: StageContext, samples: Samples) -> dict[str, Any]:
    """The halves, the neuron ranking and the layers: read from the run directory, or computed
    and written there (atomically) before the first batch."""
    path = plan_path(ctx)
    if path.is_file():
        plan = dict(json.loads(path.read_text()))
        mine = {"version": PLAN_VERSION, "settings": json.loads(json.dumps(asdict(CAUSAL)))}
        theirs = {"version": plan.get("version", 1), "settings": plan["settings"]}
        if theirs != mine:
            raise ConfigError(
                f"{path} was planned with causal plan {theirs}, but this version of vrp uses "
                f"{mine}; its batches would not match. Rerun into a new --out folder."
            )
        return plan
    rank_items, eval_items = halves(samples, ctx.config.seed)
    last = ctx.vlm.adapter.n_layers - 1
    plan = {
        "version": PLAN_VERSION,
        "settings": asdict(CAUSAL),
        "rank_items": rank_items,
        "eval_items": eval_items,
        "neurons": _neuron_plan(ctx, Samples(samples.dataset, rank_items), last),
        "dims": {
            **_dims_layer(ctx, last),
            "d_model": ctx.vlm.adapter.shape(Tower.LANGUAGE).d_model,
        },
    }
    write_json(path, plan)
    return plan


def halves(samples: Samples, seed: int) -> tuple[list[int], list[int]]:
    """The questions' item ids split into a ranking and an evaluation half BY IMAGE: POPE asks
    several questions about each image and its splits reuse images, so a split by question would
    put near-duplicate inputs on both sides. Images are permuted with a seed and the ranking half
    takes the images that bring it closest to half of the questions."""
    by_image: dict[str, list[int]] = {}
    for item, question in zip(samples.indices, samples.questions, strict=True):
        by_image.setdefault(question.image_name, []).append(item)
    names = sorted(by_image)
    order = seeded_rng(seed, "causal/halves", "images").permutation(len(names))
    rank: list[int] = []
    half = len(samples.indices) / 2
    for i in order:  # an image joins the ranking half if that brings it closer to half the items
        questions = by_image[names[i]]
        if abs(len(rank) + len(questions) - half) < abs(len(rank) - half):
            rank += questions
    chosen = set(rank)
    return sorted(rank), [i for i in samples.indices if i not in chosen]


def _neuron_plan(ctx: StageContext, rank: Samples, layer: int) -> dict[str, Any]:
    plan: dict[str, Any] = {"layer": layer, "chosen_by": "last layer", "k": CAUSAL.k}
    width = ctx.vlm.adapter.shape(Tower.LANGUAGE).d_mlp
    try:
        ranking = rank_neurons(ctx.vlm, rank, layer=layer, batch_size=ctx.config.batch_size)
    except DataError as err:
        return {**plan, "undefined": str(err)}
    targets = ranking.ranking.top(CAUSAL.k)
    controls = control_sets(width, targets, CAUSAL.n_controls, ctx.config.seed)
    return {**plan, "ranking": ranking.to_json(), "targets": list(targets),
            "controls": [list(c) for c in controls]}  # fmt: skip


def _dims_layer(ctx: StageContext, last: int) -> dict[str, Any]:
    probes = (
        ctx.run.read_result("probes", ctx.model) if ctx.run.stage_done("probes", ctx.model) else {}
    )
    if "best_layer" in probes:
        return {"layer": int(probes["best_layer"]), "chosen_by": "best probe layer (probes stage)"}
    return {"layer": last, "chosen_by": "last layer (no probes stage in this run)"}


def shared_arms(ctx: StageContext, plan: dict[str, Any]) -> list[Arm]:
    """The conditions every question gets: baseline, masking, dims, bypass."""
    seed, width = ctx.config.seed, ctx.vlm.adapter.shape(Tower.LANGUAGE).d_model
    arms = [baseline_arm()]
    for level in ("token", "pixel"):
        config = MaskingConfig(fraction=CAUSAL.fraction, n_random=CAUSAL.n_masks, level=level,
                               seed=seed)  # fmt: skip
        arms += masking_arms(config)
    layer = int(plan["dims"]["layer"])
    arms += dims_arms(layer, width, CAUSAL.fractions, n_draws=CAUSAL.n_dim_draws, seed=seed)
    arms += bypass_arms(range(ctx.vlm.adapter.n_layers))
    return arms


def plan_neuron_arms(plan: dict[str, Any]) -> list[Arm]:
    """The neuron conditions of the evaluation half (none when the ranking was undefined): the
    plain model first, so that the ablations are compared with a baseline of the same batches."""
    neurons = plan["neurons"]
    if "undefined" in neurons:
        return []
    layer = int(neurons["layer"])
    plain = Arm(family="neurons", condition="none", level=f"L{layer}")
    return [plain, *neuron_arms(layer, neurons["targets"], neurons["controls"])]


# ----- summaries -----------------------------------------------------------------------------------
def causal_summary(table: pa.Table, plan: dict[str, Any], *, seed: int = 0) -> dict[str, Any]:
    """Every number of the stage from its per-question rows (one model's): each condition's
    paired change against the baseline on the same questions (exact McNemar, CI, n), the
    controls' distribution and the target's p against them, and each dims point's curve."""
    outcomes = _by_condition(table)
    baseline = outcomes[("baseline", "none", "", 0)]
    n = len(baseline)
    out: dict[str, Any] = {"n": n, "baseline": estimate_json(_accuracy(baseline))}
    out["masking"] = {
        level: {
            which: _study_json(_study(outcomes, baseline, ("masking", which, level), "random"),
                               table)
            for which in ("top", "bottom")
        }
        for level in ("token", "pixel")
    }  # fmt: skip
    out["neurons"] = _neurons_json(outcomes, baseline, plan, table)
    out["dims"] = _dims_json(outcomes, baseline, plan, seed)
    out["bypass"] = {
        level: _study_json(_study(outcomes, baseline, ("bypass", "bypass", level), None), table)
        for (family, _, level, _) in sorted(outcomes) if family == "bypass"
    }  # fmt: skip
    return out


Outcome = dict[int, bool]


def _by_condition(table: pa.Table) -> dict[tuple[str, str, str, int], Outcome]:
    out: dict[tuple[str, str, str, int], Outcome] = {}
    columns = [table[k].to_pylist() for k in (*KEYS, "item", "correct")]
    for family, condition, level, draw, item, correct in zip(*columns, strict=True):
        out.setdefault((family, condition, level, int(draw)), {})[int(item)] = bool(correct)
    return out


def _accuracy(outcome: Outcome) -> Any:
    values = np.array(list(outcome.values()))
    return proportion(int(values.sum()), values.size)


def _aligned(baseline: Outcome, other: Outcome) -> tuple[np.ndarray, np.ndarray]:
    """The baseline and `other` on the items `other` has, in item order."""
    items = sorted(other)
    return np.array([baseline[i] for i in items]), np.array([other[i] for i in items])


def _study(
    outcomes: dict[tuple[str, str, str, int], Outcome],
    baseline: Outcome,
    target: tuple[str, str, str],
    controls: str | None,
) -> tuple[AblationStudy, list[int]]:
    """The study of `target` (draw 0) against the `controls` condition's draws of its family
    and level; also returns the items it rests on."""
    family, _, level = target
    mine = outcomes[(*target, 0)]
    items = sorted(mine)
    draws = sorted(d for (f, c, lv, d) in outcomes if (f, c, lv) == (family, controls, level))
    before, after = _aligned(baseline, mine)
    rest = [[outcomes[(family, str(controls), level, d)][i] for i in items] for d in draws]
    label = f"{family} {target[1]} {level}".strip()
    return summarise_study(before, after, rest, label), items


def _study_json(found: tuple[AblationStudy, list[int]], table: pa.Table) -> dict[str, Any]:
    study, items = found
    changes = np.array([c.estimate for c in study.controls])
    out: dict[str, Any] = {
        "label": study.label,
        "n": int(study.target.n),
        "baseline": estimate_json(study.baseline),
        "change": estimate_json(study.target),
        "by_split": _by_split(study, items, table),
    }
    if len(changes):
        low, high = np.percentile(changes, [2.5, 97.5])
        out["controls"] = {
            "n": len(changes), "mean": float(changes.mean()), "ci_low": float(low),
            "ci_high": float(high), "interval": "central 95% of the control changes",
            "changes": [estimate_json(c) for c in study.controls],
        }  # fmt: skip
        out["p_vs_controls"] = {"estimate": study.p_vs_controls, "n": len(changes)}
    return out


def _by_split(study: AblationStudy, items: list[int], table: pa.Table) -> dict[str, Any]:
    """The target's change within each split (exact McNemar, CI, n)."""
    split_of = dict(zip(table["item"].to_pylist(), table["split"].to_pylist(), strict=True))
    splits = np.array([split_of[i] for i in items])
    return {
        split: estimate_json(mcnemar_exact(study.baseline_correct[mask], study.target_correct[mask]))
        for split in sorted(set(splits))
        for mask in [splits == split]
    }  # fmt: skip


def _neurons_json(outcomes: dict, baseline: Outcome, plan: dict, table: pa.Table) -> dict[str, Any]:
    neurons = {k: v for k, v in plan["neurons"].items() if k != "controls"}
    info = {**neurons, "n_rank": len(plan["rank_items"]), "n_eval": len(plan["eval_items"])}
    if "undefined" in neurons:
        return info
    level = f"L{neurons['layer']}"
    plain = outcomes[("neurons", "none", level, 0)]  # the same batches as the ablations
    return {**info, **_study_json(_study(outcomes, plain, ("neurons", "top", level), "random"),
                                  table)}  # fmt: skip


def _dims_json(outcomes: dict, baseline: Outcome, plan: dict, seed: int) -> dict[str, Any]:
    items = sorted(baseline)
    before = np.array([baseline[i] for i in items])
    zero = {"estimate": 0.0, "ci_low": 0.0, "ci_high": 0.0, "p_value": 1.0, "n": len(items),
            "method": "no dimension zeroed: the baseline itself", "confidence": 0.95}  # fmt: skip
    points = [{"fraction": 0.0, "n_dims": 0, "draws": 0,
               "accuracy": estimate_json(_accuracy(baseline)), "change": zero}]  # fmt: skip
    levels = sorted({lv for (f, _, lv, _) in outcomes if f == "dims"}, key=float)
    for level in levels:
        draws = [outcomes[key] for key in sorted(outcomes) if key[0] == "dims" and key[2] == level]
        dims = [[d[i] for i in items] for d in draws]
        n_dims = max(1, round(float(level) * int(plan["dims"]["d_model"])))
        point = summarise_dimension_point(before, dims, fraction=float(level), n_dims=n_dims,
                                          seed=seed)  # fmt: skip
        points.append({"fraction": point.fraction, "n_dims": n_dims, "draws": len(draws),
                       "accuracy": estimate_json(point.accuracy),
                       "change": estimate_json(point.change)})  # fmt: skip
    return {**plan["dims"], "points": points}
