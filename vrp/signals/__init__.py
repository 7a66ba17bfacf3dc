"""Reliability signals of a vision-language model's answer, computed from tensors.

Nothing here runs a model: every function takes tensors that a trace has already gathered
(attention patterns, answer-position logits, per-layer residuals and component outputs, the
unembedding) or sampled answer strings, and returns tensors or frozen result dataclasses. The three
stages of the VRP method (see ``vrp-methods.md``):

- Stage 1, structure of the answer-to-image attention: `image_attention`, `average_heads`,
  `spatial_entropy`, `cluster_count`, `entropy_evolution`, `top_heads`, `top_head_map`,
  `attention_structure`.
- Stage 2, logit lens and component attribution: `logit_lens`, `peak_integration_layer`,
  `visual_attribution`, `unembed_direction`, `component_attribution`.
- Stage 3, generation dynamics and self-consistency: `answer_logprob`, `vocab_entropy`,
  `logit_gap`, `truth_margin`, `yes_no_margin`, `best_spelling`, `normalise_answer`, `self_consistency`,
  `agreement_precision`.

Input with the right shape but values a signal is undefined on raises `SignalError` (defined in
`vrp.core` with the rest of the hierarchy, re-exported here).
"""

from vrp.core import SignalError as SignalError

from ._attention import (
    AttentionMaps as AttentionMaps,
    TopHeads as TopHeads,
    average_heads as average_heads,
    image_attention as image_attention,
    top_head_map as top_head_map,
    top_heads as top_heads,
)
from ._clusters import (
    ClusterMethod as ClusterMethod,
    Dbscan as Dbscan,
    MassComponents as MassComponents,
    cluster_count as cluster_count,
)
from ._components import (
    ComponentAttribution as ComponentAttribution,
    component_attribution as component_attribution,
    unembed_direction as unembed_direction,
)
from ._consistency import (
    AgreementPrecision as AgreementPrecision,
    SelfConsistency as SelfConsistency,
    agreement_precision as agreement_precision,
    normalise_answer as normalise_answer,
    self_consistency as self_consistency,
)
from ._entropy import (
    EntropyEvolution as EntropyEvolution,
    SpatialEntropy as SpatialEntropy,
    entropy_evolution as entropy_evolution,
    spatial_entropy as spatial_entropy,
)
from ._generation import (
    answer_logprob as answer_logprob,
    best_spelling as best_spelling,
    logit_gap as logit_gap,
    truth_margin as truth_margin,
    vocab_entropy as vocab_entropy,
    yes_no_margin as yes_no_margin,
)
from ._logit_lens import (
    LogitLens as LogitLens,
    logit_lens as logit_lens,
    peak_integration_layer as peak_integration_layer,
    visual_attribution as visual_attribution,
)
from ._structure import (
    AttentionStructure as AttentionStructure,
    attention_structure as attention_structure,
)
