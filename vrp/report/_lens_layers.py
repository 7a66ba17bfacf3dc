"""The logit-lens truth margin by layer: mean with a t interval per layer, for correct and wrong
answers separately, per model, from the ``truth_margin_by_layer`` list column of the signal
records (value ``j`` is language layer ``j``: the study reads every layer)."""

from typing import Any

import numpy as np
from scipy import stats

from ._doc import Figure, Table
from ._format import count, est, est_fields, finite
from ._plot import colour, integer_axis, new_figure, png, series, short_name
from ._rundata import RunData

COLUMN = "truth_margin_by_layer"
"""The signal records' list column holding each question's truth margin at every layer."""

NOT_STORED = (
    "The run's signal records have no per-layer truth margin (a run written before `vrp run` "
    f"stored the {COLUMN!r} column), so the margin-by-layer curve is left out; the figure shows "
    "where the margins peak. Rerun `vrp run` into a new --out folder for the curve."
)


def mean_ci(values: list[Any], confidence: float = 0.95) -> dict[str, Any]:
    """The mean of the finite `values` with a t interval (as an estimate dict), n counted."""
    x = np.asarray([v for v in values if finite(v) is not None], dtype=float)
    if x.size == 0:
        return {"estimate": None, "ci_low": None, "ci_high": None, "n": 0}
    mean = float(x.mean())
    if x.size < 2 or float(x.std()) == 0.0:
        return {"estimate": mean, "ci_low": None, "ci_high": None, "n": int(x.size)}
    half = float(stats.t.ppf(0.5 + confidence / 2, x.size - 1) * stats.sem(x))
    return {"estimate": mean, "ci_low": mean - half, "ci_high": mean + half, "n": int(x.size),
            "method": "mean, t interval"}  # fmt: skip


Curve = dict[str, list[dict[str, Any]]]
"""``{"correct": [estimate per layer], "wrong": [...]}``: `mean_ci` dicts, layer j at index j."""


def margin_curve(run: RunData, model: str) -> Curve | None:
    """`model`'s truth margin per layer, mean and t interval over its correct and over its wrong
    answers; None when its records do not store the per-layer margin."""
    rows = [r for r in run.rows("signals", model) if isinstance(r.get(COLUMN), list)]
    if not rows:
        return None
    depth = max(len(r[COLUMN]) for r in rows)
    out: Curve = {}
    for group, keep in (("correct", True), ("wrong", False)):
        chosen = [r[COLUMN] for r in rows if bool(r.get("correct")) is keep]
        out[group] = [mean_ci([m[j] for m in chosen if j < len(m)]) for j in range(depth)]
    return out


def curves(run: RunData) -> dict[str, Curve]:
    """Every model's curve, in the run's model order (models without one left out)."""
    found = {m: margin_curve(run, m) for m in run.models}
    return {m: c for m, c in found.items() if c is not None}


def curve_table(found: dict[str, Curve]) -> Table:
    """One row per model and layer: the mean truth margin of correct and of wrong answers."""
    rows, data = [], []
    for model, curve in found.items():
        for j, (right, wrong) in enumerate(zip(curve["correct"], curve["wrong"], strict=True)):
            rows.append((model, f"L{j}", est(right), count(right["n"]), est(wrong),
                         count(wrong["n"])))  # fmt: skip
            data.append({"model": model, "layer": j, **est_fields("truth_margin_correct", right),
                         **est_fields("truth_margin_wrong", wrong)})  # fmt: skip
    return Table(
        key="lens_by_layer", title="Logit-lens truth margin by layer, correct vs wrong answers",
        columns=("model", "layer", "correct answers: mean margin [95% CI]", "n correct",
                 "wrong answers: mean margin [95% CI]", "n wrong"),
        rows=tuple(rows), data=tuple(data),
        note="Truth margin: the logit lens's logit of the correct answer's token minus the best "
        "other token's, after each layer at the answer position (label-dependent: it describes "
        "how the model reaches the truth, not a predictor). Mean over questions with a t "
        "interval; n/a where a group has no question.",
    )  # fmt: skip


def curve_figure(found: dict[str, Curve]) -> Figure:
    """One panel per model: the mean truth margin per layer with its 95% CI band, correct and
    wrong answers."""
    fig, axes = new_figure(len(found), width=4.2)
    for i, (ax, (model, curve)) in enumerate(zip(axes, found.items(), strict=True)):
        for group, style in (("correct", "o-"), ("wrong", "s--")):
            xs, ys, lows, highs = series(enumerate(curve[group]))
            tint = colour(i) if group == "correct" else "#555555"
            ax.fill_between(xs, lows, highs, color=tint, alpha=0.2, lw=0)
            ax.plot(xs, ys, style, color=tint, ms=3, label=f"{group} answers")
        ax.axhline(0.0, color="black", lw=0.8, ls=":")
        ax.set_title(short_name(model), fontsize=10)
        ax.set_xlabel("layer")
        integer_axis(ax)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("logit-lens truth margin (logits)")
    return Figure(key="lens_by_layer", title="Logit-lens truth margin by layer",
                  png=png(fig), alt="Per model: the mean logit-lens truth margin at each layer "
                  "for correct answers (solid) and wrong answers (dashed, grey), each with its "
                  "95% CI band; the dotted line is a margin of 0.")  # fmt: skip
