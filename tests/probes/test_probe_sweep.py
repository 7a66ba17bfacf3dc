"""probe_sweep: the planted layer wins, it equals a scikit-learn loop, and it reads stores."""

from pathlib import Path

import numpy as np
import pytest
from conftest import planted
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

from vrp.core import ConfigError, DataError, ShapeError, SiteError
from vrp.probes import SweepConfig, SweepResult, probe_sweep
from vrp.store import ActivationStore


def test_sweep_peaks_at_the_planted_layer(planted_data: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = planted_data
    res = probe_sweep(x, y)
    assert isinstance(res, SweepResult)
    assert res.best_layer == 5
    assert res.auroc[5].estimate > 0.9
    assert res.auroc[5].ci_low > 0.85
    others = np.delete(res.auroc_values, 5)
    assert np.all(np.abs(others - 0.5) < 0.1)
    assert all(abs(c.estimate - 0.5) < 0.1 for c in res.control)
    assert res.fold_auroc.shape == (8, 5) and res.coef is not None and res.coef.shape == (8, 24)
    assert res.n == 600 and res.n_splits == 5 and res.layers == tuple(range(8))


def test_sweep_equals_a_plain_scikit_learn_loop() -> None:
    x, y = planted(n=300, layers=3, d=10, signal_layers=(1,), strength=0.6, seed=3)
    cfg = SweepConfig(C=0.5, n_splits=4, seed=2, tol=1e-9)
    res = probe_sweep(x, y, cfg)
    cv = StratifiedKFold(n_splits=4, shuffle=True, random_state=2)
    for layer in range(3):
        oof = np.empty(300)
        for train, test in cv.split(x[:, layer], y):
            sk = LogisticRegression(C=0.5, tol=1e-10, max_iter=10_000)
            oof[test] = sk.fit(x[train, layer], y[train]).decision_function(x[test, layer])
        assert res.auroc[layer].estimate == pytest.approx(roc_auc_score(y, oof), abs=1e-9)
        full = LogisticRegression(C=0.5, tol=1e-10, max_iter=10_000).fit(x[:, layer], y)
        assert res.coef is not None and res.intercept is not None
        np.testing.assert_allclose(res.coef[layer], full.coef_[0], rtol=1e-4, atol=1e-6)
        assert res.intercept[layer] == pytest.approx(full.intercept_[0], abs=1e-4)


def test_sweep_reads_an_activation_store_layer_by_layer(
    tmp_path: Path, planted_data: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = planted_data
    store = ActivationStore.create(tmp_path, layers=range(10, 18), d=24, dtype="float32")
    for start in range(0, 600, 128):
        store.append(x[start : start + 128].astype(np.float32))
    cfg = SweepConfig(layer_batch=3, refit=False)
    from_store = probe_sweep(ActivationStore.open(tmp_path), y, cfg, layers=[14, 15, 16])
    from_array = probe_sweep(x.astype(np.float32), y, cfg, layers=[4, 5, 6])
    assert from_store.layers == (14, 15, 16) and from_store.best_layer == 15
    np.testing.assert_allclose(from_store.auroc_values, from_array.auroc_values, atol=1e-9)
    assert from_store.coef is None


def test_sweep_warns_when_probes_do_not_converge() -> None:
    x, y = planted(n=200, layers=2, d=8, signal_layers=(1,), seed=1)
    with pytest.warns(ConvergenceWarning, match=r"layers \[0, 1\] did not reach tol"):
        probe_sweep(x, y, SweepConfig(max_iter=1))


def test_sweep_errors_say_what_is_wrong(planted_data: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = planted_data
    with pytest.raises(ShapeError, match=r"\(n, layer, d\) array or an ActivationStore"):
        probe_sweep(x[:, 0], y)
    with pytest.raises(ShapeError, match="599 labels for activations of 600"):
        probe_sweep(x, y[:-1])
    with pytest.raises(SiteError, match=r"layers \[9\] are not available"):
        probe_sweep(x, y, layers=[2, 9])
    with pytest.raises(ConfigError, match="C > 0"):
        probe_sweep(x, y, SweepConfig(C=0.0))
    with pytest.raises(ConfigError, match="n_splits must be at least 2"):
        probe_sweep(x, y, SweepConfig(n_splits=1))
    bad = x.copy()
    bad[0, 3, 0] = np.nan
    with pytest.raises(DataError, match=r"layers \[0, 1, 2, 3"):
        probe_sweep(bad, y)
