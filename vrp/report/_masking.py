"""Sections: attention-guided masking (top / bottom / random, token and pixel level) and the
ablation of the top-k probe neurons against random sets of k."""

from typing import Any

from ._doc import Figure, Section, Table, absent_section, missing_stage
from ._format import count, est, est_fields, finite, pval
from ._plot import CONTROL, colour, interval, new_figure, png, short_name
from ._rundata import RunData

LEVELS = ("token", "pixel")
MASKS = ("top", "bottom")


def controls_text(study: dict[str, Any]) -> str:
    """The random controls' mean change and central 95% interval: "-0.031 [-0.066, +0.000]"."""
    controls = study.get("controls")
    if not controls:
        return "n/a"
    centre = {"estimate": controls.get("mean"), "ci_low": controls.get("ci_low"),
              "ci_high": controls.get("ci_high")}  # fmt: skip
    return f"{est(centre, signed=True)} ({count(controls.get('n'))} draws)"


def _study_row(model: str, where: str, which: str, study: dict[str, Any]) -> tuple[str, ...]:
    change = study.get("change") or {}
    vs = study.get("p_vs_controls") or {}
    return (model, where, which, est(study.get("baseline")), est(change, signed=True),
            pval(change.get("p_value")), count(change.get("n")), controls_text(study),
            pval(vs.get("estimate")))  # fmt: skip


def _study_raw(model: str, where: str, which: str, study: dict[str, Any]) -> dict[str, Any]:
    controls = study.get("controls") or {}
    return {"model": model, "level": where, "condition": which,
            **est_fields("baseline", study.get("baseline")),
            **est_fields("change", study.get("change")),
            "controls_mean": finite(controls.get("mean")),
            "controls_low": finite(controls.get("ci_low")),
            "controls_high": finite(controls.get("ci_high")), "controls_n": controls.get("n"),
            "p_vs_controls": finite((study.get("p_vs_controls") or {}).get("estimate"))}  # fmt: skip


STUDY_COLUMNS = ("model", "level", "condition", "baseline accuracy [95% CI]",
                 "accuracy change [95% CI]", "McNemar p", "n",
                 "random controls: mean change [central 95%]", "p vs controls")  # fmt: skip


def masking_section(run: RunData) -> Section:
    """Top- and bottom-attended 30% masks against random masks, at both levels."""
    key, title = "masking", "Attention-guided masking"
    if not run.has("causal"):
        return absent_section(key, title, missing_stage("causal"))
    rows, data, split_rows = [], [], []
    for model in run.models:
        masking = (run.result(model, "causal") or {}).get("masking") or {}
        for level in LEVELS:
            for which in MASKS:
                study = (masking.get(level) or {}).get(which)
                if not study:
                    continue
                rows.append(_study_row(model, level, which, study))
                data.append(_study_raw(model, level, which, study))
                for split, e in (study.get("by_split") or {}).items():
                    split_rows.append((model, level, which, split, est(e, signed=True),
                                       pval(e.get("p_value")), count(e.get("n"))))  # fmt: skip
    table = Table(
        key="masking", title="Accuracy change when 30% of the image patches are masked",
        columns=STUDY_COLUMNS, rows=tuple(rows), data=tuple(data),
        note="Paired change against the unmasked baseline on the same questions: Agresti-Min "
        "CI, exact McNemar p. Token level: projected image tokens replaced by their mean; pixel "
        "level: cells painted grey. Controls: random 30% masks; 'p vs controls' is the rank of "
        "the target's change among them.",
    )  # fmt: skip
    by_split = Table(
        key="masking_by_split", title="Masking: the change within each split",
        columns=("model", "level", "condition", "split", "accuracy change [95% CI]",
                 "McNemar p", "n"), rows=tuple(split_rows),
        data=tuple(dict(zip(("model", "level", "condition", "split", "change", "p", "n"), r,
                            strict=True)) for r in split_rows),
    )  # fmt: skip
    return Section(key=key, title=title, tables=(table, by_split), figures=(_masking_figure(run),),
                   intro="Is the attended region causally needed? Masking the most-attended "
                   "patches should hurt more than the least-attended or random ones.")  # fmt: skip


def _masking_figure(run: RunData) -> Figure:
    models = [m for m in run.models if run.result(m, "causal")]
    fig, axes = new_figure(len(models), width=3.6)
    for i, (ax, model) in enumerate(zip(axes, models, strict=True)):
        masking = (run.result(model, "causal") or {}).get("masking") or {}
        for x, level in enumerate(LEVELS):
            studies = masking.get(level) or {}
            randoms = ((studies.get("top") or {}).get("controls") or {}).get("changes") or []
            values = [finite(c.get("estimate")) for c in randoms]
            ax.plot([x] * len(values), values, "_", color=CONTROL, ms=14,
                    label="random" if x == 0 else None)  # fmt: skip
            for dx, which, tint in ((-0.2, "top", colour(i)), (0.2, "bottom", "#555555")):
                b = interval((studies.get(which) or {}).get("change"))
                if b is not None:
                    ax.errorbar(x + dx, b[0], yerr=[[b[0] - b[1]], [b[2] - b[0]]], capsize=3,
                                fmt="o" if which == "top" else "s", color=tint,
                                label=which if x == 0 else None)  # fmt: skip
        ax.axhline(0, color="black", lw=0.8, ls=":")
        ax.set_xticks(range(len(LEVELS)), LEVELS)
        ax.set_xlim(-0.6, len(LEVELS) - 0.4)
        ax.set_ylabel("accuracy change (95% CI)")
        ax.set_title(short_name(model), fontsize=10)
        ax.legend(fontsize=7)
    return Figure(key="masking", title="Masking: top vs bottom vs random 30% masks",
                  png=png(fig), alt="Per model and level: the accuracy change of the top- and "
                  "bottom-attended masks with 95% CIs, random masks as grey ticks.")  # fmt: skip


def neurons_section(run: RunData) -> Section:
    """The top-k probe neurons of a layer ablated, against random sets of k."""
    key, title = "neurons", "Neuron ablation: top-k probe neurons vs random k"
    if not run.has("causal"):
        return absent_section(key, title, missing_stage("causal"))
    rows: list[tuple[str, ...]] = []
    data: list[dict[str, Any]] = []
    drawn: dict[str, dict[str, Any]] = {}
    for model in run.models:
        neurons = (run.result(model, "causal") or {}).get("neurons") or {}
        where = f"L{neurons.get('layer')} k={neurons.get('k')}"
        if "change" not in neurons:
            reason = neurons.get("undefined", "no neuron result in the run")
            rows.append((model, where, "top-k", "", "undefined", "", "", "", "", reason))
            data.append({"model": model, "layer": neurons.get("layer"), "undefined": reason})
            continue
        drawn[model] = neurons
        rows.append((*_study_row(model, where, "top-k", neurons),
                     f"ranked on {count(neurons.get('n_rank'))} questions, tested on "
                     f"{count(neurons.get('n_eval'))}; layer: {neurons.get('chosen_by', '')}"))  # fmt: skip
        data.append({**_study_raw(model, where, "top-k", neurons), "layer": neurons.get("layer"),
                     "k": neurons.get("k"), "n_rank": neurons.get("n_rank"),
                     "n_eval": neurons.get("n_eval")})  # fmt: skip
    table = Table(
        key="neurons", title="Ablating the top-k probe neurons vs k random neurons",
        columns=(*STUDY_COLUMNS, "design"), rows=tuple(rows), data=tuple(data),
        note="Neurons ranked by a correctness probe on one half of the images and ablated "
        "(zeroed, every position) on the other half only. Controls: random sets of k neurons of "
        "the same layer.",
    )  # fmt: skip
    figures = (_neurons_figure(drawn),) if drawn else ()
    return Section(key=key, title=title, tables=(table,), figures=figures,
                   intro="Is correctness carried by a few neurons (a late bottleneck)?")  # fmt: skip


def _neurons_figure(drawn: dict[str, dict[str, Any]]) -> Figure:
    fig, axes = new_figure(len(drawn), width=3.6)
    for i, (ax, (model, neurons)) in enumerate(zip(axes, drawn.items(), strict=True)):
        changes = [
            finite(c.get("estimate")) for c in (neurons.get("controls") or {}).get("changes") or []
        ]
        values = [c for c in changes if c is not None]
        if values:
            ax.hist(values, bins=min(12, max(3, len(values) // 2)), color=CONTROL,
                    label=f"random k ({len(values)} draws)")  # fmt: skip
        top = finite((neurons.get("change") or {}).get("estimate"))
        if top is not None:
            ax.axvline(top, color=colour(i), lw=2, label="top-k")
        ax.axvline(0, color="black", lw=0.8, ls=":")
        ax.set_xlabel("accuracy change")
        ax.set_ylabel("random draws")
        ax.set_title(f"{short_name(model)} L{neurons.get('layer')}", fontsize=10)
        ax.legend(fontsize=7)
    return Figure(key="neurons", title="Top-k neurons against the distribution of random k",
                  png=png(fig), alt="Per model: histogram of the accuracy changes of random "
                  "k-neuron ablations, with the top-k ablation's change as a vertical line.")  # fmt: skip
