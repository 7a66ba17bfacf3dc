"""Circuit discovery on VLMs: patching sweeps, knockouts, ablation studies and localisation metrics.

Builds on the public API of `vrp` only.
"""
