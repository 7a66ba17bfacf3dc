"""Hosted models on Ray actors (`vrp serve --executor ray`): one server fronts a cluster.

Each hosted model lives in one Ray actor (`ModelActor`), placed by Ray on any node with the
resources asked for (`--gpus-per-worker`, `--cpus-per-worker`); the web server keeps the queues,
sessions and statuses and hands each job to the model's actor, one at a time, exactly as a local
worker runs it (`LocalRunner` inside the actor: the same sandbox, limits and model checks). The
actor returns what the job printed with its outcome, so LOG frames arrive just before the result
rather than as the job prints.

Failure behaviour: a job over its time limit is stopped inside the actor as locally; an actor
that does not answer within the limit plus `GRACE_S` (stuck in native code) is killed. An actor
that dies (killed, out of memory, its node gone) fails the job it was running with a clear error;
Ray restarts it, it reloads the model, and the next job runs on the fresh actor.
"""

import dataclasses
import os
import time
from typing import Any

from ..core import ConfigError
from ._config import ServeConfig
from ._runner import JobSpec, Outcome

RESTART_TIMEOUT_S = 600.0
"""Seconds a job waits for a restarted actor to have reloaded its model."""
GRACE_S = 30.0
"""Seconds an actor may overrun the job limit (its own deadline failed to stop the job) before
the server kills and restarts it."""


class ModelActor:
    """The body of the Ray actor holding one hosted model: a `LocalRunner` in the actor's process.

    Args:
      name: the model's VRP name.
      config: the server's settings (limits, device, dtype; no keys travel).
    """

    def __init__(self, name: str, config: ServeConfig) -> None:
        import torch

        from ._hosted import HostedModel
        from ._runner import LocalRunner

        torch.set_num_threads(config.cpus_per_worker)
        self.runner = LocalRunner(
            HostedModel(name, device=config.device, dtype=config.dtype), config
        )

    def describe(self) -> dict[str, Any]:
        import ray

        node = ray.get_runtime_context().get_node_id()
        return {**self.runner.describe(), "executor": "ray", "node": node, "pid": os.getpid()}

    def run(self, job: JobSpec) -> tuple[Outcome, dict[str, Any]]:
        """Runs `job`; returns its outcome, with what it printed, and the model's description
        (its reload count may have changed)."""
        printed: list[str] = []
        outcome = self.runner.run(job, printed.append)
        return dataclasses.replace(outcome, logs=tuple(printed)), self.describe()

    def pid(self) -> int:
        return os.getpid()


def import_ray() -> Any:
    """The `ray` module.

    Raises:
      ConfigError: Ray is not installed.
    """
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "vrp serve --executor ray needs Ray, which is not installed. Install the ray extra: "
            "pip install -c constraints.txt -e '.[ray]'."
        ) from None
    return ray


def connect(config: ServeConfig) -> bool:
    """Joins the cluster `config.ray_address` names (None: starts a local one) unless this process
    is connected already; returns whether it connected (and should disconnect at shutdown)."""
    ray = import_ray()
    if ray.is_initialized():
        return False
    ray.init(address=config.ray_address, include_dashboard=False, log_to_driver=False,
             configure_logging=False)  # fmt: skip
    return True


class RayRunner:
    """Runs a hosted model's jobs on its Ray actor (see the module docstring).

    Args:
      name: the model's VRP name.
      config: the server's settings.

    Raises:
      ConfigError: the actor could not load the model (the message carries the actor's error).
    """

    def __init__(self, name: str, config: ServeConfig) -> None:
        self.ray = import_ray()
        self.name, self.config = name, config
        actor_config = dataclasses.replace(config, host="127.0.0.1", api_keys=frozenset())
        self.actor = (
            self.ray.remote(ModelActor)
            .options(
                num_cpus=config.cpus_per_worker,
                num_gpus=config.gpus_per_worker,
                max_restarts=-1,
                max_task_retries=0,
                max_concurrency=1,
            )  # fmt: skip
            .remote(name, actor_config)
        )
        try:
            self.description: dict[str, Any] = self.ray.get(
                self.actor.describe.remote(), timeout=RESTART_TIMEOUT_S
            )
        except self.ray.exceptions.GetTimeoutError:
            self.ray.kill(self.actor, no_restart=True)
            raise ConfigError(
                f"The Ray actor for {name!r} did not start within {RESTART_TIMEOUT_S:g} s: the "
                "cluster may lack the resources asked for (--gpus-per-worker, --cpus-per-worker; "
                "see `ray status`)."
            ) from None
        except self.ray.exceptions.RayError as error:
            self.ray.kill(self.actor, no_restart=True)
            raise ConfigError(
                f"The Ray actor for {name!r} could not load it: {_last_line(error)}. Check that "
                "the model loads with `vrp.load` on the cluster's nodes (package, weights, device)."
            ) from None
        self.restarts = 0
        self.restarting = False  # the actor died or was killed: wait for it before the next job
        self.gone: str | None = None  # why the actor cannot come back, once it cannot

    def describe(self) -> dict[str, Any]:
        """The model's description as its actor last reported it, with the actor's restarts."""
        return {**self.description, "restarts": self.restarts}

    def alive(self) -> bool:
        """False once the actor cannot come back (Ray restarts a dead one; a job meanwhile waits
        for the fresh one)."""
        return self.gone is None

    def run(self, job: JobSpec, emit: Any) -> Outcome:
        """Runs `job` on the actor; its prints come back with the outcome (`Outcome.logs`). After
        an actor's death the job first waits for the restarted actor to have loaded the model."""
        exceptions = self.ray.exceptions
        if self.restarting or self.gone:
            problem = self.gone or self._await_restart()
            if problem:
                return Outcome(
                    description=f"Job {job.id} on {job.model} cannot run: the model's Ray actor "
                    f"did not come back after a failure ({problem}). Restart `vrp serve`.",
                    error="ActorGone",
                )
        try:
            outcome, self.description = self.ray.get(
                self.actor.run.remote(job), timeout=self.config.job_timeout_s + GRACE_S
            )
        except exceptions.GetTimeoutError:
            self.ray.kill(self.actor, no_restart=False)
            self.restarts, self.restarting = self.restarts + 1, True
            return Outcome(
                description=f"Job {job.id} on {job.model} ran past this server's limit of "
                f"{self.config.job_timeout_s:g} s (--job-timeout) and did not stop; the model's "
                "worker was restarted. Run less per trace or split it.",
                error="JobTimeout",
                refused=True,
            )
        except exceptions.RayActorError as error:
            self.restarts, self.restarting = self.restarts + 1, True
            return Outcome(
                description=f"Job {job.id} on {job.model} failed: the Ray actor holding the model "
                f"died while running it ({_last_line(error)}). Ray restarts it with the model "
                "reloaded; submit the job again.",
                error="RayActorError",
            )
        return outcome

    def _await_restart(self) -> str | None:
        """Waits for the restarted actor to answer (it reloads the model first); returns None
        once it does, else why it cannot (then recorded in `gone`)."""
        deadline = time.monotonic() + RESTART_TIMEOUT_S
        while True:
            try:
                left = max(1.0, deadline - time.monotonic())
                self.description = self.ray.get(self.actor.describe.remote(), timeout=left)
                self.restarting = False
                return None
            except self.ray.exceptions.ActorUnavailableError:
                if time.monotonic() > deadline:
                    self.gone = f"still restarting after {RESTART_TIMEOUT_S:g} s"
                    return self.gone
                time.sleep(0.2)  # still restarting: calls are refused until it is back
            except (
                self.ray.exceptions.GetTimeoutError,
                self.ray.exceptions.RayActorError,
            ) as error:
                self.gone = _last_line(error)
                return self.gone

    def close(self) -> None:
        """Stops the actor."""
        self.ray.kill(self.actor, no_restart=True)


def _last_line(error: Exception) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__
