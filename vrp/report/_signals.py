"""Section: the method comparison, every signal's association with correctness, best first."""

from typing import Any

from ._doc import Figure, Section, Table, absent_section, missing_stage
from ._format import count, est, est_fields, finite, pval
from ._plot import colour, new_figure, png, short_name
from ._rundata import RunData

LABELS = {
    "spatial_entropy": "H_s, spatial entropy (nats)",
    "spatial_entropy_norm": "H_s / log S (normalised)",
    "clusters_dbscan": "C_k, DBSCAN clusters",
    "clusters_components": "C_k, top-30% mass components - 1",
    "early_locking_layer": "early-locking layer",
    "late_rise": "late diffusion (H_s rise)",
    "top_heads_entropy": "H_s of the top-K heads",
    "answer_logprob": "answer log-probability",
    "vocab_entropy": "vocabulary entropy",
    "logit_gap": "top-1 minus top-2 logit",
    "yes_no_margin": "yes-minus-no margin",
    "mlp_share": "MLP share of the direct logit effect",
    "self_consistency": "self-consistency",
}
CAVEATS = {
    "spatial_entropy": "raw nats; the published study mixes raw and normalised H_s",
    "spatial_entropy_norm": "H_s divided by log(number of image tokens)",
    "clusters_dbscan": "DBSCAN (eps 1.5, min_samples 3) on cells >= the 90th percentile; "
    "undefined on small grids",
    "clusters_components": "connected components of the top-30% mass cells, minus 1",
}
BEHAVIOURAL = ("answer_logprob", "vocab_entropy", "logit_gap", "yes_no_margin", "self_consistency")


def cost(name: str, samples: int | None) -> str:
    """Forward passes per question a signal needs: one capture trace gives every signal but
    self-consistency, which samples K answers."""
    if name == "self_consistency":
        return str(samples) if samples is not None else "K"
    return "1"


def ranked(signals: dict[str, Any]) -> list[str]:
    """Signal names, defined ones first by |AUROC - 0.5| (largest first), then undefined."""
    defined = [k for k, v in signals.items() if "auroc" in v]
    defined.sort(key=lambda k: -abs((finite(signals[k]["auroc"].get("estimate")) or 0.5) - 0.5))
    return defined + [k for k in signals if k not in defined]


def methods_section(run: RunData) -> Section:
    """Each signal's point-biserial r and AUROC for correctness (CI, n), best first, with the
    cost in passes per question; the held-out fusion; why a signal is undefined."""
    key, title = "methods", "Method comparison: which signal predicts correctness"
    if not run.has("signals"):
        return absent_section(key, title, missing_stage("signals"))
    rows: list[tuple[str, ...]] = []
    data: list[dict[str, Any]] = []
    for model in run.models:
        summary = run.result(model, "signals") or {}
        signals = summary.get("signals", {})
        for name in ranked(signals):
            rows.append(_row(model, name, signals[name], run.n_samples))
            data.append(_raw(model, name, signals[name], run.n_samples))
        fusion = summary.get("fusion", {})
        rows.append(_fusion_row(model, fusion, run.n_samples))
        data.append({"model": model, "signal": "fused", **est_fields("auroc", fusion.get("auroc")),
                     "undefined": fusion.get("undefined")})  # fmt: skip
    table = Table(
        key="methods", title="Signals against correctness, best first per model",
        columns=("model", "signal", "what", "r [95% CI]", "AUROC [95% CI]", "p (AUROC)", "n",
                 "passes / question", "caveat or why undefined"),
        rows=tuple(rows), data=tuple(data),
        note="r: point-biserial correlation with correctness (Fisher-z CI). AUROC: DeLong CI "
        "(Newcombe's score interval where DeLong degenerates), Mann-Whitney p. Ranked by "
        "|AUROC - 0.5|: a signal below 0.5 predicts errors. Fused: logistic regression on the "
        "z-scored defined signals, AUROC on held-out folds. Label-dependent logit-lens values "
        "(truth margin, visual attribution) are not predictors and are left out.",
    )  # fmt: skip
    return Section(key=key, title=title, tables=(table,), figures=(_figure(run),),
                   intro="Every per-question signal of the study scored as a predictor of "
                   "whether the model's answer is right.")  # fmt: skip


def _row(model: str, name: str, entry: dict[str, Any], samples: int | None) -> tuple[str, ...]:
    label = LABELS.get(name, name)
    if "auroc" not in entry:
        return (model, name, label, "undefined", "undefined", "n/a", count(entry.get("n")),
                cost(name, samples), entry.get("undefined", ""))  # fmt: skip
    auc = entry["auroc"]
    return (model, name, label, est(entry.get("point_biserial")), est(auc),
            pval(auc.get("p_value")), count(auc.get("n")), cost(name, samples),
            CAVEATS.get(name, ""))  # fmt: skip


def _raw(model: str, name: str, entry: dict[str, Any], samples: int | None) -> dict[str, Any]:
    return {"model": model, "signal": name, **est_fields("r", entry.get("point_biserial")),
            **est_fields("auroc", entry.get("auroc")), "passes": cost(name, samples),
            "undefined": entry.get("undefined")}  # fmt: skip


def _fusion_row(model: str, fusion: dict[str, Any], samples: int | None) -> tuple[str, ...]:
    used = fusion.get("signals", [])
    passes = "1" if "self_consistency" not in used else f"1 + {cost('self_consistency', samples)}"
    if "auroc" not in fusion:
        return (model, "fused", "held-out fusion", "", "undefined", "n/a", "", passes,
                fusion.get("undefined", ""))  # fmt: skip
    auc = fusion["auroc"]
    return (model, "fused", f"held-out fusion of {len(used)} signals", "", est(auc),
            pval(auc.get("p_value")), count(auc.get("n")), passes, ", ".join(used))  # fmt: skip


def _figure(run: RunData) -> Figure:
    models = [m for m in run.models if run.result(m, "signals")]
    fig, axes = new_figure(len(models), width=4.6, height=4.2)
    for i, (ax, model) in enumerate(zip(axes, models, strict=True)):
        signals = (run.result(model, "signals") or {}).get("signals", {})
        names = [k for k in ranked(signals) if "auroc" in signals[k]][::-1]
        for y, name in enumerate(names):
            e = signals[name]["auroc"]
            x, lo, hi = (finite(e.get(k)) for k in ("estimate", "ci_low", "ci_high"))
            if x is None:
                continue
            ax.errorbar(x, y, xerr=[[x - (lo if lo is not None else x)],
                                     [(hi if hi is not None else x) - x]],
                        fmt="o", color=colour(i), capsize=2)  # fmt: skip
        ax.axvline(0.5, color="black", lw=0.8, ls=":")
        ax.set_yticks(range(len(names)), names, fontsize=7)
        ax.set_xlim(0, 1)
        ax.set_xlabel("AUROC for correctness (95% CI)")
        ax.set_title(short_name(model), fontsize=10)
    return Figure(key="methods", title="AUROC of each signal for correctness, per model",
                  png=png(fig), alt="Forest plot per model: each defined signal's AUROC with "
                  "its 95% CI, best at the top; the dotted line is chance.")  # fmt: skip
