"""Per-layer probe sweep: held-out AUROC of an L2 logistic probe at every layer, in one call.

All `layer x fold` fits (and the same again with shuffled labels, plus an optional all-data refit
per layer for neuron rankings) run as one batched problem per group of layers (`_solver`), reading
each layer once from an array or an `ActivationStore`. Each probe is the optimum of scikit-learn's
`LogisticRegression(C=C)` objective on its training folds; the AUROC is computed on the pooled
out-of-fold scores, with a DeLong CI.
"""

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from jaxtyping import Float
from numpy.typing import ArrayLike
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import roc_auc_score

from vrp.core import ConfigError, DataError, ShapeError, TidyRecords
from vrp.stats import Estimate, auroc
from vrp.stats._estimate import as_binary, check_confidence, check_count, check_positive
from vrp.stats._folds import stratified_folds
from vrp.store import ActivationStore

from ._solver import fit_logistic


@dataclass(frozen=True, kw_only=True)
class SweepConfig:
    """Settings of `probe_sweep`.

    Attributes:
      C: inverse L2 strength, as in scikit-learn's `LogisticRegression`.
      n_splits: folds of the shuffled stratified k-fold split.
      seed: seed of the folds and of the label shuffle.
      confidence: coverage of the AUROC intervals.
      refit: also fit each layer on all samples and return its weights (for neuron rankings).
      tol: per-probe stop: max |gradient| of the normalised objective (scikit-learn's `tol`).
      max_iter: L-BFGS iteration limit per group of layers.
      layer_batch: layers fitted together; memory grows with it (about n*d*8 bytes per layer,
        plus 8*d^2 for the preconditioner).
    """

    C: float = 1.0
    n_splits: int = 5
    seed: int = 0
    confidence: float = 0.95
    refit: bool = True
    tol: float = 1e-6
    max_iter: int = 1000
    layer_batch: int = 8

    def __post_init__(self) -> None:
        """Raises `ConfigError` for a setting out of its range (n_splits: see `probe_sweep`)."""
        check_positive(self.C, "C")
        check_positive(self.tol, "tol")
        check_count(self.max_iter, "max_iter")
        check_count(self.layer_batch, "layer_batch")
        check_count(self.seed, "seed", minimum=0)
        check_confidence(self.confidence)


@dataclass(frozen=True, kw_only=True)
class SweepResult(TidyRecords):
    """Held-out probe quality per layer.

    Attributes:
      layers: the layer of each entry below.
      auroc: held-out AUROC per layer (pooled out-of-fold scores, DeLong CI; see
        `vrp.stats.auroc` and the small-n warning of `evaluate_probe`).
      control: the same with labels shuffled before fitting; near 0.5 if the probe is honest.
      fold_auroc: AUROC within each held-out fold, `(layer, fold)`.
      coef: all-data probe weights per layer, `(layer, d)`, if `refit`.
      intercept: all-data probe intercept per layer, if `refit`.
      n: samples.
      n_splits: folds.
      C: the inverse L2 strength used.
    """

    layers: tuple[int, ...]
    auroc: tuple[Estimate, ...]
    control: tuple[Estimate, ...]
    fold_auroc: Float[np.ndarray, "layer fold"]
    coef: Float[np.ndarray, "layer d"] | None
    intercept: Float[np.ndarray, " layer"] | None
    n: int
    n_splits: int
    C: float

    @property
    def auroc_values(self) -> Float[np.ndarray, " layer"]:
        """The held-out AUROC of each layer as an array."""
        return np.array([e.estimate for e in self.auroc])

    @property
    def best_layer(self) -> int:
        """The layer with the highest held-out AUROC."""
        return self.layers[int(np.argmax(self.auroc_values))]

    def to_records(self) -> list[dict[str, object]]:
        """One row per layer per condition ("real" labels, "shuffled" control): layer,
        condition, auroc, ci_low, ci_high, p_value, n, method, confidence."""
        return [
            {"layer": layer, "condition": condition, "auroc": est.estimate, "ci_low": est.ci_low,
             "ci_high": est.ci_high, "p_value": est.p_value, "n": est.n, "method": est.method,
             "confidence": est.confidence}
            for layer, real, shuffled in zip(self.layers, self.auroc, self.control, strict=True)
            for condition, est in (("real", real), ("shuffled", shuffled))
        ]  # fmt: skip


Activations = np.ndarray | ActivationStore


def _layer_reader(acts: Activations, layers: Sequence[int] | None) -> tuple[list[int], int, int]:
    """Validates the input; returns the layers to sweep, n and d."""
    if isinstance(acts, ActivationStore):
        available, n, d = list(acts.layers), acts.n, acts.d
    else:
        if not isinstance(acts, np.ndarray) or acts.ndim != 3 or acts.dtype.kind not in "biuf":
            shape = getattr(acts, "shape", type(acts).__name__)
            kind = f" of {acts.dtype}" if isinstance(acts, np.ndarray) else ""
            raise ShapeError(
                f"activations must be an (n, layer, d) array or an ActivationStore; got "
                f"{shape}{kind}. Pass numbers; stack per-layer (n, d) arrays with "
                "np.stack(..., axis=1)."
            )
        n, n_layers, d = acts.shape
        available = list(range(n_layers))
    if layers is not None and not all(
        isinstance(layer, int | np.integer) and not isinstance(layer, bool) for layer in layers
    ):
        raise ConfigError(
            f"layers must be int layer indices; got {list(layers)!r}. Pass e.g. layers=[0, 5]."
        )
    chosen = available if layers is None else [int(layer) for layer in layers]
    missing = [layer for layer in chosen if layer not in available]
    if missing:
        # ConfigError, as ActivationStore.layer and LayerConcat raise: a stored layer index is a
        # coordinate of the data the caller chose, not a model Site (SiteError).
        raise ConfigError(
            f"layers {missing} are not available; available layers: {available}. "
            "Pass layers from that list, or None for all."
        )
    return chosen, n, d


def _read(acts: Activations, layers: Sequence[int]) -> torch.Tensor:
    """`(layer, n, d)` float64 tensor of the requested layers (copied out of any memmap)."""
    if isinstance(acts, ActivationStore):
        block = np.stack([np.asarray(acts.layer(layer), dtype=np.float64) for layer in layers])
    else:
        block = np.ascontiguousarray(acts[:, list(layers), :].transpose(1, 0, 2), dtype=np.float64)
    if not np.all(np.isfinite(block)):
        raise DataError(f"activations of layers {list(layers)} hold NaN or infinite values.")
    return torch.from_numpy(block)


def _design(y: np.ndarray, folds: list[np.ndarray], shuffled: np.ndarray, refit: bool) -> tuple:
    """Label and weight columns: each fold on true labels, [all data], each fold shuffled."""
    n, k = y.size, len(folds)
    train = np.ones((n, k))
    for f, test in enumerate(folds):
        train[test, f] = 0.0
    weights = [train] + ([np.ones((n, 1))] if refit else []) + [train]
    labels = [np.repeat(y[:, None], k + refit, axis=1), np.repeat(shuffled[:, None], k, axis=1)]
    targets = np.concatenate(labels, 1).astype(np.float64)
    return torch.from_numpy(targets), torch.from_numpy(np.concatenate(weights, 1))


def probe_sweep(
    acts: Activations,
    labels: ArrayLike,
    config: SweepConfig | None = None,
    *,
    layers: Sequence[int] | None = None,
) -> SweepResult:
    """Held-out AUROC of an L2 logistic probe at every layer, with a shuffled-label control.

    Args:
      acts: answer-position hidden states, an `(n, layer, d)` array (layers numbered by position)
        or an `ActivationStore` (layers numbered as stored; read one group at a time).
      labels: 0/1 correctness per sample, shape `(n,)`.
      config: `SweepConfig`; default `SweepConfig()`.
      layers: layers to sweep; default all.

    Returns:
      A `SweepResult`.

    Raises:
      ShapeError: `acts` is not `(n, layer, d)` or does not match `labels`.
      ConfigError: a requested layer is not available (as `ActivationStore.layer` raises), or
        invalid settings in `config`.
      DataError: non-binary labels, non-finite activations, or a class smaller than `n_splits`.
    """
    cfg = config or SweepConfig()
    if not isinstance(cfg, SweepConfig):
        raise ConfigError(
            f"config must be a SweepConfig; got {type(cfg).__name__}. Pass e.g. SweepConfig(C=0.1)."
        )
    chosen, n, d = _layer_reader(acts, layers)
    y = as_binary(labels)
    if y.size != n:
        raise ShapeError(f"got {y.size} labels for activations of {n} samples.")
    folds = [test for _, test in stratified_folds(y, cfg.n_splits, cfg.seed)]
    shuffled = np.random.default_rng(cfg.seed).permutation(y)
    targets, weights = _design(y, folds, shuffled, cfg.refit)
    fold_of = np.empty(n, dtype=np.int64)
    for f, test in enumerate(folds):
        fold_of[test] = f
    rows, k = torch.arange(n), cfg.n_splits
    true_cols, shuffled_cols = torch.from_numpy(fold_of), torch.from_numpy(fold_of + k + cfg.refit)
    oof, oof_control, coefs, intercepts = [], [], [], []
    for start in range(0, len(chosen), cfg.layer_batch):
        group = chosen[start : start + cfg.layer_batch]
        fit = fit_logistic(
            _read(acts, group), targets, weights, C=cfg.C, tol=cfg.tol, max_iter=cfg.max_iter
        )
        if not bool(fit.converged.all()):
            _warn_unconverged(group, fit.converged.all(1).numpy(), cfg)
        oof += list(fit.logits[:, rows, true_cols].numpy())
        oof_control += list(fit.logits[:, rows, shuffled_cols].numpy())
        if cfg.refit:
            coefs.append(fit.coef[:, :, k].numpy())
            intercepts.append(fit.intercept[:, k].numpy())
    return SweepResult(
        layers=tuple(chosen),
        auroc=tuple(auroc(s, y, confidence=cfg.confidence) for s in oof),
        control=tuple(auroc(s, shuffled, confidence=cfg.confidence) for s in oof_control),
        fold_auroc=np.array([[roc_auc_score(y[t], s[t]) for t in folds] for s in oof]),
        coef=np.concatenate(coefs) if cfg.refit else None,
        intercept=np.concatenate(intercepts) if cfg.refit else None,
        n=n,
        n_splits=k,
        C=cfg.C,
    )


def _warn_unconverged(group: list[int], ok: np.ndarray, cfg: SweepConfig) -> None:
    bad = [layer for layer, good in zip(group, ok, strict=True) if not good]
    warnings.warn(
        f"probes at layers {bad} did not reach tol={cfg.tol} in max_iter={cfg.max_iter} "
        "iterations; raise max_iter, or standardise the activations.",
        ConvergenceWarning,
        stacklevel=3,
    )
