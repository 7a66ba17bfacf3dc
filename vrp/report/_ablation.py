"""Sections: scaled random ablation of hidden dimensions, and the MLP bypass of each layer."""

from typing import Any

from ._doc import Figure, Section, Table, absent_section, missing_stage
from ._format import count, est, est_fields, num, pval
from ._plot import colour, integer_axis, new_figure, png, series, short_name
from ._rundata import RunData


def dims_section(run: RunData) -> Section:
    """Accuracy as growing random shares of a layer's residual dimensions are zeroed."""
    key, title = "dims", "Scaled ablation of hidden dimensions"
    if not run.has("causal"):
        return absent_section(key, title, missing_stage("causal"))
    rows, data, curves = [], [], {}
    for model in run.models:
        dims = (run.result(model, "causal") or {}).get("dims") or {}
        points = dims.get("points") or []
        if points:
            curves[model] = points
        for p in points:
            change = p.get("change") or {}
            rows.append((model, f"L{dims.get('layer')}", num(p.get("fraction")),
                         count(p.get("n_dims")), count(p.get("draws")), est(p.get("accuracy")),
                         est(change, signed=True), pval(change.get("p_value")),
                         count(change.get("n"))))  # fmt: skip
            data.append({"model": model, "layer": dims.get("layer"), "fraction": p.get("fraction"),
                         "n_dims": p.get("n_dims"), "draws": p.get("draws"),
                         **est_fields("accuracy", p.get("accuracy")),
                         **est_fields("change", change)})  # fmt: skip
    notes = tuple(_layer_note(m, (run.result(m, "causal") or {}).get("dims") or {}) for m in curves)
    table = Table(
        key="dims", title="Accuracy with a random share of one layer's residual dimensions zeroed",
        columns=("model", "layer", "fraction zeroed", "dimensions", "draws", "accuracy [95% CI]",
                 "change vs baseline [95% CI]", "p", "n"),
        rows=tuple(rows), data=tuple(data),
        note="Each fraction is drawn several times; the change is paired with the baseline on "
        "the same questions (permutation p, bootstrap CI). Fraction 0 is the baseline itself.",
    )  # fmt: skip
    figures = (_dims_figure(curves),) if curves else ()
    return Section(key=key, title=title, tables=(table,), figures=figures, notes=notes,
                   intro="A distributed code degrades gracefully; a bottleneck falls off early.")  # fmt: skip


def _layer_note(model: str, dims: dict[str, Any]) -> str:
    return f"{model}: layer {dims.get('layer')} chosen as the {dims.get('chosen_by', '?')}."


def _dims_figure(curves: dict[str, list[dict[str, Any]]]) -> Figure:
    fig, (ax,) = new_figure(1, width=5.5)
    for i, (model, points) in enumerate(curves.items()):
        xs, ys, lows, highs = series((float(p["fraction"]), p.get("accuracy")) for p in points
                                     if p.get("fraction") is not None)  # fmt: skip
        ax.fill_between(xs, lows, highs, color=colour(i), alpha=0.2, lw=0)
        ax.plot(xs, ys, "o-", color=colour(i), label=short_name(model))
    ax.axhline(0.5, color="black", lw=0.8, ls=":")
    ax.set_xlabel("share of residual dimensions zeroed")
    ax.set_ylabel("accuracy (95% CI)")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    return Figure(key="dims", title="Scaled ablation curves with 95% CI bands", png=png(fig),
                  alt="Accuracy against the share of zeroed residual dimensions, one curve per "
                  "model with its 95% CI band; dotted line at chance.")  # fmt: skip


def bypass_section(run: RunData) -> Section:
    """The accuracy change when each layer's MLP output is zeroed."""
    key, title = "bypass", "MLP bypass by layer"
    if not run.has("causal"):
        return absent_section(key, title, missing_stage("causal"))
    rows, data, curves = [], [], {}
    for model in run.models:
        bypass = (run.result(model, "causal") or {}).get("bypass") or {}
        ordered = sorted(bypass.items(), key=lambda kv: _layer(kv[0]))
        if ordered:
            curves[model] = [(_layer(k), v.get("change")) for k, v in ordered]
        for level, study in ordered:
            change = study.get("change") or {}
            rows.append((model, level, est(study.get("baseline")), est(change, signed=True),
                         pval(change.get("p_value")), count(change.get("n"))))  # fmt: skip
            data.append({"model": model, "layer": _layer(level),
                         **est_fields("baseline", study.get("baseline")),
                         **est_fields("change", change)})  # fmt: skip
    table = Table(
        key="bypass", title="Accuracy change with one layer's MLP output zeroed",
        columns=("model", "layer", "baseline accuracy [95% CI]", "accuracy change [95% CI]",
                 "McNemar p", "n"),
        rows=tuple(rows), data=tuple(data),
        note="Paired with the baseline on the same questions: Agresti-Min CI, exact McNemar p.",
    )  # fmt: skip
    figures = (_bypass_figure(curves),) if curves else ()
    return Section(key=key, title=title, tables=(table,), figures=figures,
                   intro="Which layers' MLPs the answer depends on.")  # fmt: skip


def _layer(level: str) -> int:
    digits = "".join(ch for ch in str(level) if ch.isdigit())
    return int(digits) if digits else -1


def _bypass_figure(curves: dict[str, list[tuple[int, Any]]]) -> Figure:
    fig, (ax,) = new_figure(1, width=5.5)
    for i, (model, points) in enumerate(curves.items()):
        xs, ys, lows, highs = series(points)
        offset = (i - (len(curves) - 1) / 2) * 0.1
        ax.errorbar([x + offset for x in xs], ys,
                    yerr=[[y - lo for y, lo in zip(ys, lows, strict=True)],
                          [hi - y for y, hi in zip(ys, highs, strict=True)]],
                    fmt="o-", capsize=2, color=colour(i), label=short_name(model))  # fmt: skip
    ax.axhline(0, color="black", lw=0.8, ls=":")
    ax.set_xlabel("layer whose MLP is bypassed")
    integer_axis(ax)
    ax.set_ylabel("accuracy change (95% CI)")
    ax.legend(fontsize=8)
    return Figure(key="bypass", title="MLP bypass: accuracy change by layer", png=png(fig),
                  alt="Accuracy change with 95% CI when each layer's MLP output is zeroed, one "
                  "line per model.")  # fmt: skip
