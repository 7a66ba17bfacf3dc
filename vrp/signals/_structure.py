"""All Stage 1 structural signals of a batch of attention maps, in one call.

This is the read the model-facing layer wants per sample: the entropy and both cluster counts of
the layer-average map M, the entropy of every per-layer map m^(l), and its evolution.
"""

from dataclasses import dataclass

from jaxtyping import Float
from torch import Tensor

from ._attention import AttentionMaps
from ._clusters import Dbscan, MassComponents, cluster_count
from ._entropy import EntropyEvolution, SpatialEntropy, entropy_evolution, spatial_entropy


@dataclass(frozen=True, kw_only=True)
class AttentionStructure:
    """Stage 1 signals of each sample's answer-to-image attention."""

    entropy: SpatialEntropy  # H_s of the layer-average map M, one per sample
    layer_entropy: SpatialEntropy  # H_s of each per-layer map m^(l), [batch layer]
    clusters_dbscan: Float[Tensor, " batch"]  # C_k of M under `Dbscan` (NaN: undefined on the grid)
    clusters_components: Float[Tensor, " batch"]  # C_k of M under `MassComponents`
    evolution: EntropyEvolution  # dH_s, early locking and late diffusion, from layer_entropy


def attention_structure(
    maps: AttentionMaps,
    *,
    dbscan: Dbscan | None = None,
    components: MassComponents | None = None,
    late_window: int = 3,
    threshold: float = 0.0,
) -> AttentionStructure:
    """Computes every Stage 1 signal of a batch of attention maps.

    Args:
      maps: head-averaged maps (see `average_heads`), with at least 2 layers.
      dbscan: the DBSCAN cluster definition; None uses `Dbscan()` (the study's parameters).
      components: the connected-components definition; None uses `MassComponents()`.
      late_window: the number of final layer-to-layer steps for late diffusion.
      threshold: the late entropy rise above which a sample counts as diffusing.

    Returns:
      Entropies, cluster counts and the entropy evolution, per sample.

    Raises:
      ShapeError: fewer than 2 layers or grid cells.
      ConfigError: `late_window` out of range.
      SignalError: a map is negative somewhere, not finite, or sums to 0.
    """
    layer_entropy = spatial_entropy(maps.per_layer)
    return AttentionStructure(
        entropy=spatial_entropy(maps.mean),
        layer_entropy=layer_entropy,
        clusters_dbscan=cluster_count(maps.mean, method=dbscan or Dbscan()),
        clusters_components=cluster_count(maps.mean, method=components or MassComponents()),
        evolution=entropy_evolution(
            layer_entropy.nats, layers=maps.layers, late_window=late_window, threshold=threshold
        ),
    )
