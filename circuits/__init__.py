"""Circuit discovery on VLMs: patching sweeps and localisation metrics.

Builds on the public API of `vrp` only (sites, models, intervention graphs, statistics).
"""

from ._ablation import (
    AblationStudy as AblationStudy,
    BatchNodes as BatchNodes,
    DimensionAblationPoint as DimensionAblationPoint,
    MaskingConfig as MaskingConfig,
    NeuronAblationConfig as NeuronAblationConfig,
    answer_correctness as answer_correctness,
    attention_guided_masking as attention_guided_masking,
    mlp_bypass as mlp_bypass,
    neuron_ablation as neuron_ablation,
    paint_patches as paint_patches,
    scaled_random_ablation as scaled_random_ablation,
    unit_means as unit_means,
)
from ._localise import Localisation as Localisation, localise as localise
from ._sweep import (
    Metric as Metric,
    PatchResult as PatchResult,
    patch_attn_by_layer as patch_attn_by_layer,
    patch_heads as patch_heads,
    patch_mlp_by_layer as patch_mlp_by_layer,
    patch_resid_by_layer as patch_resid_by_layer,
    patch_sweep as patch_sweep,
    yes_no_metric as yes_no_metric,
)

__all__ = [
    "AblationStudy",
    "NeuronAblationConfig",
    "attention_guided_masking",
    "BatchNodes",
    "DimensionAblationPoint",
    "MaskingConfig",
    "answer_correctness",
    "mlp_bypass",
    "paint_patches",
    "scaled_random_ablation",
    "unit_means",
    "neuron_ablation",
    "Localisation",
    "Metric",
    "PatchResult",
    "localise",
    "patch_attn_by_layer",
    "patch_heads",
    "patch_mlp_by_layer",
    "patch_resid_by_layer",
    "patch_sweep",
    "yes_no_metric",
]
