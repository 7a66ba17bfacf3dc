"""The VRP study end to end: `run_study` streams every stage to a resumable run directory.

This is the application layer: it composes the library (data, models, pipeline, probes, stats,
store) into the study's stages, and is what `vrp run` calls. Nothing else in `vrp` imports it.
"""

from ._config import (
    ALL_STAGES as ALL_STAGES,
    Stage as Stage,
    StudyConfig as StudyConfig,
    check_models as check_models,
    config_from_mapping as config_from_mapping,
    read_config_file as read_config_file,
)
from ._ray import RayExecutor as RayExecutor, RayOptions as RayOptions
from ._rundir import RunDir as RunDir, model_slug as model_slug
from ._stages import (
    PREDICTORS as PREDICTORS,
    BatchExecutor as BatchExecutor,
    signal_summary as signal_summary,
)
from ._study import (
    Progress as Progress,
    RichProgress as RichProgress,
    StudyResult as StudyResult,
    check_config as check_config,
    run_study as run_study,
    weights_hash as weights_hash,
)

__all__ = [
    "ALL_STAGES",
    "PREDICTORS",
    "BatchExecutor",
    "Progress",
    "RayExecutor",
    "RayOptions",
    "RichProgress",
    "RunDir",
    "Stage",
    "StudyConfig",
    "StudyResult",
    "check_config",
    "check_models",
    "config_from_mapping",
    "model_slug",
    "read_config_file",
    "run_study",
    "signal_summary",
    "weights_hash",
]
