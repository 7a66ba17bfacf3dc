"""Which MLP neurons to ablate: a ranking by a correctness probe on a set of questions.

The study ablates the "top probe neurons" of a layer. Ranking them on the questions the ablation
is then scored on would select neurons that fit those questions' noise, so a study ranks on one
set (here) and ablates on another (`neuron_arms` / `neuron_ablation`).
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from jaxtyping import Bool, Float

from vrp import Component, DataError, LastToken, Site
from vrp.data import Sample
from vrp.interventions import Capture, Graph, run_graph
from vrp.models import VLM
from vrp.pipeline import require_yes_no
from vrp.probes import LogisticProbe, NeuronRanking, rank_by_weight

METHOD = "|weight| of an L2 logistic correctness probe on z-scored answer-position activations"


@dataclass(frozen=True, kw_only=True)
class ProbeNeuronRanking:
    """MLP neurons of one layer ranked by a correctness probe.

    Attributes:
      layer: the language layer.
      ranking: every neuron, most important first (scores: the probe's signed weights).
      method: how the neurons were ranked.
      n: questions the probe was fitted on.
      n_correct: of which the model answered correctly.
      activations: the answer-position activations, `(question, d_mlp)`.
      correct: the model's correctness on each question.
    """

    layer: int
    ranking: NeuronRanking
    method: str
    n: int
    n_correct: int
    activations: Float[np.ndarray, "question d_mlp"] = field(compare=False, repr=False)
    correct: Bool[np.ndarray, " question"] = field(compare=False, repr=False)

    def to_json(self, top: int = 50) -> dict[str, Any]:
        """The ranking's settings, counts and its `top` neurons with their weights."""
        return {
            "layer": self.layer,
            "method": self.method,
            "n": self.n,
            "n_correct": self.n_correct,
            "top_neurons": [int(i) for i in self.ranking.indices[:top]],
            "top_weights": [float(w) for w in self.ranking.scores[:top]],
        }


def rank_neurons(
    vlm: VLM, samples: Sequence[Sample], *, layer: int, C: float = 1.0, batch_size: int = 32
) -> ProbeNeuronRanking:
    """Ranks the MLP neurons of language `layer` by how strongly a logistic probe on their
    answer-position activations weighs them to predict whether the model answers correctly.

    The activations are z-scored over `samples` first (a constant neuron gets weight 0), so the
    L2 penalty treats every neuron alike and |weight| compares them (`vrp.probes.rank_by_weight`).

    Args:
      vlm: the model.
      samples: the ranking questions (yes/no); keep them apart from the ablation's questions.
      layer: the language layer whose MLP neurons (the hidden units feeding down_proj) are ranked.
      C: inverse L2 strength of the probe.
      batch_size: questions per trace.

    Raises:
      DataError: a sample is not a yes/no question, or the model answers every sample right (or
        every one wrong), so there is nothing to probe.
      GraphError: the layer does not exist.
    """
    require_yes_no(samples, "Neuron rankings")
    site = Site(layer=layer, component=Component.MLP_NEURONS, positions=LastToken())
    acts, correct = [], []
    for start in range(0, len(samples), batch_size):
        chunk = samples[start : start + batch_size]
        inputs = vlm.encode([s.image for s in chunk], [s.question for s in chunk])
        result = run_graph(vlm, Graph(nodes=(Capture(site=site, name="neurons"),)), inputs)
        acts.append(result["neurons"].flatten(1).float().cpu().numpy())
        truth = np.array([s.answer == "yes" for s in chunk])
        correct.append(vlm.says_yes(result.answer_logits["main"]).cpu().numpy() == truth)
    x, y = np.concatenate(acts).astype(np.float64), np.concatenate(correct)
    if y.all() or not y.any():
        raise DataError(
            f"rank_neurons: the model answers all {len(y)} ranking questions "
            f"{'right' if y.all() else 'wrong'}, so no probe can rank neurons by correctness. "
            "Rank on more (or harder) questions."
        )
    std = x.std(axis=0)
    z = (x - x.mean(axis=0)) / np.where(std > 0, std, 1.0)
    probe = LogisticProbe(C=C).fit(z, y.astype(int))
    return ProbeNeuronRanking(
        layer=layer,
        ranking=rank_by_weight(probe.coef_),
        method=METHOD,
        n=len(y),
        n_correct=int(y.sum()),
        activations=x,
        correct=y,
    )
