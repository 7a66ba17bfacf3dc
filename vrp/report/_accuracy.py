"""Section: accuracy and POPE metrics per split and model."""

from typing import Any

from ._doc import Figure, Section, Table, absent_section, missing_stage
from ._format import count, est, est_fields, finite, num
from ._plot import colour, new_figure, png, short_name
from ._rundata import RunData

METRICS = ("accuracy", "precision", "recall", "f1", "yes_ratio")
LABELS = {"accuracy": "accuracy", "precision": "precision", "recall": "recall", "f1": "F1",
          "yes_ratio": "yes-ratio"}  # fmt: skip


def accuracy_section(run: RunData) -> Section:
    """POPE's accuracy, precision, recall, F1 and yes-ratio per split (Wilson / bootstrap CIs);
    exact-match accuracy, MAE and unparsed answers for counting."""
    key, title = "accuracy", "Accuracy and POPE metrics"
    if not run.has("accuracy"):
        return absent_section(key, title, missing_stage("accuracy"))
    splits = {m: (run.result(m, "accuracy") or {}).get("splits", {}) for m in run.models}
    rows, data = [], []
    for model, by_split in splits.items():
        for split, metrics in by_split.items():
            rows.append((model, split, count(metrics.get("n")),
                         *(est(metrics.get(m)) for m in METRICS),
                         num(metrics.get("mae")) if "mae" in metrics else "",
                         count(metrics.get("n_unparsed")) if "n_unparsed" in metrics else ""))  # fmt: skip
            raw: dict[str, Any] = {"model": model, "split": split, "n": metrics.get("n")}
            for m in METRICS:
                raw.update(est_fields(m, metrics.get(m)))
            raw.update(mae=finite(metrics.get("mae")), n_unparsed=metrics.get("n_unparsed"))
            data.append(raw)
    table = Table(
        key="accuracy", title="Accuracy and POPE metrics per split (95% CI)",
        columns=("model", "split", "n", *(f"{LABELS[m]} [95% CI]" for m in METRICS),
                 "MAE (counting)", "unparsed (counting)"),
        rows=tuple(rows), data=tuple(data),
        note="Accuracy, precision, recall and yes-ratio: Wilson intervals; F1: bootstrap. "
        "Precision and recall take 'yes' as the positive class; counting is exact match.",
    )  # fmt: skip
    return Section(key=key, title=title, tables=(table,), figures=(_figure(splits),),
                   intro="How often each model answers right, per split.")  # fmt: skip


def _figure(splits: dict[str, dict[str, Any]]) -> Figure:
    fig, (ax,) = new_figure(1, width=7.0, height=3.4)
    names = sorted({s for by_split in splits.values() for s in by_split}, key=_split_order)
    width = 0.8 / max(len(splits), 1)
    for i, (model, by_split) in enumerate(splits.items()):
        xs: list[float] = []
        ys: list[float] = []
        errs: list[list[float]] = [[], []]
        for j, split in enumerate(names):
            e = by_split.get(split, {}).get("accuracy") or {}
            y, lo, hi = (finite(e.get(k)) for k in ("estimate", "ci_low", "ci_high"))
            if y is None:
                continue
            xs.append(j + (i - (len(splits) - 1) / 2) * width)
            ys.append(y)
            errs[0].append(y - (lo if lo is not None else y))
            errs[1].append((hi if hi is not None else y) - y)
        ax.bar(xs, ys, width=width, yerr=errs, capsize=3, color=colour(i),
               label=short_name(model))  # fmt: skip
    ax.axhline(0.5, color="black", lw=0.8, ls=":")
    ax.set_xticks(range(len(names)), names)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy (95% CI)")
    ax.legend(fontsize=8, loc="upper right")
    return Figure(key="accuracy", title="Accuracy per split and model (95% Wilson CI)",
                  png=png(fig), alt="Bar chart of accuracy per split, one bar per model, with "
                  "95% confidence intervals; the dotted line is chance (0.5).")  # fmt: skip


def _split_order(split: str) -> tuple[int, str]:
    known = ("random", "popular", "adversarial", "spatial", "counting")
    return (known.index(split) if split in known else len(known), split)
