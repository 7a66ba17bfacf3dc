"""Checks of a checkpoint folder's files before transformers reads them (private).

transformers reports a damaged file late and obscurely (a `SafetensorError` about a header, a
`JSONDecodeError` without a file name, or nothing at all when a weight shard is short), so `vrp.load`
first parses every JSON file and checks that each safetensors header covers its file.
"""

import json
import math
from pathlib import Path
from typing import Any

from ..core import AdapterError, ModelNotFoundError


def read_json(path: Path) -> Any:
    """The parsed JSON file at `path`, or an `AdapterError` naming it."""
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise AdapterError(
            f"{path} is damaged: expected a UTF-8 JSON file, but it cannot be read ({err}). "
            "Restore it from the original checkpoint, or re-save the model with vrp.save."
        ) from None


JSON_FILES = (
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "preprocessor_config.json",
    "processor_config.json",
    "chat_template.json",
)
"""Checkpoint files besides config.json that are JSON when present (each is parsed up front)."""


def check_files(directory: Path) -> int:
    """Parses the checkpoint's JSON files and checks its weight files; returns how many numbers
    the weights hold (-1 for legacy pickled weights, which only transformers can read).

    Raises:
      AdapterError: a JSON file does not parse, or a weight file is truncated or damaged.
      ModelNotFoundError: there are no weight files, or a listed shard is missing.
    """
    for file in JSON_FILES:
        if (directory / file).is_file():
            read_json(directory / file)
    return _check_weights(directory)


def _check_weights(directory: Path) -> int:
    """Checks that the weight files exist and are whole; returns how many numbers they hold."""
    index = directory / "model.safetensors.index.json"
    if index.is_file():
        content = read_json(index)
        weight_map = content.get("weight_map") if isinstance(content, dict) else None
        if not isinstance(weight_map, dict) or not weight_map:
            raise AdapterError(
                f"{index} has no weight_map of tensor names to shard files. Restore it from the "
                "original checkpoint."
            )
        shards = sorted({directory / str(f) for f in weight_map.values()})
        return sum(_safetensors_numel(shard) for shard in shards)
    if (directory / "model.safetensors").is_file():
        return _safetensors_numel(directory / "model.safetensors")
    if any(
        (directory / f).is_file() for f in ("pytorch_model.bin", "pytorch_model.bin.index.json")
    ):
        return -1  # a legacy pickle: transformers checks it while loading
    raise ModelNotFoundError(
        f"{directory} holds config.json but no weights: expected model.safetensors (or the shards "
        "listed in model.safetensors.index.json). Copy the weight files next to config.json."
    )


def _safetensors_numel(path: Path) -> int:
    """Numbers held by a .safetensors file, after checking its header covers the whole file."""
    damaged = (
        f"{path} is truncated or damaged: {{why}}. Restore it from the original checkpoint "
        "(or re-save the model with vrp.save)."
    )
    if not path.is_file():
        raise ModelNotFoundError(
            f"{path} is missing: model.safetensors.index.json lists it as a weight shard. Copy it "
            "from the original checkpoint."
        )
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(8)
        length = int.from_bytes(head, "little") if len(head) == 8 else -1
        if not 0 < length <= size - 8:
            raise AdapterError(damaged.format(why=f"its header does not fit its {size} bytes"))
        try:
            header = json.loads(handle.read(length))
            tensors = [v for k, v in header.items() if k != "__metadata__"]
            end = max((int(t["data_offsets"][1]) for t in tensors), default=0)
            numel = sum(math.prod(int(d) for d in t["shape"]) for t in tensors)
        except (ValueError, TypeError, KeyError, AttributeError, IndexError):
            raise AdapterError(
                damaged.format(why="its header is not valid safetensors JSON")
            ) from None
    if end > size - 8 - length:
        raise AdapterError(
            damaged.format(
                why=f"its header declares {end:,} bytes of tensors, it holds {size - 8 - length:,}"
            )
        )
    return numel
