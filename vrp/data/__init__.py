"""Benchmarks: POPE files, a synthetic POPE generator with counting and spatial questions, and
POPE's answer parsing and metrics.

Every benchmark is a `Dataset` of `Sample`s (image, question, answer, split, category, scene graph).
Real POPE files are read with `read_pope`; synthetic benchmarks are made in memory with `generate`
or written to disk, in POPE's own file format, with `write_benchmark` and read back with
`read_benchmark`. `vocabulary` lists every token the generator can write, for word-level tokenizers.
The metrics (`binary_metrics`, `count_metrics`, `evaluate`) give every number as a
`vrp.stats.Estimate` with its 95% interval and sample size.
"""

from ._config import (
    SyntheticConfig as SyntheticConfig,
    Theme as Theme,
    build_themes as build_themes,
)
from ._dataset import (
    POPE_SPLITS as POPE_SPLITS,
    SPLITS as SPLITS,
    Dataset as Dataset,
    Question as Question,
    QuestionDataset as QuestionDataset,
    Sample as Sample,
)
from ._metrics import (
    BinaryMetrics as BinaryMetrics,
    CountMetrics as CountMetrics,
    EvaluationReport as EvaluationReport,
    binary_metrics as binary_metrics,
    count_metrics as count_metrics,
    evaluate as evaluate,
)
from ._parse import parse_count_answer as parse_count_answer, parse_pope_answer as parse_pope_answer
from ._pope import pope_line as pope_line, read_pope as read_pope
from ._render import render_scene as render_scene
from ._scene import Scene as Scene, SceneObject as SceneObject, scene_caption as scene_caption
from ._stats import (
    BenchmarkStats as BenchmarkStats,
    SplitStats as SplitStats,
    benchmark_stats as benchmark_stats,
    cooccurrence_counts as cooccurrence_counts,
)
from ._synthetic import (
    generate as generate,
    generate_scenes as generate_scenes,
    load_config as load_config,
    read_benchmark as read_benchmark,
    write_benchmark as write_benchmark,
)
from ._vocab import split_words as split_words, vocabulary as vocabulary

__all__ = [
    "POPE_SPLITS",
    "SPLITS",
    "BenchmarkStats",
    "BinaryMetrics",
    "CountMetrics",
    "Dataset",
    "EvaluationReport",
    "Question",
    "QuestionDataset",
    "Sample",
    "Scene",
    "SceneObject",
    "SplitStats",
    "SyntheticConfig",
    "Theme",
    "benchmark_stats",
    "binary_metrics",
    "build_themes",
    "cooccurrence_counts",
    "count_metrics",
    "evaluate",
    "generate",
    "generate_scenes",
    "load_config",
    "parse_count_answer",
    "parse_pope_answer",
    "pope_line",
    "read_benchmark",
    "read_pope",
    "render_scene",
    "scene_caption",
    "split_words",
    "vocabulary",
    "write_benchmark",
]
