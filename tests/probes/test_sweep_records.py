"""`SweepResult.to_records`: one tidy row per layer and condition, equal to the result's estimates."""

from tests.probes.conftest import planted
from vrp.probes import SweepConfig, probe_sweep


def test_sweep_records_are_one_row_per_layer_and_condition() -> None:
    x, y = planted(n=120, layers=3, d=6, signal_layers=(1,))
    sweep = probe_sweep(x, y, SweepConfig(n_splits=3, refit=False))
    rows = sweep.to_records()
    assert [(r["layer"], r["condition"]) for r in rows] == [
        (layer, condition) for layer in (0, 1, 2) for condition in ("real", "shuffled")
    ]
    real = [r for r in rows if r["condition"] == "real"]
    assert [r["auroc"] for r in real] == [e.estimate for e in sweep.auroc]
    assert [(r["ci_low"], r["ci_high"], r["n"]) for r in real] == [
        (e.ci_low, e.ci_high, e.n) for e in sweep.auroc
    ]
    shuffled = [r["auroc"] for r in rows if r["condition"] == "shuffled"]
    assert shuffled == [e.estimate for e in sweep.control]
    assert max(real, key=lambda r: r["auroc"])["layer"] == sweep.best_layer == 1
