"""Reading a finished run directory: config, manifest, results per model and stage, records.

The report is built from these files alone (no model is loaded). Every key is read defensively:
a run written by another version of `vrp run` may lack a key or add one, and a stage the run did
not include is simply absent (`RunData.has`).
"""

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ..core import ConfigError, DataError

STAGES = ("accuracy", "signals", "probes", "causal", "circuits")
"""The study's stages, in run order (the names `vrp run --stages` takes)."""

MANIFEST_FORMAT = "vrp-study-run"


@dataclass(frozen=True, kw_only=True)
class RunData:
    """A finished run, as read from its directory.

    Attributes:
      root: the run directory.
      config: ``config.json`` (the run's `StudyConfig` as JSON).
      manifest: ``manifest.json`` (versions, machine, seeds, hashes, timings).
      models: the models, in the config's order.
      stages: the stages the run's config lists, in run order.
      results: ``results[model][stage]``: each ``results/<model>/<stage>.json``.
    """

    root: Path
    config: dict[str, Any]
    manifest: dict[str, Any]
    models: tuple[str, ...]
    stages: tuple[str, ...]
    results: dict[str, dict[str, dict[str, Any]]]
    _records: dict[str, pa.Table | None] = field(default_factory=dict, repr=False, compare=False)

    def has(self, stage: str) -> bool:
        """Whether the run includes `stage` (for at least one model)."""
        return any(stage in by_stage for by_stage in self.results.values())

    def result(self, model: str, stage: str) -> dict[str, Any] | None:
        """`model`'s summary of `stage`, or None when the run has none."""
        return self.results.get(model, {}).get(stage)

    def records(self, stage: str) -> pa.Table | None:
        """``records/<stage>.parquet`` (every model's rows), or None when it does not exist
        (a stage undefined for every model writes no records). Read once, then cached."""
        if stage not in self._records:
            path = self.root / "records" / f"{stage}.parquet"
            self._records[stage] = pq.read_table(path) if path.is_file() else None
        return self._records[stage]

    def rows(self, stage: str, model: str) -> list[dict[str, Any]]:
        """`model`'s rows of ``records/<stage>.parquet`` as dicts (empty when there are none)."""
        table = self.records(stage)
        if table is None or "model" not in table.column_names:
            return []
        return [r for r in table.to_pylist() if r.get("model") == model]

    def n_layers(self, model: str) -> int | None:
        """`model`'s language layers, from whichever of its files records them (probes,
        circuits, the activation store's manifest), or None."""
        probes = self.result(model, "probes") or {}
        if isinstance(probes.get("per_layer"), dict) and probes["per_layer"]:
            return len(probes["per_layer"])
        circuits = self.result(model, "circuits") or {}
        if isinstance(circuits.get("layers"), int):
            return int(circuits["layers"])
        from ..study import model_slug  # only here: importing vrp.study loads torch

        path = self.root / "store" / model_slug(model) / "manifest.json"
        layers = json.loads(path.read_text()).get("layers") if path.is_file() else None
        return len(layers) if isinstance(layers, list) else None

    @property
    def n_samples(self) -> int | None:
        """Self-consistency samples K per question (None when the run does not say)."""
        settings = (self.manifest.get("settings") or {}).get("signals") or {}
        value = settings.get("samples", self.config.get("samples"))
        return int(value) if isinstance(value, int) else None


def read_run(root: Path | str) -> RunData:
    """Reads a finished run directory written by `vrp run`.

    Args:
      root: the folder `vrp run --out` wrote.

    Returns:
      The run's config, manifest and per-model results (records are read on demand).

    Raises:
      ConfigError: `root` does not exist, is not a folder, or holds no VRP run.
      DataError: the run is unfinished (no manifest yet, or a listed stage has no results), or
        one of its JSON files is unreadable.
    """
    root = Path(root)
    _check_folder(root)
    config = _read_json(root / "config.json")
    manifest = _read_json(root / "manifest.json")
    if manifest.get("format") != MANIFEST_FORMAT:
        raise ConfigError(
            f"{root / 'manifest.json'} is not a VRP run manifest: expected format "
            f"{MANIFEST_FORMAT!r}, got {manifest.get('format')!r}. Pass the folder `vrp run` wrote."
        )
    results = _read_results(root)
    models = _ordered_models(config, results)
    stages = tuple(s for s in STAGES if s in (config.get("stages") or STAGES))
    _check_complete(root, models, stages, results)
    return RunData(root=root, config=config, manifest=manifest, models=models, stages=stages,
                   results=results)  # fmt: skip


def _check_folder(root: Path) -> None:
    if not root.exists():
        raise ConfigError(
            f"RUN_DIR {root} does not exist: expected the folder a `vrp run` wrote (its --out, "
            "runs/study by default). Check the path, or run `vrp run --out "
            f"{root}` first."
        )
    if not root.is_dir():
        raise ConfigError(
            f"RUN_DIR {root} is a file: expected the folder a `vrp run` wrote (holding "
            "config.json, manifest.json, results/, records/). Pass that folder."
        )
    if (root / "manifest.json").is_file():
        return
    if (root / "config.json").is_file():
        done = sorted(p.parent.name + "/" + p.stem for p in root.glob("results/*/*.json"))
        raise DataError(
            f"{root} holds an unfinished run: config.json is there but not manifest.json, which "
            f"`vrp run` writes when every stage has finished (finished so far: "
            f"{', '.join(done) or 'nothing'}). Rerun the same `vrp run` command to resume it, "
            "then build the report."
        )
    found = sorted(p.name for p in root.iterdir())[:8]
    raise ConfigError(
        f"{root} is not a VRP run directory: expected config.json, manifest.json, results/ and "
        f"records/ as `vrp run` writes them, found {found or 'an empty folder'}. Pass the folder "
        "given to `vrp run --out`."
    )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(
            f"{path} is missing: a finished run has it. Rerun the same `vrp run` command to "
            "complete the run."
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(
            f"{path} is not valid JSON ({err}): the run directory is damaged. Rerun `vrp run` "
            "into a new --out folder."
        ) from None
    if not isinstance(value, dict):
        raise DataError(f"{path} holds a {type(value).__name__}, expected a JSON object.")
    return value


def _read_results(root: Path) -> dict[str, dict[str, dict[str, Any]]]:
    """``results/<slug>/<stage>.json``, keyed by the model name each file records."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for path in sorted(root.glob("results/*/*.json")):
        if path.stem not in STAGES:
            continue
        value = _read_json(path)
        model = str(value.get("model") or path.parent.name)
        out.setdefault(model, {})[path.stem] = value
    return out


def _ordered_models(config: dict[str, Any], results: dict[str, Any]) -> tuple[str, ...]:
    listed = [str(m) for m in config.get("models") or []]
    return tuple(listed + sorted(m for m in results if m not in listed))


def _check_complete(
    root: Path, models: tuple[str, ...], stages: tuple[str, ...], results: dict[str, Any]
) -> None:
    if not models:
        raise DataError(
            f"{root} has a manifest but no results/<model>/<stage>.json: expected one per model "
            "and stage. Rerun the same `vrp run` command to complete the run."
        )
    missing = [f"{m}/{s}" for m in models for s in stages if s not in results.get(m, {})]
    if missing:
        raise DataError(
            f"{root} holds an unfinished run: its config lists stages {list(stages)}, but "
            f"results are missing for {', '.join(missing)}. Rerun the same `vrp run` command "
            "to resume it, then build the report."
        )
