"""Probes on answer-position hidden states: estimators, held-out scoring, sweeps and rankings.

Every probe is a scikit-learn estimator (`clone`, `Pipeline`, `cross_val_score` work), and every
score this package reports is held out: stratified k-fold, AUROC with a CI, next to a
shuffled-label control. `probe_sweep` fits a logistic probe at every layer in one batched call.
"""

from ._base import ProbeNotFittedError as ProbeNotFittedError
from ._evaluate import ProbeScore as ProbeScore, evaluate_probe as evaluate_probe
from ._layers import LayerConcat as LayerConcat
from ._logistic import LogisticProbe as LogisticProbe, SparseLogisticProbe as SparseLogisticProbe
from ._mlp import MLPProbe as MLPProbe
from ._ranking import (
    NeuronRanking as NeuronRanking,
    rank_by_mean_difference as rank_by_mean_difference,
    rank_by_weight as rank_by_weight,
)
from ._sweep import (
    SweepConfig as SweepConfig,
    SweepResult as SweepResult,
    probe_sweep as probe_sweep,
)

__all__ = [
    "LayerConcat",
    "LogisticProbe",
    "MLPProbe",
    "NeuronRanking",
    "ProbeNotFittedError",
    "ProbeScore",
    "SparseLogisticProbe",
    "SweepConfig",
    "SweepResult",
    "evaluate_probe",
    "probe_sweep",
    "rank_by_mean_difference",
    "rank_by_weight",
]
