"""The end-of-run summary: one row per model with the study's headline numbers."""

from typing import Any

from ._config import Stage

COLUMNS = (
    "model", "accuracy (yes/no)", "best signal (AUROC)", "fused signals", "best probe layer",
    "mask top 30% (token)", "top-k neurons", "localisation",
)  # fmt: skip


def summary_rows(results: dict[str, dict[str, dict[str, Any]]]) -> list[dict[str, str]]:
    """Headline numbers per model, formatted with their 95% CI and n (blank where not run);
    then every signal's AUROC for correctness ("AUROC <signal>" keys, in `PREDICTORS` order)."""
    rows = []
    for model, stages in results.items():
        row = {key: "" for key in COLUMNS}
        for name, value in _signal_aurocs(stages.get(Stage.SIGNALS.value)).items():
            row[f"AUROC {name}"] = value
        row["model"] = model
        signals = stages.get(Stage.SIGNALS.value)
        if signals:
            row["accuracy (yes/no)"] = f"{signals['accuracy']:.3f} (n={signals['n']})"
            row["best signal (AUROC)"] = _best_signal(signals["signals"])
            fused = signals["fusion"]
            row["fused signals"] = _est(fused["auroc"]) if "auroc" in fused else "undefined"
        accuracy = stages.get(Stage.ACCURACY.value)
        if accuracy and not signals:
            row["accuracy (yes/no)"] = _pooled_accuracy(accuracy)
        probes = stages.get(Stage.PROBES.value)
        if probes and "undefined" in probes:
            row["best probe layer"] = "undefined"
        elif probes:
            best = str(probes["best_layer"])
            row["best probe layer"] = f"L{best}: {_est(probes['per_layer'][best])}"
        _causal(row, stages.get(Stage.CAUSAL.value))
        _circuits(row, stages.get(Stage.CIRCUITS.value))
        rows.append(row)
    return rows


def _causal(row: dict[str, str], causal: dict[str, Any] | None) -> None:
    """Accuracy changes (paired, exact McNemar) of the top-attended mask and the top-k neurons."""
    if not causal:
        return
    top = causal.get("masking", {}).get("token", {}).get("top", {})
    if "change" in top:
        row["mask top 30% (token)"] = _change(top["change"])
    neurons = causal.get("neurons", {})
    if "change" in neurons:
        row["top-k neurons"] = f"L{neurons['layer']} k={neurons['k']}: {_change(neurons['change'])}"
    elif "undefined" in neurons:
        row["top-k neurons"] = "undefined"


def _circuits(row: dict[str, str], circuits: dict[str, Any] | None) -> None:
    """The headline localisation verdict (corruption, component, position group)."""
    if not circuits:
        return
    head = circuits.get("headline", {})
    found = head.get("localisation", {})
    verdict = found.get("verdict", "undefined")
    row["localisation"] = f"{verdict} ({head.get('component')}, {head.get('positions')})"


def _change(estimate: dict[str, Any]) -> str:
    p = estimate.get("p_value")
    return (
        f"{estimate['estimate']:+.3f} [{estimate['ci_low']:+.3f}, {estimate['ci_high']:+.3f}]"
        + (f" p={p:.2g}" if isinstance(p, float) else "")
    )


def _best_signal(signals: dict[str, Any]) -> str:
    """The predictor whose AUROC is furthest from chance (either direction)."""
    defined = {k: v["auroc"] for k, v in signals.items() if "auroc" in v}
    if not defined:
        return "none defined"
    name = max(defined, key=lambda k: abs(defined[k]["estimate"] - 0.5))
    return f"{name} {_est(defined[name])}"


def _pooled_accuracy(accuracy: dict[str, Any]) -> str:
    yes_no = [m for split, m in accuracy["splits"].items() if split != "counting"]
    n = sum(m["n"] for m in yes_no)
    right = sum(m["accuracy"]["estimate"] * m["n"] for m in yes_no)
    return f"{right / n:.3f} (n={n})" if n else ""


def _est(estimate: dict[str, Any]) -> str:
    low, high = estimate["ci_low"], estimate["ci_high"]
    if low is None or high is None:
        return f"{estimate['estimate']:.3f}"
    return f"{estimate['estimate']:.3f} [{low:.3f}, {high:.3f}]"


def _signal_aurocs(signals: dict[str, Any] | None) -> dict[str, str]:
    if not signals:
        return {}
    return {
        name: _est(entry["auroc"]) if "auroc" in entry else "undefined"
        for name, entry in signals["signals"].items()
    }
