"""Section: held-out probes per layer with the shuffled-label control, per model."""

from typing import Any

from ._doc import Figure, Section, Table, absent_section, missing_stage
from ._format import count, est, est_fields
from ._plot import CONTROL, colour, integer_axis, new_figure, png, series, short_name
from ._rundata import RunData

EXTRA = {"l1": "L1 logistic (best layer)", "mlp": "MLP probe (best layer)"}


def layer_curve(probes: dict[str, Any], key: str) -> list[tuple[int, dict[str, Any]]]:
    """(layer, estimate) pairs of ``per_layer`` or ``control``, in layer order."""
    values = probes.get(key) or {}
    return sorted(((int(layer), e) for layer, e in values.items()), key=lambda p: p[0])


def probes_section(run: RunData) -> Section:
    """Per-layer probe AUROC with the shuffled-label control, and the probes at the best layer."""
    key, title = "probes", "Hidden-state probes per layer"
    if not run.has("probes"):
        return absent_section(key, title, missing_stage("probes"))
    found = {m: run.result(m, "probes") or {} for m in run.models}
    defined = {m: p for m, p in found.items() if "per_layer" in p}
    rows, data = [], []
    for model, probes in found.items():
        if "per_layer" not in probes:
            rows.append((model, "", "undefined", "", "", probes.get("undefined", "")))
            data.append({"model": model, "undefined": probes.get("undefined")})
            continue
        control = dict(layer_curve(probes, "control"))
        best = probes.get("best_layer")
        for layer, e in layer_curve(probes, "per_layer"):
            rows.append((model, f"L{layer}", est(e), est(control.get(layer)), count(e.get("n")),
                         "best layer" if layer == best else ""))  # fmt: skip
            data.append({"model": model, "layer": layer, "probe": "logistic",
                         **est_fields("auroc", e), **est_fields("control", control.get(layer))})  # fmt: skip
        for name, label in _extras(probes):
            entry = _extra(probes, name)
            rows.append((model, label, est(entry.get("auroc")), est(entry.get("control")),
                         count((entry.get("auroc") or {}).get("n")), ""))  # fmt: skip
            data.append({"model": model, "layer": best, "probe": name,
                         **est_fields("auroc", entry.get("auroc")),
                         **est_fields("control", entry.get("control"))})  # fmt: skip
    table = Table(
        key="probes", title="Probe AUROC for correctness per layer (held out), with the control",
        columns=("model", "layer / probe", "AUROC [95% CI]", "shuffled-label control [95% CI]",
                 "n", ""),
        rows=tuple(rows), data=tuple(data),
        note="Logistic probes on the answer-position hidden state, stratified k-fold CV, every "
        "score on held-out folds. The control refits on shuffled labels: it should sit at 0.5.",
    )  # fmt: skip
    figures = (_figure(defined),) if defined else ()
    return Section(key=key, title=title, tables=(table,), figures=figures,
                   intro="How well a linear read-out of each layer predicts a right answer.")  # fmt: skip


def _extras(probes: dict[str, Any]) -> list[tuple[str, str]]:
    out = [(k, v) for k, v in EXTRA.items() if k in (probes.get("at_best_layer") or {})]
    if "last_layers_concat" in probes:
        layers = probes["last_layers_concat"].get("layers") or []
        out.append(("concat", f"last {len(layers)} layers concatenated"))
    return out


def _extra(probes: dict[str, Any], name: str) -> dict[str, Any]:
    if name == "concat":
        return dict(probes.get("last_layers_concat") or {})
    return dict((probes.get("at_best_layer") or {}).get(name) or {})


def _figure(defined: dict[str, dict[str, Any]]) -> Figure:
    fig, axes = new_figure(len(defined), width=3.8)
    for i, (ax, (model, probes)) in enumerate(zip(axes, defined.items(), strict=True)):
        for key, tint, label in (("control", CONTROL, "shuffled labels"),
                                 ("per_layer", colour(i), "real labels")):  # fmt: skip
            xs, ys, lows, highs = series(layer_curve(probes, key))
            ax.fill_between(xs, lows, highs, color=tint, alpha=0.25, lw=0)
            ax.plot(xs, ys, "o-", color=tint, label=label, ms=3)
        ax.axhline(0.5, color="black", lw=0.8, ls=":")
        ax.set_ylim(0, 1)
        ax.set_xlabel("layer")
        integer_axis(ax)
        ax.set_ylabel("held-out AUROC (95% CI)")
        ax.set_title(short_name(model), fontsize=10)
        ax.legend(fontsize=7, loc="lower right")
    return Figure(key="probes", title="Probe AUROC by layer, with the shuffled-label control band",
                  png=png(fig), alt="Per model: held-out probe AUROC by layer with its 95% CI "
                  "band, and the shuffled-label control's band in grey around 0.5.")  # fmt: skip
