"""The study's batches on Ray: one model replica per actor, records written by the driver.

`RayExecutor` is a `BatchExecutor`: for each (model, stage) it sends the missing batch indices
to a pool of actors. Each actor loads the model once, prepares the stage exactly as the driver
does (`prepare_*`, which reads the causal plan back from the run directory when it is there), and
returns each batch's records and hidden states. The driver writes them into the run directory as
they arrive, so the run directory, resumption and the merged tables are the same as a local
run's, and a batch depends only on the config and its index, so the records are identical.

A worker whose process dies mid-batch (killed, stopped by the host's out-of-memory killer, its
node gone) loses only the batches it held: the driver sees the failed call, kills what is left of
the actor, starts a fresh one in its place and sends those batches again. Nothing is written
twice, since only the driver writes and a batch is written once, when its result arrives. An
error raised inside a batch (a CUDA out-of-memory error, a bug) is not retried: it stops the run,
which a rerun resumes from the last batch written.

The workers read the causal stage's plan from the run directory, so on several nodes the run
directory (`--out`) must be on a filesystem every node shares, like the data and the weights.

Ray is an optional dependency (the ``ray`` extra).
"""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core import ConfigError
from ._config import StudyConfig
from ._rundir import RunDir
from ._samples import study_samples
from ._stages import Batched, Rows, StageContext, compute_batch, load_model


@dataclass(frozen=True, kw_only=True)
class RayOptions:
    """Where and how wide the study runs on Ray.

    Attributes:
      address: the cluster to join ("auto", "ray://host:10001", an IP:port); None starts a
        local cluster for this process.
      workers: actors per model (each holds one replica of the model).
      gpus_per_worker: GPUs each actor reserves (0 on CPU clusters; 1 for one GPU per replica).
      cpus_per_worker: CPUs each actor reserves (also its torch threads).
      max_restarts: dead workers replaced over the run before it stops.
    """

    address: str | None = None
    workers: int = 2
    gpus_per_worker: float = 0.0
    cpus_per_worker: int = 1
    max_restarts: int = 8

    def __post_init__(self) -> None:
        if (self.workers < 1 or self.gpus_per_worker < 0 or self.cpus_per_worker < 1
                or self.max_restarts < 0):  # fmt: skip
            raise ConfigError(
                f"ray: expected workers >= 1, gpus_per_worker >= 0, cpus_per_worker >= 1 and "
                f"max_restarts >= 0; got {self.workers}, {self.gpus_per_worker}, "
                f"{self.cpus_per_worker} and {self.max_restarts}."
            )


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "executor 'ray' needs Ray, which is not installed. Install the ray extra: "
            "pip install -c constraints.txt -e '.[ray]'."
        ) from None
    return ray


class StudyWorker:
    """One model replica (the body of a Ray actor): prepares stages and computes batches."""

    def __init__(self, config: StudyConfig, model: str, threads: int) -> None:
        import torch

        torch.set_num_threads(threads)
        self.config = config
        vlm = load_model(config, model)
        self.ctx = StageContext(config=self.config, run=RunDir(self.config.out), model=model,
                                vlm=vlm, samples=study_samples(self.config),
                                advance=lambda n: None)  # fmt: skip
        self.prepared: dict[str, Batched] = {}

    def compute(self, stage: str, index: int) -> tuple[int, Rows, np.ndarray | None]:
        """Batch `index` of `stage`: (index, records, hidden states)."""
        from ._study import PREPARE

        if stage not in self.prepared:
            self.prepared[stage] = PREPARE[stage](self.ctx)
        rows, hidden = compute_batch(self.prepared[stage], self.config.batch_size, index)
        return index, rows, hidden

    def machine(self) -> dict[str, Any]:
        """Where this worker computes (the manifest's `machine` fields, and the host name)."""
        import platform

        from ._manifest import machine

        return {**machine(self.config), "host": platform.node()}

    def pid(self) -> int:
        import os

        return os.getpid()


class RayExecutor:
    """Computes the study's batches on Ray actors (see the module doc).

    Args:
      config: the run (each actor rebuilds it and loads the model itself).
      options: the cluster and the pool's size.

    Raises:
      ConfigError: Ray is not installed, or bad options.
    """

    def __init__(self, config: StudyConfig, options: RayOptions | None = None) -> None:
        self.ray = _import_ray()
        self.config, self.options = config, options or RayOptions()
        self.started = not self.ray.is_initialized()
        if self.started:
            self.ray.init(address=self.options.address, include_dashboard=False,
                          log_to_driver=False, configure_logging=False)  # fmt: skip
        self.actor_class = self.ray.remote(StudyWorker)
        self.pools: dict[str, list[Any]] = {}
        self.restarts = 0

    def _spawn(self, model: str) -> Any:
        o = self.options
        return self.actor_class.options(num_cpus=o.cpus_per_worker, num_gpus=o.gpus_per_worker,
                                        max_concurrency=1).remote(
            self.config, model, o.cpus_per_worker)  # fmt: skip

    def pool(self, model: str) -> list[Any]:
        """The model's actors (started on first use)."""
        if model not in self.pools:
            self.pools[model] = [self._spawn(model) for _ in range(self.options.workers)]
        return self.pools[model]

    def compute(
        self, ctx: StageContext, stage: str, indices: Sequence[int]
    ) -> Iterator[tuple[int, Rows, np.ndarray | None]]:
        """Yields every batch of `indices` as the actors finish them; a dead actor is replaced
        and its batches are sent again."""
        actors = self.pool(ctx.model)
        pending = list(indices)
        running: dict[Any, tuple[int, int, Any]] = {}  # call -> (batch, actor slot, actor)
        load = [0] * len(actors)  # calls in flight per slot
        while pending or running:
            while pending and len(running) < 2 * len(actors):  # two queued calls per actor
                slot = min(range(len(actors)), key=load.__getitem__)  # the least busy actor
                call = actors[slot].compute.remote(stage, pending[0])
                running[call] = (pending.pop(0), slot, actors[slot])
                load[slot] += 1
            ready, _ = self.ray.wait(list(running), num_returns=1)
            index, slot, actor = running.pop(ready[0])
            load[slot] -= 1
            try:
                result = self.ray.get(ready[0])
            except self.ray.exceptions.RayActorError as error:
                if actors[slot] is actor:  # the first failed call of this actor replaces it
                    self._check_replaceable(error)
                    self.ray.kill(actor)  # an unreachable actor must not keep its resources
                    self.restarts += 1
                    actors[slot] = self._spawn(ctx.model)
                pending.append(index)
                continue
            yield result

    def _check_replaceable(self, error: Exception) -> None:
        """Raises instead of replacing a worker that could not start (the same error would
        recur) or once replacements exceed `max_restarts`."""
        if getattr(error, "actor_init_failed", False):
            raise ConfigError(
                f"a Ray worker could not start: {_last_line(error)}. Fix the cause (the worker "
                "loads the model and the data exactly as `vrp run` does) and rerun."
            ) from None
        if self.restarts >= self.options.max_restarts:
            raise ConfigError(
                f"a Ray worker died after {self.restarts} replacements (at most max_restarts="
                f"{self.options.max_restarts} are replaced): {_last_line(error)}. Check the "
                "workers' memory and the cluster's health; the run resumes from its last batch."
            ) from None

    def close(self) -> None:
        """Stops the actors, and the local cluster if this executor started it."""
        for actors in self.pools.values():
            for actor in actors:
                self.ray.kill(actor)
        self.pools.clear()
        if self.started:
            self.ray.shutdown()

    def describe(self) -> dict[str, Any]:
        """What the manifest records about the executor."""
        o = self.options
        return {"executor": "ray", "address": o.address, "workers": o.workers,
                "gpus_per_worker": o.gpus_per_worker, "cpus_per_worker": o.cpus_per_worker,
                "restarted_workers": self.restarts,
                "worker_machines": self._machines()}  # fmt: skip

    def _machines(self) -> list[dict[str, Any]]:
        """The distinct machines the live workers compute on (the manifest's `machine` is the
        driver's); empty before any worker has started."""
        actors = [actor for pool in self.pools.values() for actor in pool]
        seen: list[dict[str, Any]] = []
        for actor in actors:
            try:
                found = self.ray.get(actor.machine.remote(), timeout=30)
            except Exception:  # noqa: BLE001  (a dead or stuck worker says nothing)
                continue
            if found not in seen:
                seen.append(found)
        return seen


def _last_line(error: Exception) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__
