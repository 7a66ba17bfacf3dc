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
  `logit_gap`, `truth_margin`, `yes_no_margin`, `normalise_answer`, `self_consistency`,
  `agreement_precision`.
"""

from ._attention import AttentionMaps as AttentionMaps
from ._attention import TopHeads as TopHeads
from ._attention import average_heads as average_heads
from ._attention import image_attention as image_attention
from ._attention import top_head_map as top_head_map
from ._attention import top_heads as top_heads
from ._clusters import ClusterMethod as ClusterMethod
from ._clusters import Dbscan as Dbscan
from ._clusters import MassComponents as MassComponents
from ._clusters import cluster_count as cluster_count
from ._components import ComponentAttribution as ComponentAttribution
from ._components import component_attribution as component_attribution
from ._components import unembed_direction as unembed_direction
from ._consistency import AgreementPrecision as AgreementPrecision
from ._consistency import SelfConsistency as SelfConsistency
from ._consistency import agreement_precision as agreement_precision
from ._consistency import normalise_answer as normalise_answer
from ._consistency import self_consistency as self_consistency
from ._entropy import EntropyEvolution as EntropyEvolution
from ._entropy import SpatialEntropy as SpatialEntropy
from ._entropy import entropy_evolution as entropy_evolution
from ._entropy import spatial_entropy as spatial_entropy
from ._errors import SignalError as SignalError
from ._generation import answer_logprob as answer_logprob
from ._generation import logit_gap as logit_gap
from ._generation import truth_margin as truth_margin
from ._generation import vocab_entropy as vocab_entropy
from ._generation import yes_no_margin as yes_no_margin
from ._logit_lens import LogitLens as LogitLens
from ._logit_lens import logit_lens as logit_lens
from ._logit_lens import peak_integration_layer as peak_integration_layer
from ._logit_lens import visual_attribution as visual_attribution
from ._structure import AttentionStructure as AttentionStructure
from ._structure import attention_structure as attention_structure
