"""Section: logit lens (the truth margin by layer, where it and the image's effect peak) and the
attention vs MLP shares of the direct logit effect, from the per-question signal records."""

from collections import Counter
from typing import Any

import numpy as np

from ._doc import Figure, Section, Table, absent_section, missing_stage
from ._format import count, est, est_fields, finite, layer, num
from ._lens_layers import NOT_STORED, curve_figure, curve_table, curves, mean_ci
from ._plot import colour, integer_axis, new_figure, png, short_name
from ._rundata import RunData


def median(values: list[Any]) -> float | None:
    x = [float(v) for v in values if finite(v) is not None]
    return float(np.median(x)) if x else None


def lens_rows(run: RunData, model: str) -> dict[str, Any]:
    """One model's logit-lens and share numbers from its signal records."""
    rows = run.rows("signals", model)
    column = {k: [r.get(k) for r in rows] for k in
              ("truth_margin", "truth_peak_layer", "visual_peak_layer", "mlp_share", "correct")}  # fmt: skip
    right = [m for m, c in zip(column["truth_margin"], column["correct"], strict=True) if c]
    wrong = [m for m, c in zip(column["truth_margin"], column["correct"], strict=True) if not c]
    share = mean_ci(column["mlp_share"])
    attention = None if share["estimate"] is None else 1.0 - share["estimate"]
    return {
        "n": len(rows), "layers": run.n_layers(model),
        "truth_peak": median(column["truth_peak_layer"]),
        "visual_peak": median(column["visual_peak_layer"]),
        "margin_right": mean_ci(right), "margin_wrong": mean_ci(wrong),
        "mlp_share": share, "attention_share": attention,
        "peaks": column["truth_peak_layer"], "visual_peaks": column["visual_peak_layer"],
    }  # fmt: skip


def lens_section(run: RunData) -> Section:
    """Median peak layers of the truth margin and of visual integration, the last-layer truth
    margin of right and wrong answers, and the mean MLP vs attention share."""
    key, title = "lens", "Logit lens and attention vs MLP shares"
    if not run.has("signals"):
        return absent_section(key, title, missing_stage("signals"))
    found = {m: lens_rows(run, m) for m in run.models if run.rows("signals", m)}
    if not found:
        return absent_section(key, title, "records/signals.parquet holds no rows.")
    rows, data = [], []
    for model, r in found.items():
        rows.append((model, count(r["n"]), count(r["layers"]), layer(r["truth_peak"]),
                     layer(r["visual_peak"]), est(r["margin_right"]), est(r["margin_wrong"]),
                     est(r["mlp_share"]), num(r["attention_share"])))  # fmt: skip
        data.append({"model": model, "n": r["n"], "layers": r["layers"],
                     "truth_peak_layer_median": r["truth_peak"],
                     "visual_peak_layer_median": r["visual_peak"],
                     **est_fields("truth_margin_correct", r["margin_right"]),
                     **est_fields("truth_margin_wrong", r["margin_wrong"]),
                     **est_fields("mlp_share", r["mlp_share"]),
                     "attention_share": r["attention_share"]})  # fmt: skip
    table = Table(
        key="lens", title="Logit lens and component shares per model",
        columns=("model", "n", "layers", "truth-margin peak layer (median)",
                 "visual-integration peak layer (median)", "last-layer truth margin, right "
                 "[95% CI]", "last-layer truth margin, wrong [95% CI]", "MLP share [95% CI]",
                 "attention share"),
        rows=tuple(rows), data=tuple(data),
        note="Peak layer: the layer of the largest increase of the margin (NaN with fewer than "
        "3 layers). MLP share: sum|MLP| / (sum|MLP| + sum|attention|) of the direct logit "
        "effect on the yes-minus-no direction, mean over questions (t interval); attention "
        "share = 1 - MLP share.",
    )  # fmt: skip
    by_layer = curves(run)
    tables: tuple[Table, ...] = (table,)
    figures: tuple[Figure, ...] = (_figure(found),)
    if by_layer:
        tables, figures = (table, curve_table(by_layer)), (curve_figure(by_layer), *figures)
    return Section(key=key, title=title, tables=tables, figures=figures,
                   notes=() if by_layer else (NOT_STORED,),
                   intro="Where in depth the answer forms, and which component writes it.")  # fmt: skip


def _figure(found: dict[str, dict[str, Any]]) -> Figure:
    fig, axes = new_figure(2, width=4.4)
    peaks, shares = axes
    for i, (model, r) in enumerate(found.items()):
        layers = Counter(int(v) for v in r["peaks"] if finite(v) is not None)
        xs = sorted(layers)
        total = max(sum(layers.values()), 1)
        peaks.plot(xs, [layers[x] / total for x in xs], "o-", color=colour(i),
                   label=short_name(model))  # fmt: skip
        share = r["mlp_share"]
        y, lo, hi = (finite(share.get(k)) for k in ("estimate", "ci_low", "ci_high"))
        if y is not None:
            shares.bar([i], [y], color=colour(i),
                       yerr=[[y - (lo if lo is not None else y)], [(hi if hi is not None else y) - y]],
                       capsize=3)  # fmt: skip
            shares.bar([i], [1 - y], bottom=[y], color=colour(i), alpha=0.3)
    peaks.set_xlabel("layer of the truth margin's largest increase")
    integer_axis(peaks)
    peaks.set_ylabel("share of questions")
    peaks.legend(fontsize=8)
    shares.set_xticks(range(len(found)), [short_name(m) for m in found])
    shares.set_ylim(0, 1)
    shares.set_ylabel("MLP share (solid) / attention (light)")
    return Figure(key="lens", title="Where the truth margin peaks, and the MLP vs attention share",
                  png=png(fig), alt="Left: share of questions whose truth margin rises most at "
                  "each layer, per model. Right: mean MLP share of the direct logit effect with "
                  "95% CI, the attention share stacked above it.")  # fmt: skip
