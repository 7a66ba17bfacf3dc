"""Pipeline stages: stream a benchmark through a model and compute the study's signals."""

from ._attention import (
    answer_attention as answer_attention,
    maps_from_patterns as maps_from_patterns,
)
from ._capture import (
    BatchCapture as BatchCapture,
    blank_like as blank_like,
    capture_batch as capture_batch,
    capture_graph as capture_graph,
)
from ._signals import (
    BatchSignals as BatchSignals,
    LayerSignals as LayerSignals,
    SampleSignals as SampleSignals,
    SignalConfig as SignalConfig,
    batch_signals as batch_signals,
    dataset_signals as dataset_signals,
    require_yes_no as require_yes_no,
)
