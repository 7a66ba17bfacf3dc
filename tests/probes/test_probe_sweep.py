"""probe_sweep: the planted layer wins, it equals a scikit-learn loop, and it reads stores."""

from pathlib import Path

import numpy as np
import pytest
from conftest import planted
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

import vrp.probes._evaluate
import vrp.probes._sweep
import vrp.stats._fusion
from vrp.core import ConfigError, DataError, ShapeError, SiteError
from vrp.probes import (
    LayerConcat,
    LogisticProbe,
    SweepConfig,
    SweepResult,
    evaluate_probe,
    probe_sweep,
)
from vrp.stats import fuse_signals
from vrp.stats._folds import stratified_folds
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
    with pytest.raises(ConfigError, match=r"layers \[9\] are not available.*or None for all"):
        probe_sweep(x, y, layers=[2, 9])
    with pytest.raises(ConfigError, match="C > 0"):
        probe_sweep(x, y, SweepConfig(C=0.0))
    with pytest.raises(ConfigError, match="n_splits must be at least 2"):
        probe_sweep(x, y, SweepConfig(n_splits=1))
    bad = x.copy()
    bad[0, 3, 0] = np.nan
    with pytest.raises(DataError, match=r"layers \[0, 1, 2, 3"):
        probe_sweep(bad, y)


def test_a_missing_stored_layer_raises_config_error_everywhere(
    tmp_path: Path, planted_data: tuple[np.ndarray, np.ndarray]
) -> None:
    # One error class for "that stored layer is not there", in the store, the sweep and the
    # concatenation; SiteError stays for model sites.
    x, y = planted_data
    store = ActivationStore.create(tmp_path, layers=range(10, 18), d=24, dtype="float32")
    store.append(x.astype(np.float32))
    calls = {
        "layer 9 is not in this store": lambda: store.layer(9),
        r"layers \[9\] are not available": lambda: probe_sweep(store, y, layers=[9, 10]),
        r"layers \[9\] are out of range": lambda: LayerConcat(layers=(0, 9)).fit(x),
    }
    for message, call in calls.items():
        with pytest.raises(ConfigError, match=message) as info:
            call()
        assert not isinstance(info.value, SiteError)


def test_probes_and_fusion_split_with_the_one_helper_in_stats() -> None:
    for module in (vrp.probes._evaluate, vrp.probes._sweep, vrp.stats._fusion):
        assert module.stratified_folds is stratified_folds
    x, y = planted(n=40, layers=1, d=3, signal_layers=(0,), seed=5)
    rare = np.zeros(40, dtype=int)
    rare[:3] = 1
    messages = set()
    for call in (
        lambda: fuse_signals(x[:, 0], rare),
        lambda: evaluate_probe(LogisticProbe(), x[:, 0], rare),
        lambda: probe_sweep(x, rare),
    ):
        with pytest.raises(DataError, match="fewer than n_splits=5") as info:
            call()
        messages.add(str(info.value))
    assert messages == {
        "the rarer class has 3 samples, fewer than n_splits=5; lower n_splits or add samples."
    }
