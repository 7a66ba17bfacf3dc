"""Typed intervention graphs compiled to nnsight traces.

Activation patching, residual captures, zero / mean / resample ablations, steering, scaling,
attention-edge knockouts and image-token masking are nodes on typed sites; a `Graph` composes them
over named runs, validates them against a model, round-trips through JSON and runs as one nnsight
trace per batch chunk (`run_graph`), locally or through nnsight's remote protocol. `run_gradients`
returns site values with the gradient of a metric of the answer logits (attribution patching).
"""

from ._execute import (
    Captured as Captured,
    ExecutionConfig as ExecutionConfig,
    GraphResult as GraphResult,
    Point as Point,
    answer_only as answer_only,
    compile_points as compile_points,
    resolve_backend as resolve_backend,
    run_graph as run_graph,
)
from ._gradients import (
    CachedRun as CachedRun,
    Gradients as Gradients,
    GradMetric as GradMetric,
    Prefix as Prefix,
    run_cached as run_cached,
    run_gradients as run_gradients,
    shared_prefix as shared_prefix,
)
from ._graph import Graph as Graph, graph as graph
from ._json import node_from_dict as node_from_dict
from ._nodes import (
    Add as Add,
    Assign as Assign,
    AttentionKnockout as AttentionKnockout,
    Capture as Capture,
    Context as Context,
    EdgePatch as EdgePatch,
    ImagePatchMask as ImagePatchMask,
    MeanAblate as MeanAblate,
    Node as Node,
    Patch as Patch,
    ResampleAblate as ResampleAblate,
    Scale as Scale,
    SiteNode as SiteNode,
    Zero as Zero,
)
from ._plan import (
    TRACE_COST as TRACE_COST,
    TraceGroup as TraceGroup,
    first_position as first_position,
    fits_selection as fits_selection,
    reaches_answer as reaches_answer,
    resume_layer as resume_layer,
    trace_groups as trace_groups,
)
from ._plan_trace import sources_and_state as sources_and_state
from ._pool import (
    GraphPool as GraphPool,
    Job as Job,
    RayGraphPool as RayGraphPool,
    run_jobs as run_jobs,
)
from ._reference import (
    mean_ablation as mean_ablation,
    reference_pool as reference_pool,
    resample_ablation as resample_ablation,
)
from ._resume import Resume as Resume
from ._resume_state import ResumeState as ResumeState, resume_state as resume_state
