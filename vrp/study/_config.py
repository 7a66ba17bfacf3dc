"""What a study run does: models, data, stages and settings, validated before any work starts.

A run is described by one frozen `StudyConfig`. The CLI builds it from a TOML file and flags
(`config_from_mapping`), the Python API directly; either way every field is checked up front, so a
typo in a model name or a missing image folder stops the run before a model is loaded or a file
written, with one error naming the field.
"""

import sys
from dataclasses import dataclass, fields
from enum import Enum
from pathlib import Path
from typing import Any

from ..core import ConfigError, DataError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


class Stage(str, Enum):
    """The study's stages, in the order a run executes them."""

    ACCURACY = "accuracy"  # answers, POPE metrics per split
    SIGNALS = "signals"  # every per-question signal (structural, mechanistic, behavioural)
    PROBES = "probes"  # per-layer probes on the stored hidden states, with controls
    CAUSAL = "causal"  # masking, neuron / dimension ablation, MLP bypass: per-question outcomes
    CIRCUITS = "circuits"  # clean/corrupt patching by layer, component and position; localisation

    @classmethod
    def parse(cls, value: "str | Stage") -> "Stage":
        try:
            return cls(value)
        except ValueError:
            names = ", ".join(s.value for s in cls)
            raise ConfigError(f"stages: unknown stage {value!r}; choose from {names}.") from None


ALL_STAGES = tuple(Stage)
ORGANISMS = ("organism/llava", "organism/paligemma", "organism/qwen2_vl")
DTYPES = ("float32", "bfloat16", "float16")


@dataclass(frozen=True, kw_only=True)
class StudyConfig:
    """One study run.

    Attributes:
      models: built-in names ("organism/llava"), checkpoint folders or Hub ids.
      data: "synthetic" (the synthetic benchmark: the three POPE splits, counting, spatial) or
        the path of a POPE file (JSON Lines or a JSON array).
      images: the image folder of a POPE file (required with one, refused with "synthetic").
      n: questions per split (synthetic) or the first `n` questions of the file (None: all).
      stages: which stages to run, executed in `Stage` order.
      out: the run directory; rerunning the same config there resumes it.
      device: where the models run ("cpu", "cuda", "cuda:1", ...).
      dtype: their weight dtype; None keeps the checkpoint's.
      remote: the URL of a server (`vrp serve`) hosting the models under the same names: every
        trace and generation runs there (`VLM.with_backend`), and the models are still loaded
        here (signals read the unembedding; nnsight builds traces from the module tree). None
        runs everything here.
      batch_size: questions per trace.
      samples: K sampled answers per question for self-consistency (0 skips it).
      seed: seeds the synthetic data, sampling, folds and controls.
      probe_folds: stratified folds of the held-out probe AUROCs.
    """

    models: tuple[str, ...] = ORGANISMS
    data: str = "synthetic"
    images: Path | None = None
    n: int | None = 100
    stages: tuple[Stage, ...] = ALL_STAGES
    out: Path = Path("runs/study")
    device: str = "cpu"
    dtype: str | None = None
    remote: str | None = None
    batch_size: int = 25
    samples: int = 10
    seed: int = 0
    probe_folds: int = 5

    def __post_init__(self) -> None:
        _check(self)

    def to_json(self) -> dict[str, Any]:
        """The config as JSON values (paths and stages as strings), as the manifest records it."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Path):
                value = str(value)
            elif f.name == "stages":
                value = [s.value for s in value]
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    @property
    def synthetic(self) -> bool:
        return self.data == "synthetic"


def _check(config: StudyConfig) -> None:
    rules = {
        "models": bool(config.models) and len(set(config.models)) == len(config.models),
        "n": config.n is None or config.n >= 1,
        "stages": bool(config.stages) and len(set(config.stages)) == len(config.stages),
        "batch_size": config.batch_size >= 1,
        "samples": config.samples >= 0,
        "seed": 0 <= config.seed < 2**32,
        "probe_folds": config.probe_folds >= 2,
        "dtype": config.dtype is None or config.dtype in DTYPES,
        "remote": config.remote is None
        or (isinstance(config.remote, str) and config.remote.startswith(("http://", "https://"))),
    }
    meaning = {
        "models": "at least one model, each named once",
        "n": "a whole number >= 1 (questions per split), or None for every question",
        "stages": "at least one stage, each named once",
        "batch_size": "a whole number >= 1",
        "samples": "a whole number >= 0 (0 skips self-consistency)",
        "seed": "a whole number in 0 .. 2**32 - 1",
        "probe_folds": "a whole number >= 2",
        "dtype": f"one of {', '.join(DTYPES)} (or unset to keep the checkpoint's)",
        "remote": "the http(s) URL of a `vrp serve` server, e.g. http://127.0.0.1:8080 (or unset)",
    }
    for name, ok in rules.items():
        if not ok:
            raise ConfigError(
                f"{name}: expected {meaning[name]}, got {getattr(config, name)!r}. "
                f"Fix it in the config file or with --{name.replace('_', '-')}."
            )
    _check_data(config)


def _check_data(config: StudyConfig) -> None:
    if config.synthetic:
        if config.images is not None:
            raise ConfigError(
                f"images: the synthetic benchmark draws its own images, got images={config.images}. "
                "Drop --images, or pass a POPE file with --data."
            )
        return
    path = Path(config.data)
    if not path.is_file():
        raise DataError(
            f"data: expected 'synthetic' or an existing POPE file, got {config.data!r}, which "
            f"{'is a folder' if path.is_dir() else 'does not exist'}. Pass the .jsonl/.json file."
        )
    if config.images is None or not Path(config.images).is_dir():
        got = "nothing" if config.images is None else f"{config.images} (not a folder)"
        raise DataError(
            f"images: a POPE file needs the folder holding its images, got {got}. "
            "Pass --images DIR (for COCO POPE files, the val2014 folder)."
        )


_FIELDS = {f.name for f in fields(StudyConfig)}


def config_from_mapping(values: dict[str, Any]) -> StudyConfig:
    """A `StudyConfig` from plain values (a TOML table, CLI flags), converting types and naming
    any unknown key or wrongly typed value.

    Raises:
      ConfigError: an unknown key, a value of the wrong type, or a value out of range.
    """
    unknown = sorted(set(values) - _FIELDS)
    if unknown:
        raise ConfigError(
            f"Unknown config key(s) {', '.join(map(repr, unknown))}; known keys: "
            f"{', '.join(sorted(_FIELDS))}."
        )
    kwargs: dict[str, Any] = {}
    for name, value in values.items():
        kwargs[name] = _convert(name, value)
    return StudyConfig(**kwargs)


_INTS = ("n", "batch_size", "samples", "seed", "probe_folds")


def _convert(name: str, value: Any) -> Any:
    if name in ("models", "stages"):
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list | tuple) or not all(isinstance(v, str) for v in items):
            raise ConfigError(f"{name}: expected a list of names, got {value!r}.")
        return tuple(Stage.parse(v) for v in items) if name == "stages" else tuple(items)
    if name in _INTS:
        if value is None and name == "n":
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{name}: expected a whole number, got {value!r}.")
        return value
    if name in ("images", "out"):
        if not isinstance(value, str | Path):
            raise ConfigError(f"{name}: expected a path, got {value!r}.")
        return Path(value)
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"{name}: expected a string, got {value!r}.")
    return value


def read_config_file(path: Path) -> dict[str, Any]:
    """The keys of a TOML config file (its top level, or its [run] table).

    Raises:
      ConfigError: the file is missing, unreadable or not valid TOML.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Config file {path} does not exist. Pass the path of a .toml file.")
    try:
        values = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"Config file {path} is not valid TOML: {err}. Fix the file.") from None
    table = values.get("run", values)
    if not isinstance(table, dict):
        raise ConfigError(f"Config file {path}: [run] must be a table, got {table!r}.")
    return dict(table)


DEFAULT = StudyConfig()
"""The default run: the three organisms, every stage, 100 questions per synthetic split."""


def check_models(models: tuple[str, ...]) -> None:
    """Checks that every model name can resolve, before anything is loaded.

    Built-in names must exist; a path must be a checkpoint folder; anything else must look like a
    Hub id ("owner/name"), which only `vrp.load` can finally resolve.

    Raises:
      ConfigError: an unknown built-in name, a missing folder, or a malformed id.
    """
    from ..models import builtin_names

    builtins = builtin_names()
    for name in models:
        if name in builtins:
            continue
        path = Path(name)
        if name.startswith(("organism/", "tiny/")):
            raise ConfigError(
                f"models: unknown built-in model {name!r}; built-in models are "
                f"{', '.join(sorted(builtins))}."
            )
        if path.exists() or name.startswith(("/", ".", "~")):
            if not (path / "config.json").is_file():
                raise ConfigError(
                    f"models: {name!r} is not a checkpoint folder (no config.json there). Pass a "
                    "folder saved by save_pretrained / vrp.save, a built-in name or a Hub id."
                )
            continue
        if name.count("/") != 1 or not all(name.split("/")):
            raise ConfigError(
                f"models: {name!r} is neither a built-in name ({', '.join(sorted(builtins))}), "
                "a checkpoint folder nor a Hub id of the form 'owner/name'."
            )
