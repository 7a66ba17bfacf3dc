"""What a run directory records about how it was made: every invocation's package versions and
machine, the settings of every stage, seeds, model hashes and timings.

A run can be resumed, so more than one invocation may have written its records, possibly with
other package versions or on another machine. Each invocation therefore appends one line to
``invocations.jsonl`` as it starts (a line torn by a kill is skipped when read), each stage
result names the invocation that finished it, and the manifest lists them all and says whether
they agree.
"""

import json
import os
import platform
import warnings
from dataclasses import asdict
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from ..pipeline import SignalConfig
from ._config import StudyConfig

INVOCATIONS = "invocations.jsonl"
_PACKAGES = ("vrp", "torch", "transformers", "nnsight", "numpy", "scipy", "scikit-learn", "pyarrow")


def versions() -> dict[str, str]:
    """Python's and the study's packages' versions."""
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def machine(config: StudyConfig) -> dict[str, Any]:
    """The platform, CPUs, torch threads and the device the run computes on."""
    device = torch.device(config.device)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": cpus,
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
    }


def log_invocation(root: Path, config: StudyConfig, *, resumed: bool, executor: Any = None) -> int:
    """Appends this invocation to the run's log and returns its index. Warns when a resumed run
    continues under other package versions than the invocation before it."""
    earlier = read_invocations(root)
    entry: dict[str, Any] = {
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "resumed": resumed,
        "versions": versions(),
        "machine": machine(config),
        "executor": _describe(executor),
    }
    if earlier and earlier[-1]["versions"] != entry["versions"]:
        changed = sorted(k for k in entry["versions"]
                         if earlier[-1]["versions"].get(k) != entry["versions"][k])  # fmt: skip
        warnings.warn(
            f"{root} was begun with other versions of {', '.join(changed)} "
            f"({[earlier[-1]['versions'].get(k) for k in changed]}, now "
            f"{[entry['versions'][k] for k in changed]}); its records will mix both. The "
            "manifest lists every invocation; rerun into a new --out for a uniform run.",
            UserWarning,
            stacklevel=3,
        )
    path = root / INVOCATIONS
    torn = path.is_file() and not path.read_bytes().endswith(b"\n")  # a write cut by a kill
    with path.open("a", encoding="utf-8") as handle:
        handle.write(("\n" if torn else "") + json.dumps(entry) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    return len(earlier)


def read_invocations(root: Path) -> list[dict[str, Any]]:
    """The logged invocations, oldest first (a line torn by a kill is skipped)."""
    path = root / INVOCATIONS
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def stage_settings(config: StudyConfig) -> dict[str, Any]:
    """Every constant a stage uses that the config does not set, so a reader can tell what was
    computed without reading this version's source."""
    from ._causal import CAUSAL, PLAN_VERSION
    from ._circuits import FDR, HEADLINE, KINDS, NOISE_STD, RESAMPLES
    from ._stages import L1_PROBE

    signals = SignalConfig(batch_size=config.batch_size, samples=config.samples, seed=config.seed)
    return _plain({
        "signals": asdict(signals),
        "probes": {"folds": config.probe_folds, "l1_Cs": list(L1_PROBE.Cs), "l1_cv": L1_PROBE.cv,
                   "concat_last_layers": 5},
        "causal": {"plan_version": PLAN_VERSION, **asdict(CAUSAL)},
        "circuits": {"corruptions": list(KINDS), "noise_std": NOISE_STD, "resamples": RESAMPLES,
                     "fdr": FDR, "headline": list(HEADLINE),
                     "score": "ratio of means (restored margin / clean-corrupt gap, pooled)"},
    })  # fmt: skip


def _plain(value: Any) -> Any:
    """JSON values (enums and other objects as their string)."""
    return json.loads(json.dumps(value, default=lambda v: getattr(v, "value", str(v))))


def manifest(
    root: Path,
    config: StudyConfig,
    results: dict[str, dict[str, dict[str, Any]]],
    seconds: float,
    executor: Any = None,
) -> dict[str, Any]:
    """The run's manifest: config, seeds, settings, every invocation (the last one's versions
    and machine also at the top), model hashes and adapter families, per-stage timings and the
    invocation that computed each stage."""
    invocations = read_invocations(root)
    last = invocations[-1] if invocations else {"versions": versions(), "machine": machine(config)}
    return {
        "format": "vrp-study-run",
        "version": 2,
        "config": config.to_json(),
        "seeds": {"data": config.seed, "sampling": config.seed, "folds": config.seed},
        "settings": stage_settings(config),
        "versions": last["versions"],
        "machine": last["machine"],
        "invocations": invocations,
        "same_versions": all(i["versions"] == last["versions"] for i in invocations),
        "models": {m: _model_facts(r) for m, r in results.items()},
        "timings": {m: {s: r[s]["seconds"] for s in r} for m, r in results.items()},
        "computed_by": {m: {s: r[s].get("invocation") for s in r} for m, r in results.items()},
        "last_invocation_seconds": round(seconds, 3),
        "last_invocation_executor": _describe(executor),  # at the end: e.g. workers replaced
    }


def _describe(executor: Any) -> dict[str, Any]:
    describe = getattr(executor, "describe", None)
    return describe() if describe else {"executor": "local"}


def _model_facts(by_stage: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A model's weight hash and adapter family, as its stage results record them (a stage
    finished by a version of `vrp run` that did not record the family gives None)."""
    first = next(iter(by_stage.values()))
    family = next((r["family"] for r in by_stage.values() if r.get("family")), None)
    return {"sha256": first["model_sha256"], "family": family}
