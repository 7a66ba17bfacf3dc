"""Section: what a reader must not miss. Undefined statistics with their reasons, estimates
resting on few questions, controls that deviate from chance, and intervals that fell back."""

from collections.abc import Iterator
from typing import Any

from ._doc import Section, Table
from ._format import count, est, finite
from ._rundata import RunData

SMALL_N = 30
"""Below this many questions (or pairs) an estimate is flagged as resting on a small sample."""

Warning_ = tuple[str, str, str, str]  # (kind, model, where, detail)


def _estimates(value: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every estimate dict (one with "estimate" and "n") nested in a result, with its path."""
    if isinstance(value, dict):
        if "estimate" in value and "n" in value and "method" in value:
            yield path, value
            return
        for key, item in value.items():
            yield from _estimates(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _estimates(item, f"{path}[{i}]")


def _undefined(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every "undefined" reason nested in a result, with its path."""
    if isinstance(value, dict):
        if isinstance(value.get("undefined"), str) and value["undefined"]:
            yield path or "(stage)", value["undefined"]
        for key, item in value.items():
            yield from _undefined(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _undefined(item, f"{path}[{i}]")


def undefined_warnings(run: RunData) -> list[Warning_]:
    out: list[Warning_] = []
    for model in run.models:
        for stage in run.stages:
            for path, reason in _undefined(run.result(model, stage) or {}):
                out.append(("undefined", model, f"{stage}: {path}", reason))
        notes = {r.get("undefined") for r in run.rows("signals", model)} - {None, ""}
        for note in sorted(n for text in notes for n in str(text).split(" | ")):
            if ("undefined", model, "signals: per question", note) not in out:
                out.append(("undefined", model, "signals: per question", note))
    return out


def small_n_warnings(run: RunData) -> list[Warning_]:
    """Estimates on fewer than `SMALL_N` questions, one line per stage (smallest n shown)."""
    out: list[Warning_] = []
    for model in run.models:
        for stage in run.stages:
            small = [(p, e) for p, e in _estimates(run.result(model, stage) or {})
                     if isinstance(e.get("n"), int) and 0 < e["n"] < SMALL_N]  # fmt: skip
            if small:
                low = min(small, key=lambda pe: pe[1]["n"])
                out.append(("small n", model, stage,
                            f"{len(small)} estimates rest on fewer than {SMALL_N} questions or "
                            f"pairs (smallest: n = {low[1]['n']} at {low[0]}); read their "
                            "intervals, not their points."))  # fmt: skip
    return out


def control_warnings(run: RunData) -> list[Warning_]:
    """Shuffled-label probe controls whose CI excludes 0.5, and random-neuron controls whose
    central interval excludes 0 (random ablation itself changes accuracy)."""
    out: list[Warning_] = []
    for model in run.models:
        probes = run.result(model, "probes") or {}
        controls = {f"L{k}": v for k, v in (probes.get("control") or {}).items()}
        for name, entry in (probes.get("at_best_layer") or {}).items():
            controls[f"{name} probe"] = (entry or {}).get("control")
        controls["concatenated probe"] = (probes.get("last_layers_concat") or {}).get("control")
        for where, e in controls.items():
            low, high = finite((e or {}).get("ci_low")), finite((e or {}).get("ci_high"))
            if low is not None and high is not None and not low <= 0.5 <= high:
                out.append(("control", model, f"probes: shuffled-label control, {where}",
                            f"AUROC {est(e)} excludes chance (0.5): the probe may exploit "
                            "structure unrelated to correctness."))  # fmt: skip
        neurons = (run.result(model, "causal") or {}).get("neurons") or {}
        band = neurons.get("controls") or {}
        low, high = finite(band.get("ci_low")), finite(band.get("ci_high"))
        if low is not None and high is not None and not low <= 0.0 <= high:
            out.append(("control", model, "causal: random-k neurons",
                        f"the central 95% of the random sets' changes [{low:+.3f}, {high:+.3f}] "
                        "excludes 0: ablating any k neurons of this layer changes accuracy."))  # fmt: skip
    return out


def interval_warnings(run: RunData) -> list[Warning_]:
    """Counts of intervals that fell back from the requested method (degenerate data)."""
    out: list[Warning_] = []
    for model in run.models:
        for stage in run.stages:
            fallback = [p for p, e in _estimates(run.result(model, stage) or {})
                        if "degenerate" in str(e.get("method")) or "BCa undefined" in str(e.get("method"))]  # fmt: skip
            if fallback:
                out.append(("interval", model, stage,
                            f"{len(fallback)} intervals fell back to another method on "
                            f"degenerate data (e.g. {fallback[0]}); their method names say which."))  # fmt: skip
    return out


def warnings_section(run: RunData) -> Section:
    """Every warning of the run, as one table."""
    found = [*undefined_warnings(run), *small_n_warnings(run), *control_warnings(run),
             *interval_warnings(run)]  # fmt: skip
    table = Table(
        key="warnings", title="Warnings", columns=("kind", "model", "where", "detail"),
        rows=tuple(found),
        data=tuple(dict(zip(("kind", "model", "where", "detail"), w, strict=True)) for w in found),
        note=f"'small n': fewer than {SMALL_N} questions or pairs. 'control': a control that "
        "should sit at chance does not. 'interval': an interval computed by a fallback method.",
    )  # fmt: skip
    intro = (f"{count(len(found))} warnings." if found else "No warnings: every statistic is "
             f"defined, rests on at least {SMALL_N} questions, and every control sits at chance.")  # fmt: skip
    return Section(key="warnings", title="Warnings", intro=intro, tables=(table,) if found else ())
