"""Graphs run in parallel on Ray actors that each hold a replica of the model.

A sweep is many independent traces (chunks of patched cells, groups of variants). `RayGraphPool`
runs such a list of (graph, inputs) jobs on actors that load the model by the name `vrp.load` was
given, and returns the results in the jobs' order. Each job is the very trace `run_graph` would
run locally, so the results are the same; what the caller does with them (metrics, statistics)
stays on the driver. Circuits' sweeps, discovery and hypothesis tests accept a pool.

A worker that dies is replaced and its jobs are sent again; a worker that cannot start raises.
Ray is an optional dependency (the ``ray`` extra).
"""

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from ..core import ConfigError
from ..models import VLM, VlmInputs
from ._execute import ExecutionConfig, GraphResult, run_graph
from ._graph import Graph
from ._resume import Resume

MAX_RESTARTS = 8  # dead workers replaced over a pool's life before it gives up

Job = tuple[Graph, Mapping[str, VlmInputs]] | tuple[Graph, Mapping[str, VlmInputs], Resume | None]
"""One trace: a graph, its inputs per run and optionally where it resumes (`run_graph`'s
`resume`)."""


def _parts(job: Job) -> tuple[Graph, Mapping[str, VlmInputs], Resume | None]:
    return (job[0], job[1], job[2]) if len(job) == 3 else (job[0], job[1], None)  # noqa: PLR2004


@runtime_checkable
class GraphPool(Protocol):
    """Runs many graphs on the model `vlm` names, in parallel somewhere."""

    def run_graphs(
        self, vlm: VLM, jobs: Sequence[Job], config: ExecutionConfig | None = None
    ) -> list[GraphResult]:
        """The result of every job, in order, each run with `config` (memory budget, ...)."""
        ...


def run_jobs(
    vlm: VLM, jobs: Sequence[Job], pool: GraphPool | None, config: ExecutionConfig | None = None
) -> list[GraphResult]:
    """Every job's result, each run with `config`: on `pool`, or here one after the other."""
    if pool is None:
        return [run_graph(vlm, graph, dict(inputs), config, resume=resume)
                for graph, inputs, resume in map(_parts, jobs)]  # fmt: skip
    return pool.run_graphs(vlm, jobs, config) if config is not None else pool.run_graphs(vlm, jobs)


class GraphWorker:
    """The body of a Ray actor: one replica of a model, running graphs."""

    def __init__(self, model: str, device: str, dtype: str | None, threads: int) -> None:
        import torch

        from ..models import load

        torch.set_num_threads(threads)
        self.vlm = load(model, device=device, dtype=dtype)

    def pid(self) -> int:
        """The worker's process id (for monitoring)."""
        import os

        return os.getpid()

    def run(
        self,
        graph: Graph,
        inputs: Mapping[str, VlmInputs],
        resume: Resume | None = None,
        config: ExecutionConfig | None = None,
    ) -> GraphResult:
        moved = {name: value.to(self.vlm.device) for name, value in inputs.items()}
        result = run_graph(self.vlm, graph, moved, config or ExecutionConfig(), resume=resume)
        return _on_cpu(result)


def _on_cpu(result: GraphResult) -> GraphResult:
    from dataclasses import replace

    captures = {k: replace(c, value=c.value.cpu()) for k, c in result.captures.items()}
    logits = {k: v.cpu() for k, v in result.answer_logits.items()}
    return GraphResult(captures=captures, answer_logits=logits)


class RayGraphPool:
    """A pool of Ray actors holding replicas of one model (see the module doc).

    Args:
      model: the name the replicas are loaded under (`vrp.load`); a `VLM` given to
        `run_graphs` must carry the same name.
      workers: actors (replicas).
      device: where each replica runs.
      dtype: the replicas' weight dtype (None: the checkpoint's).
      gpus_per_worker: GPUs each actor reserves.
      address: the Ray cluster to join; None starts a local one (or uses the running one).

    Raises:
      ConfigError: Ray is not installed, or bad sizes.
    """

    def __init__(  # noqa: PLR0913  (each is one documented knob of the pool)
        self,
        model: str,
        *,
        workers: int = 2,
        device: str = "cpu",
        dtype: str | None = None,
        gpus_per_worker: float = 0.0,
        address: str | None = None,
    ) -> None:
        if workers < 1 or gpus_per_worker < 0:
            raise ConfigError(
                f"RayGraphPool needs workers >= 1 and gpus_per_worker >= 0; got {workers} and "
                f"{gpus_per_worker}."
            )
        try:
            import ray
        except ImportError:
            raise ConfigError(
                "RayGraphPool needs Ray, which is not installed: pip install -c constraints.txt "
                "-e '.[ray]'."
            ) from None
        self.ray, self.model = ray, model
        self.started = not ray.is_initialized()
        if self.started:
            ray.init(address=address, include_dashboard=False, log_to_driver=False,
                     configure_logging=False)  # fmt: skip
        worker: Any = ray.remote(GraphWorker).options(num_cpus=1, num_gpus=gpus_per_worker)
        self._new = lambda: worker.remote(model, device, dtype, 1)
        self.actors: list[Any] = [self._new() for _ in range(workers)]
        self.restarts = 0

    def run_graphs(
        self, vlm: VLM, jobs: Sequence[Job], config: ExecutionConfig | None = None
    ) -> list[GraphResult]:
        """Every job's result, in order; each job is sent to the next free actor and run with
        `config` there (its backend must be local to the actor: None or "local").

        Raises:
          ConfigError: `vlm` is not the pool's model, or a worker could not start.
        """
        if vlm.name != self.model:
            raise ConfigError(
                f"this pool holds replicas of {self.model!r}, not of {vlm.name!r}; make a pool "
                "for the model you sweep (RayGraphPool(vlm.name))."
            )
        if config is not None and config.backend not in (None, "local"):
            raise ConfigError(
                f"a pool's replicas run their traces themselves; got backend {config.backend!r}. "
                "Leave the backend unset (or 'local') when running on a pool."
            )
        results: dict[int, GraphResult] = {}
        pending = list(range(len(jobs)))
        running: dict[Any, tuple[int, int, Any]] = {}
        while pending or running:
            for slot, actor in enumerate(self.actors):  # one job per actor at a time
                if pending and actor not in [a for *_, a in running.values()]:
                    index = pending.pop(0)
                    graph, inputs, resume = _parts(jobs[index])
                    running[actor.run.remote(graph, dict(inputs), resume, config)] = (
                        index,
                        slot,
                        actor,
                    )
            ready, _ = self.ray.wait(list(running), num_returns=1)
            index, slot, actor = running.pop(ready[0])
            try:
                results[index] = self.ray.get(ready[0])
            except self.ray.exceptions.RayActorError as error:
                if getattr(error, "actor_init_failed", False):
                    raise ConfigError(
                        f"a Ray worker could not load {self.model!r}: {error}"
                    ) from None
                if self.restarts >= MAX_RESTARTS:
                    raise ConfigError(
                        f"Ray workers of {self.model!r} died {self.restarts + 1} times: "
                        f"{error}. Check their memory and the cluster's health."
                    ) from None
                if self.actors[slot] is actor:
                    self.restarts += 1
                    self.actors[slot] = self._new()
                pending.append(index)
        return [results[i] for i in range(len(jobs))]

    def close(self) -> None:
        """Stops the actors, and the local cluster if this pool started it."""
        for actor in self.actors:
            self.ray.kill(actor)
        self.actors = []
        if self.started:
            self.ray.shutdown()
