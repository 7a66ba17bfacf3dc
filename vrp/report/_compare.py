"""`compare_runs`: two run directories side by side, with paired differences (run B minus run
A) on the questions both runs answered, matched by model, split and question id.

Accuracy under each condition: exact McNemar (`vrp.stats.mcnemar_exact`) on the shared
questions. Signals: each run's AUROC as it reported it, and the paired-bootstrap difference on
the shared questions. Probes and localisation: side by side (the runs store no per-question
probe scores, so those differences carry no paired CI).
"""

from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from ..core import DataError
from ..stats import mcnemar_exact
from ._doc import Document, Section, Table
from ._format import count, est, est_fields, pval
from ._paired import auroc_difference, matched
from ._report import run_facts
from ._rundata import RunData, read_run
from ._write import ReportFiles, check_out, write_document

CAUSAL_CONDITIONS = (
    ("masking", "top", "token"), ("masking", "bottom", "token"),
    ("masking", "top", "pixel"), ("masking", "bottom", "pixel"),
)  # fmt: skip


def _accuracy_pair(a: list[Any], b: list[Any]) -> tuple[str, str, str, str, dict[str, Any]]:
    """Accuracy of A and of B on the shared questions, B - A with McNemar."""
    before, after = np.asarray(a, bool), np.asarray(b, bool)
    if before.size == 0:
        return "n/a", "n/a", "n/a", "n/a", {}
    change = asdict(mcnemar_exact(before, after))
    return (f"{before.mean():.3f}", f"{after.mean():.3f}", est(change, signed=True),
            pval(change["p_value"]), change)  # fmt: skip


def accuracy_table(a: RunData, b: RunData, models: list[str]) -> Table:
    rows, data = [], []
    for model in models:
        rows_a, rows_b = a.rows("accuracy", model), b.rows("accuracy", model)
        for split in sorted({str(r.get("split")) for r in rows_a}):
            mine = [r for r in rows_a if r.get("split") == split]
            theirs = [r for r in rows_b if r.get("split") == split]
            shared, ca, cb = matched(mine, theirs, "correct")
            acc_a, acc_b, diff, p, change = _accuracy_pair(ca, cb)
            rows.append((model, split, count(len(shared)), acc_a, acc_b, diff, p))
            data.append({"model": model, "split": split, "shared": len(shared),
                         "accuracy_a": acc_a, "accuracy_b": acc_b,
                         **est_fields("difference", change)})  # fmt: skip
    return Table(key="compare_accuracy", title="Accuracy on the shared questions, B - A",
                 columns=("model", "split", "shared questions", "accuracy A", "accuracy B",
                          "B - A [95% CI]", "exact McNemar p"),
                 rows=tuple(rows), data=tuple(data),
                 note="Questions matched by model, split and question id; paired difference "
                 "with the Agresti-Min CI and the exact McNemar p (vrp.stats.mcnemar_exact).")  # fmt: skip


def signals_table(a: RunData, b: RunData, models: list[str], seed: int) -> Table:
    rows, data = [], []
    for model in models:
        sig_a = (a.result(model, "signals") or {}).get("signals") or {}
        sig_b = (b.result(model, "signals") or {}).get("signals") or {}
        rows_a, rows_b = a.rows("signals", model), b.rows("signals", model)
        for name in [k for k in sig_a if k in sig_b]:
            diff, why = _signal_difference(rows_a, rows_b, name, seed)
            rows.append((model, name, est(sig_a[name].get("auroc")), est(sig_b[name].get("auroc")),
                         est(diff, signed=True) if diff else "undefined",
                         pval((diff or {}).get("p_value")), count((diff or {}).get("n")), why))  # fmt: skip
            data.append({"model": model, "signal": name, **est_fields("auroc_a", sig_a[name].get("auroc")),
                         **est_fields("auroc_b", sig_b[name].get("auroc")),
                         **est_fields("difference", diff), "undefined": why or None})  # fmt: skip
    return Table(key="compare_signals", title="Signal AUROC for correctness, B - A",
                 columns=("model", "signal", "AUROC A [95% CI]", "AUROC B [95% CI]",
                          "B - A on shared questions [95% CI]", "p", "shared questions",
                          "why undefined"),
                 rows=tuple(rows), data=tuple(data),
                 note="AUROC A and B: as each run reported them (all its questions). The "
                 "difference is recomputed on the shared questions, each run with its own "
                 "correctness labels, with a paired bootstrap (2,000 resamples).")  # fmt: skip


def _signal_difference(
    rows_a: list[dict[str, Any]], rows_b: list[dict[str, Any]], name: str, seed: int
) -> tuple[dict[str, Any] | None, str]:
    shared, sa, sb = matched(rows_a, rows_b, name)
    _, ya, yb = matched(rows_a, rows_b, "correct")
    try:
        diff = auroc_difference([np.nan if v is None else v for v in sa], ya,
                                [np.nan if v is None else v for v in sb], yb, seed=seed)  # fmt: skip
    except DataError as err:
        return None, str(err)
    return asdict(diff), ""


def probes_table(a: RunData, b: RunData, models: list[str]) -> Table:
    rows, data = [], []
    for model in models:
        pa_, pb_ = a.result(model, "probes") or {}, b.result(model, "probes") or {}
        ea = (pa_.get("per_layer") or {}).get(str(pa_.get("best_layer")))
        eb = (pb_.get("per_layer") or {}).get(str(pb_.get("best_layer")))
        rows.append((model, f"L{pa_.get('best_layer')}", est(ea), f"L{pb_.get('best_layer')}",
                     est(eb)))  # fmt: skip
        data.append({"model": model, "best_layer_a": pa_.get("best_layer"),
                     **est_fields("auroc_a", ea), "best_layer_b": pb_.get("best_layer"),
                     **est_fields("auroc_b", eb)})  # fmt: skip
    return Table(key="compare_probes", title="Best probe layer and its held-out AUROC",
                 columns=("model", "best layer A", "AUROC A [95% CI]", "best layer B",
                          "AUROC B [95% CI]"), rows=tuple(rows), data=tuple(data),
                 note="Side by side: the runs keep no per-question probe scores, so no paired "
                 "difference is computed.")  # fmt: skip


def _condition(rows: list[dict[str, Any]], want: tuple[str, str, str]) -> list[dict[str, Any]]:
    """The rows of one causal condition's target (draw 0)."""
    return [r for r in rows
            if (r.get("family"), r.get("condition"), r.get("level"), r.get("draw")) == (*want, 0)]  # fmt: skip


def causal_table(a: RunData, b: RunData, models: list[str]) -> Table:
    rows, data = [], []
    for model in models:
        rows_a, rows_b = a.rows("causal", model), b.rows("causal", model)
        layers = sorted({str(r.get("level")) for r in rows_a if r.get("family") == "neurons"})
        for family, condition, level in (
            *CAUSAL_CONDITIONS,
            *(("neurons", "top", lv) for lv in layers),
        ):
            want = (family, condition, level)
            shared, ca, cb = matched(_condition(rows_a, want), _condition(rows_b, want), "correct")
            if not shared:
                continue
            acc_a, acc_b, diff, p, change = _accuracy_pair(ca, cb)
            label = f"{family} {condition} ({level})"
            rows.append((model, label, count(len(shared)), acc_a, acc_b, diff, p))
            data.append({"model": model, "condition": label, "shared": len(shared),
                         "accuracy_a": acc_a, "accuracy_b": acc_b,
                         **est_fields("difference", change)})  # fmt: skip
    return Table(key="compare_causal", title="Accuracy under each intervention, B - A",
                 columns=("model", "condition", "shared questions", "accuracy A", "accuracy B",
                          "B - A [95% CI]", "exact McNemar p"),
                 rows=tuple(rows), data=tuple(data),
                 note="Correctness under the same intervention in both runs, on the shared "
                 "questions (exact McNemar).")  # fmt: skip


def compare_document(a: RunData, b: RunData, *, seed: int = 0) -> Document:
    """The comparison of run A and run B, in memory."""
    models = [m for m in a.models if m in b.models]
    if not models:
        raise DataError(
            f"{a.root} and {b.root} share no model ({list(a.models)} vs {list(b.models)}): "
            "expected at least one model in both runs. Compare runs of the same model(s)."
        )
    only = sorted(set(a.models) ^ set(b.models))
    sections = []
    for stage, title, build in (
        ("accuracy", "Accuracy", lambda: accuracy_table(a, b, models)),
        ("signals", "Signals", lambda: signals_table(a, b, models, seed)),
        ("probes", "Probes", lambda: probes_table(a, b, models)),
        ("causal", "Interventions", lambda: causal_table(a, b, models)),
    ):  # fmt: skip
        if a.has(stage) and b.has(stage):
            sections.append(Section(key=stage, title=title, tables=(build(),)))
        else:
            missing = " and ".join(str(r.root) for r in (a, b) if not r.has(stage))
            sections.append(Section(key=stage, title=title, absent=f"{missing} did not run the "
                                    f"{stage!r} stage, so there is nothing to compare."))  # fmt: skip
    facts = [("run A", str(a.root)), ("run B", str(b.root)), ("models compared", ", ".join(models))]
    if only:
        facts.append(("in one run only (not compared)", ", ".join(only)))
    facts += [(f"A: {k}", v) for k, v in run_facts(a)[1:4]]
    facts += [(f"B: {k}", v) for k, v in run_facts(b)[1:4]]
    return Document(title=f"VRP run comparison: {a.root.name} vs {b.root.name}",
                    facts=tuple(facts), sections=tuple(sections))  # fmt: skip


def compare_runs(
    run_a: Path | str, run_b: Path | str, out: Path | str | None = None
) -> ReportFiles:
    """Compares two finished runs (B minus A) and writes the comparison's files.

    Args:
      run_a: the first run directory.
      run_b: the second run directory.
      out: the HTML file to write (default ``compare.html`` in `run_a`'s parent folder); its
        Markdown and CSV files go beside it, as for `build_report`.

    Returns:
      The paths written.

    Raises:
      ConfigError: a folder is not a run directory, or `out` is not an .html path.
      DataError: a run is unfinished, the runs share no model, or question ids repeat within a
        split. Nothing is written on any error.
    """
    target = check_out(Path(out) if out is not None else Path(run_a).parent / "compare.html")
    a, b = read_run(run_a), read_run(run_b)
    seed = int(a.config.get("seed") or 0)
    return write_document(compare_document(a, b, seed=seed), target)
