"""Every number in the report's tables comes from the run's files: the values shown equal the
results JSON (and, for the few numbers computed from per-question records, an independent
recomputation from the Parquet records), in the report's formats."""

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from scipy import stats

from vrp.report import ReportFiles

from .markdown import tables

NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?")
TEXT_COLUMNS = {"model", "signal", "what", "caveat or why undefined", "finding", "criterion",
                "reason", "design", "split", "level", "condition", "corruption", "component",
                "positions", "verdict", "in kind", ""}  # fmt: skip
PUBLISHED = [0.001, -0.034, 0.036, -0.012, -0.047, 0.024, -8.2, -11.3, 0.429, 0.78, 0.81, 0.79,
             0.956, 0.738, 0.971, -2.0, 0.0, -1.0, 2.0, 24, 32, 14, 18, 27, 28, 82.1, 47.6,
             68.2, 10, 49, 56, 0.001]  # fmt: skip
"""The published study's headline values (../shared/vrp-methods.md), as the report prints them."""


def _leaves(value: Any) -> list[float]:
    if isinstance(value, dict):
        keys = [float(d) for k in value for d in re.findall(r"\d+", str(k))]
        return keys + [x for v in value.values() for x in _leaves(v)]
    if isinstance(value, list):
        return [float(len(value))] + [x for v in value for x in _leaves(v)]
    if isinstance(value, bool) or not isinstance(value, int | float):
        return []
    return [float(value)] if np.isfinite(value) else []


def _recomputed(run: Path) -> list[float]:
    """The record-derived numbers, recomputed here: medians of the peak layers, means (t CI)
    of the MLP share and of the truth margin of right and wrong answers (at the last layer and
    at every layer), per model."""
    table = pq.read_table(run / "records" / "signals.parquet").to_pylist()
    out: list[float] = []
    for model in {r["model"] for r in table}:
        rows = [r for r in table if r["model"] == model]
        for column in ("truth_peak_layer", "visual_peak_layer"):
            values = [r[column] for r in rows if r[column] == r[column]]
            out += [float(np.median(values))] if values else []
        for column, keep in (("mlp_share", lambda r: True), ("truth_margin", lambda r: r["correct"]),
                             ("truth_margin", lambda r: not r["correct"])):  # fmt: skip
            x = np.array([r[column] for r in rows if keep(r)], dtype=float)
            out += _mean_ci(x)
        for right in (True, False):  # the truth margin by layer, correct and wrong answers
            curves = np.array([r["truth_margin_by_layer"] for r in rows if r["correct"] is right])
            for j in range(curves.shape[1] if curves.size else 0):
                out += _mean_ci(curves[:, j]) + [float(j)]
    return out


def _mean_ci(x: np.ndarray) -> list[float]:
    """Mean, t interval ends, 1 - mean and n of `x` (nothing when it is empty)."""
    if not x.size:
        return []
    half = stats.t.ppf(0.975, x.size - 1) * stats.sem(x) if x.size > 1 else 0.0
    return [x.mean(), x.mean() - half, x.mean() + half, 1 - x.mean(), float(x.size)]


def _forms(value: float) -> set[str]:
    forms = {f"{value:.3f}", f"{value:.2g}", f"{100 * value:.1f}", f"{value:g}"}
    if float(value).is_integer():
        forms.add(str(int(value)))
    return {f.lstrip("+") for f in forms} | {f.lstrip("+").replace("-", "", 1) for f in forms
                                             if f.startswith("-0.0") and set(f[1:]) <= {"0", "."}}  # fmt: skip


@pytest.fixture(scope="module")
def sources(tiny_run: Path) -> set[str]:
    files = [*tiny_run.glob("results/*/*.json"), tiny_run / "config.json"]
    values = [x for path in files for x in _leaves(json.loads(path.read_text()))]
    values += _recomputed(tiny_run) + PUBLISHED
    published = {f"{v:.1f}".lstrip("+") for v in PUBLISHED}  # "-2.0 pp" as the paper writes it
    return {form for v in values for form in _forms(v)} | published


def test_every_number_in_the_tables_is_a_value_of_the_run(tiny_report: ReportFiles,
                                                          sources: set[str]) -> None:  # fmt: skip
    found = tables(tiny_report.markdown)
    assert len(found) >= 12
    checked, untraced = 0, []
    for title, rows in found.items():
        if title == "Warnings":
            continue  # prose with counts, tested in test_report_planted
        for row in rows:
            for column, text in row.items():
                if column in TEXT_COLUMNS:
                    continue
                for token in NUMBER.findall(text):
                    checked += 1
                    if token.lstrip("+") not in sources:
                        untraced.append(f"{title} / {column}: {token!r} in {text!r}")
    assert checked > 500
    assert not untraced, "\n".join(untraced[:20])


def _fmt(e: dict[str, Any]) -> str:
    return f"{e['estimate']:.3f} [{e['ci_low']:.3f}, {e['ci_high']:.3f}]"


def test_method_table_rows_equal_the_signals_json(tiny_run: Path, tiny_report: ReportFiles) -> None:
    rows = tables(tiny_report.markdown)["Signals against correctness, best first per model"]
    for model in ("tiny/llava", "tiny/qwen2_vl"):
        summary = json.loads((tiny_run / "results" / model.replace("/", "--") /
                              "signals.json").read_text())  # fmt: skip
        mine = [r for r in rows if r["model"] == model]
        defined = {k: v for k, v in summary["signals"].items() if "auroc" in v}
        for name, entry in summary["signals"].items():
            (row,) = [r for r in mine if r["signal"] == name]
            if name in defined:
                assert row["AUROC [95% CI]"] == _fmt(entry["auroc"])
                assert row["r [95% CI]"] == _fmt(entry["point_biserial"])
                assert row["n"] == str(entry["auroc"]["n"])
            else:
                assert row["AUROC [95% CI]"] == "undefined"
                assert row["caveat or why undefined"] == entry["undefined"]
        distance = [abs(defined[r["signal"]]["auroc"]["estimate"] - 0.5) for r in mine
                    if r["signal"] in defined]  # fmt: skip
        assert distance == sorted(distance, reverse=True)  # best first
        assert mine[-1]["signal"] == "fused"
        cost = {r["signal"]: r["passes / question"] for r in mine}
        assert cost["self_consistency"] == "2" and cost["answer_logprob"] == "1"  # K = 2


def test_margin_by_layer_rows_equal_a_recomputation_from_the_records(
    tiny_run: Path, tiny_report: ReportFiles
) -> None:
    rows = tables(tiny_report.markdown)[
        "Logit-lens truth margin by layer, correct vs wrong answers"
    ]
    records = pq.read_table(tiny_run / "records" / "signals.parquet").to_pylist()
    for model in ("tiny/llava", "tiny/qwen2_vl"):
        mine = [r for r in rows if r["model"] == model]
        assert [r["layer"] for r in mine] == ["L0", "L1"]  # the tiny models' 2 layers
        for keep, column in ((True, "correct answers"), (False, "wrong answers")):
            curves = np.array([r["truth_margin_by_layer"] for r in records
                               if r["model"] == model and r["correct"] is keep])  # fmt: skip
            n = "n correct" if keep else "n wrong"
            for j, row in enumerate(mine):
                assert row[n] == str(len(curves))
                if len(curves) > 1:
                    mean, low, high = _mean_ci(curves[:, j])[:3]
                    expected = f"{mean:.3f} [{low:.3f}, {high:.3f}]"
                    assert row[f"{column}: mean margin [95% CI]"] == expected


def test_probe_table_rows_equal_the_probes_json(tiny_run: Path, tiny_report: ReportFiles) -> None:
    rows = tables(tiny_report.markdown)[
        "Probe AUROC for correctness per layer (held out), with the control"
    ]
    for model in ("tiny/llava", "tiny/qwen2_vl"):
        probes = json.loads((tiny_run / "results" / model.replace("/", "--") /
                             "probes.json").read_text())  # fmt: skip
        if "per_layer" not in probes:
            continue
        for layer, e in probes["per_layer"].items():
            (row,) = [r for r in rows if r["model"] == model and r["layer / probe"] == f"L{layer}"]
            assert row["AUROC [95% CI]"] == _fmt(e)
            assert row["shuffled-label control [95% CI]"] == _fmt(probes["control"][layer])
