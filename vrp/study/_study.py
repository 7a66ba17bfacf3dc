"""`run_study`: every stage of the VRP study for every model, streamed to a run directory.

The order is fixed: validate everything (config, models, data) before any work; claim the run
directory (a rerun of the same config resumes it); then per model, per stage: skip it if its result
is on disk, else stream its batches and write its result. Finally merge each stage's records over
the models and write the manifest.
"""

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch

from ..core import ConfigError, DataError
from ..models import VLM
from ..models._load import _check_device
from ._causal import prepare_causal, run_causal
from ._circuits import prepare_circuits, run_circuits
from ._config import Stage, StudyConfig, check_models
from ._manifest import log_invocation, manifest
from ._rundir import RunDir, merged, model_slug, write_json
from ._samples import Samples, study_samples, yes_no_samples_count
from ._stages import (
    Batched,
    BatchExecutor,
    StageContext,
    load_model,
    prepare_accuracy,
    prepare_signals,
    run_accuracy,
    run_probes,
    run_signals,
)

StageFn = Callable[[StageContext], dict[str, Any]]

PREPARE: dict[str, Callable[[StageContext], Batched]] = {
    Stage.ACCURACY.value: prepare_accuracy,
    Stage.SIGNALS.value: prepare_signals,
    Stage.CAUSAL.value: prepare_causal,
    Stage.CIRCUITS.value: prepare_circuits,
}
"""The batched stages, prepared for one model (what an executor's workers run)."""

STAGES: dict[Stage, StageFn] = {
    Stage.ACCURACY: run_accuracy,
    Stage.SIGNALS: run_signals,
    Stage.PROBES: run_probes,
    Stage.CAUSAL: run_causal,
    Stage.CIRCUITS: run_circuits,
}
SORT_KEYS = {
    Stage.ACCURACY: ("model", "item"),
    Stage.SIGNALS: ("model", "item"),
    Stage.PROBES: ("model", "layer", "condition"),
    Stage.CAUSAL: ("model", "family", "level", "condition", "draw", "item"),
    Stage.CIRCUITS: ("model", "corruption", "item", "component", "positions", "layer"),
}
REQUIRES = {Stage.PROBES: Stage.SIGNALS}


@dataclass(frozen=True, kw_only=True)
class StudyResult:
    """A finished run: where it is, and every stage's summary per model.

    Attributes:
      root: the run directory.
      results: ``results[model][stage]``, the JSON summaries also written under ``results/``.
      resumed: the run continued one found in `root`.
      seconds: wall time of this invocation.
    """

    root: Path
    results: dict[str, dict[str, dict[str, Any]]]
    resumed: bool
    seconds: float


def check_config(config: StudyConfig) -> Samples:
    """Everything that can be checked without loading a model; returns the run's questions.

    Raises:
      ConfigError / DataError: an unknown model, a stage whose prerequisite is missing, a remote
        server that cannot be reached or does not host the models, or bad data.
    """
    check_models(config.models)
    _check_device(config.device)
    slugs = [model_slug(m) for m in config.models]
    if len(set(slugs)) != len(slugs):
        raise ConfigError(
            f"models: {list(config.models)} name one model folder twice under the run directory "
            f"({slugs}); name each model once, in one spelling."
        )
    for stage, needed in REQUIRES.items():
        if stage in config.stages and needed not in config.stages:
            raise ConfigError(
                f"stages: {stage.value!r} reads the hidden states the {needed.value!r} stage "
                f"stores; add {needed.value!r} to the stages."
            )
    if config.remote is not None:
        from ..models._remote import check_server

        check_server(config.remote, config.models)
    samples = study_samples(config)
    signal_stages = [s for s in config.stages if s is not Stage.ACCURACY]
    if signal_stages and yes_no_samples_count(samples) == 0:
        raise DataError(
            f"stages: {', '.join(s.value for s in signal_stages)} need yes/no questions, and "
            f"{config.data!r} holds none. Run only the 'accuracy' stage on counting questions."
        )
    return samples


def run_study(
    config: StudyConfig,
    *,
    progress: "Progress | None" = None,
    executor: BatchExecutor | None = None,
) -> StudyResult:
    """Runs (or resumes) a study and returns its summaries.

    Args:
      config: the run.
      progress: reports progress (the CLI passes a rich display); None is silent.
      executor: computes the batched stages' batches elsewhere (e.g. `RayExecutor`); None
        computes them here. The records are the same either way.

    Raises:
      ConfigError / DataError: bad config or data, or `config.out` holds another run; nothing is
        written then.
    """
    start = time.perf_counter()
    samples = check_config(config)
    run = RunDir(config.out)
    existed = run.root.exists()
    resumed = run.claim(config.to_json())
    try:
        invocation = log_invocation(run.root, config, resumed=resumed, executor=executor)
        return _run(config, run, samples, progress or Progress(), invocation, start, executor)
    except BaseException:
        if not resumed:  # a first attempt that failed before writing any result: unclaim
            run.release(remove_folder=not existed)
        raise


def _run(  # noqa: PLR0913  (the run's parts, passed down once)
    config: StudyConfig, run: RunDir, samples: Samples, progress: "Progress", invocation: int,
    start: float, executor: BatchExecutor | None,
) -> StudyResult:  # fmt: skip
    stages = [s for s in Stage if s in config.stages]
    totals = {s: _stage_size(s, samples) * len(config.models) for s in stages}
    done = {s: _stage_size(s, samples) * sum(run.stage_done(s.value, m) for m in config.models)
            for s in stages}  # fmt: skip
    progress.start(totals, done)
    results: dict[str, dict[str, dict[str, Any]]] = {}
    try:
        for model in config.models:
            results[model] = _run_model(config, run, model, stages, samples, progress,
                                        (invocation, executor))  # fmt: skip
    finally:
        progress.stop()
    for stage in stages:
        tables = [t for m in config.models for t in run.batch_tables(stage.value, m)]
        if tables:  # none when the stage was undefined for every model (its JSON says why)
            run.write_records(stage.value, merged(tables), SORT_KEYS[stage])
    seconds = time.perf_counter() - start
    write_json(run.root / "manifest.json", manifest(run.root, config, results, seconds, executor))
    return StudyResult(root=run.root, results=results, resumed=invocation > 0, seconds=seconds)


def _stage_size(stage: Stage, samples: Samples) -> int:
    return len(samples) if stage is Stage.ACCURACY else yes_no_samples_count(samples)


def _run_model(
    config: StudyConfig, run: RunDir, model: str, stages: list[Stage], samples: Samples,
    progress: "Progress", how: tuple[int, BatchExecutor | None],
) -> dict[str, dict[str, Any]]:  # fmt: skip
    invocation, executor = how
    out: dict[str, dict[str, Any]] = {}
    todo = [s for s in stages if not run.stage_done(s.value, model)]
    vlm = load_model(config, model) if todo else None
    digest = _check_same_weights(run, model, stages, vlm) if vlm is not None else ""
    for stage in stages:
        if stage not in todo:
            out[stage.value] = run.read_result(stage.value, model)
            continue
        assert vlm is not None
        began = time.perf_counter()
        ctx = StageContext(config=config, run=run, model=model, vlm=vlm, samples=samples,
                           advance=partial(progress.advance, stage), executor=executor)  # fmt: skip
        result = {**STAGES[stage](ctx), "seconds": round(time.perf_counter() - began, 3)}
        result["model"] = model
        result["model_sha256"] = digest
        result["family"] = vlm.family  # the adapter's family, which the report compares by
        result["invocation"] = invocation  # its line in invocations.jsonl
        run.write_result(stage.value, model, result)
        out[stage.value] = result
    return out


def _check_same_weights(run: RunDir, model: str, stages: list[Stage], vlm: VLM) -> str:
    """The weights' hash, checked against the hash the run's finished stages recorded: a resumed
    run must not mix results of different weights (a Hub id without a pinned revision, an edited
    checkpoint folder).

    Raises:
      ConfigError: the weights differ from those an earlier invocation used.
    """
    digest = weights_hash(vlm)
    for stage in stages:
        if run.stage_done(stage.value, model):
            recorded = run.read_result(stage.value, model).get("model_sha256")
            if recorded and recorded != digest:
                raise ConfigError(
                    f"models: {model!r} now has other weights (sha256 {digest[:12]}...) than the "
                    f"ones the run in {run.root} used for its {stage.value!r} stage "
                    f"({recorded[:12]}...). Resume with the same weights, or pass another --out."
                )
    return digest


def weights_hash(vlm: VLM) -> str:
    """SHA-256 over the model's parameters and buffers (names, dtypes, shapes, bytes)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(vlm.hf.state_dict().items()):
        value = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}:{value.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(value.view(torch.uint8).numpy().tobytes() if value.numel() else b"")
    return digest.hexdigest()


class Progress:
    """Progress reporting; the base class is silent (see `RichProgress` for the terminal)."""

    def start(self, totals: dict[Stage, int], done: dict[Stage, int]) -> None:
        """Called once with the questions each stage processes over all models, and how many of
        them a resumed run already holds (they count as done, not in the rate)."""

    def advance(self, stage: Stage, n: int) -> None:
        """`n` more questions of `stage` are done."""

    def stop(self) -> None:
        """The run ended."""


class RichProgress(Progress):
    """A bar per stage and one overall, with rates and ETA (rich)."""

    def __init__(self) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress as Bars,
            ProgressColumn,
            TextColumn,
            TimeElapsedColumn,  # fmt: skip
            TimeRemainingColumn,
        )
        from rich.text import Text

        class Rate(ProgressColumn):
            def render(self, task: Any) -> Text:
                speed = task.finished_speed or task.speed
                return Text("" if speed is None else f"{speed:.1f} q/s")

        self.bars = Bars(
            TextColumn("{task.description:<9}"), BarColumn(), MofNCompleteColumn(), Rate(),
            TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
        )  # fmt: skip
        self.tasks: dict[Any, Any] = {}

    def start(self, totals: dict[Stage, int], done: dict[Stage, int]) -> None:
        self.bars.start()
        self.tasks["all"] = self.bars.add_task(
            "overall", total=sum(totals.values()), completed=sum(done.values())
        )
        for stage, total in totals.items():
            self.tasks[stage] = self.bars.add_task(stage.value, total=total, completed=done[stage])

    def advance(self, stage: Stage, n: int) -> None:
        self.bars.advance(self.tasks[stage], n)
        self.bars.advance(self.tasks["all"], n)

    def stop(self) -> None:
        self.bars.stop()
