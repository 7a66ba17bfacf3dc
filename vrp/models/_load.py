"""`vrp.load`: built-in models by name, or a checkpoint from a local directory or the Hub."""

import importlib.util
import os
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from safetensors import SafetensorError

from ..core import AdapterError, ConfigError, ModelNotFoundError, VrpError
from ._build import build_vlm
from ._checkpoint_files import check_files, read_json
from ._protocol import Adapter
from ._registry import adapter_class, families
from ._spec import ModelSpec
from ._vlm import VLM

ORGANISM_DIR = Path(__file__).resolve().parent.parent / "organisms" / "assets"


def builtin_names() -> list[str]:
    """Names `load` accepts without a path: tiny random models and the shipped organisms."""
    tiny = [f"tiny/{f}" for f in families()]
    shipped = sorted(
        f"organism/{p.name}" for p in ORGANISM_DIR.glob("*") if (p / "config.json").exists()
    )
    return tiny + shipped


def load(
    name_or_path: str | Path,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | str | None = None,
    attn_implementation: str = "eager",
) -> VLM:
    """Loads a VLM and wraps it in nnsight with its family's adapter.

    Every argument and every file of a checkpoint directory is checked before weights are read,
    and the processor is tried on one prompt, so a damaged checkpoint fails here, naming the file,
    rather than later inside `encode` or a trace.

    Args:
      name_or_path: a built-in name ("organism/llava", "tiny/qwen2_vl", ...), a local checkpoint
        directory, or a Hub repo id such as "llava-hf/llava-1.5-7b-hf".
      device: where the weights go ("cpu", "cuda", "cuda:1", "mps").
      dtype: weight dtype, a floating torch dtype or its name ("bfloat16"); None keeps the
        checkpoint's.
      attn_implementation: "eager" (the default: transformers' reference arithmetic, bitwise
        reproducible whatever the batch, the process or the thread count, which resumed runs
        and remote execution rely on), "sdpa" (faster and smaller; results equal within float
        rounding), or "flash_attention_2" (needs the flash-attn package and a CUDA device; no
        knockouts). Attention patterns work under all three and knockouts under the first two:
        both are recomputed from the attention inputs at the layers they touch, equal to eager
        attention's within 1e-5.

    Raises:
      ConfigError: `device`, `dtype` or `attn_implementation` is invalid or unavailable here.
      ModelNotFoundError: the name is unknown, the directory holds no checkpoint or no weights,
        or the Hub cannot be reached.
      AdapterError: the checkpoint's model type has no adapter, or a checkpoint file is missing,
        truncated or malformed (the message names it).
    """
    place = _check_device(device)
    weights = _check_dtype(dtype)
    attn = _check_attn(attn_implementation, place)
    text = _check_name(name_or_path)
    if text.startswith("tiny/"):
        family = text.removeprefix("tiny/") if text[5:] in families() else _unknown(text)
        spec = ModelSpec(attn_implementation=attn)
        return build_vlm(family, spec, device=place, dtype=weights or torch.float32)
    if text.startswith("organism/"):
        directory = ORGANISM_DIR / text.removeprefix("organism/")
        if not (directory / "config.json").exists():
            _unknown(text)
        return load_directory(directory, name=text, device=place, dtype=weights, attn=attn)
    path = Path(text).expanduser()
    if path.is_dir():
        return load_directory(path, name=text, device=place, dtype=weights, attn=attn)
    if path.suffix or text.count("/") != 1:
        _unknown(text)
    return _load_hub(text, device=place, dtype=weights, attn=attn)


def _check_name(name_or_path: object) -> str:
    if not isinstance(name_or_path, str | os.PathLike) or not str(name_or_path).strip():
        _unknown(str(name_or_path))
    return str(name_or_path)


def _check_device(device: object) -> torch.device:
    """`device` as a torch.device that exists on this machine, or a `ConfigError`."""
    fix = "Pass 'cpu', 'cuda', 'cuda:<index>' or 'mps'."
    if not isinstance(device, str | torch.device):
        raise ConfigError(f"device must be a string or torch.device; got {device!r}. {fix}")
    try:
        place = torch.device(device)
    except RuntimeError:
        raise ConfigError(f"device {device!r} is not a device torch knows. {fix}") from None
    if place.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0 or (place.index is not None and place.index >= count):
            raise ConfigError(
                f"device {device!r} is not available: this machine has {count} CUDA device(s)"
                f"{'' if count else ' (or torch was built without CUDA)'}. Pass 'cpu'"
                f"{f' or cuda:0..cuda:{count - 1}' if count else ''}."
            )
    elif place.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device {device!r} is not available on this machine. Pass 'cpu'.")
    elif place.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"device type {place.type!r} is not supported by vrp.load. {fix}")
    return place


def _check_dtype(dtype: object) -> torch.dtype | None:
    """`dtype` as a floating torch dtype (None stays None), or a `ConfigError`."""
    if dtype is None:
        return None
    resolved = getattr(torch, dtype, None) if isinstance(dtype, str) else dtype
    if not isinstance(resolved, torch.dtype) or not resolved.is_floating_point:
        raise ConfigError(
            f"dtype must be a floating torch dtype or its name; got {dtype!r}. Pass e.g. "
            "torch.bfloat16, 'float16' or 'float32', or None to keep the checkpoint's."
        )
    return resolved


ATTENTION = ("eager", "sdpa", "flash_attention_2")
"""Attention implementations `load` accepts."""


def _check_attn(attn: object, device: torch.device) -> str:
    if not isinstance(attn, str) or attn not in ATTENTION:
        raise ConfigError(
            f"attn_implementation must be one of {ATTENTION}; got {attn!r}. Use 'sdpa' for speed "
            "or 'eager' for transformers' reference arithmetic; both serve attention patterns "
            "and knockouts."
        )
    flash_missing = importlib.util.find_spec("flash_attn") is None
    if attn == "flash_attention_2" and (flash_missing or device.type != "cuda"):
        raise ConfigError(
            "attn_implementation='flash_attention_2' needs the flash-attn package and a CUDA "
            f"device; here flash_attn is {'missing' if flash_missing else 'installed'} and the "
            f"device is {device}. Install flash-attn on a CUDA machine, or use 'sdpa'."
        )
    return attn


def _unknown(name: str) -> Any:
    raise ModelNotFoundError(
        f"Unknown model {name!r}. Expected a built-in name ({', '.join(builtin_names())}), a local "
        "checkpoint directory holding config.json, or a Hub repo id 'owner/name'."
    )


def _model_type(directory: Path) -> str:
    """The checkpoint's `model_type` from its config.json, checked against the registry."""
    config_file = directory / "config.json"
    if not config_file.exists():
        raise ModelNotFoundError(
            f"{directory} holds no config.json, so it is not a transformers checkpoint. Pass the "
            "directory written by save_pretrained (or vrp.save)."
        )
    config = read_json(config_file)
    model_type = config.get("model_type") if isinstance(config, dict) else None
    if not isinstance(config, dict) or not isinstance(model_type, str):
        found = "no model_type" if isinstance(config, dict) else f"a JSON {type(config).__name__}"
        raise AdapterError(
            f"{config_file} must be a JSON object with a model_type (e.g. 'llava'); it holds "
            f"{found}. Re-save the checkpoint with save_pretrained (or vrp.save)."
        )
    try:
        adapter_class(model_type)
    except AdapterError as err:
        raise AdapterError(
            f"{err} {config_file} says model_type {model_type!r}. Load a checkpoint of a "
            "registered family, or add an adapter with vrp.models.register."
        ) from None
    return model_type


def load_directory(
    directory: Path, *, name: str, device: Any = "cpu", dtype: Any = None, attn: str = "eager"
) -> VLM:
    """Loads a checkpoint saved with `save_pretrained` (model + processor files) offline.

    Every file is checked before the weights are read (see `check_files`), so a damaged
    checkpoint fails naming its file, and a config that would build a far larger model than the
    weights hold (a missing `text_config` falls back to a 7B default) fails before allocating it.
    """
    family = _model_type(directory)
    _check_size(family, directory, check_files(directory))
    return _from_pretrained(family, directory, name=name, device=device, dtype=dtype, attn=attn)


def _check_size(family: str, directory: Path, numel: int) -> None:
    """Refuses a config that would build a model far larger than its weights (before building it).

    A config.json without its text or vision sub-config still loads in transformers: the missing
    part becomes the class default (a 7B Llama for LLaVA), whose allocation can exhaust memory long
    before the size mismatch is reported. The model is instantiated on the meta device (no memory)
    and its size compared with the numbers the weight files hold.
    """
    model_class = adapter_class(family).model_class
    try:
        config = model_class.config_class.from_pretrained(directory)
        with torch.device("meta"):
            expected = sum(p.numel() for p in model_class(config).parameters())
    except _LOAD_ERRORS as err:
        raise AdapterError(
            f"{directory / 'config.json'} does not describe a {family} model transformers can build "
            f"({type(err).__name__}: {err}). Restore config.json from the original checkpoint."
        ) from None
    if numel >= 0 and expected > 2 * numel:
        raise AdapterError(
            f"{directory / 'config.json'} describes a {family} model of {expected:,} parameters, "
            f"but the weight files hold {numel:,} numbers: the config does not match the weights "
            "(a missing text_config or vision_config falls back to a full-size default). Restore "
            "config.json from the original checkpoint."
        )


_LOAD_ERRORS = (
    OSError,
    ValueError,
    RuntimeError,
    TypeError,
    AttributeError,
    KeyError,
    ImportError,
    SafetensorError,
)
"""What transformers, tokenizers and safetensors raise on a checkpoint they cannot use."""


def _from_pretrained(
    family: str, source: str | Path, *, name: str, device: Any, dtype: Any, attn: str
) -> VLM:
    """Model, processor and adapter of `family` from a directory or (online) a Hub repo id."""
    local_only = isinstance(source, Path)
    kwargs: dict[str, Any] = {"local_files_only": local_only, "attn_implementation": attn}
    kwargs.update(_placement(torch.device(device)))
    if dtype is not None:
        kwargs["dtype"] = dtype
    model = _load_model(family, source, kwargs).to(torch.device(device))  # a no-op when placed
    processor = _load_processor(family, source, local_only=local_only)
    adapter = adapter_class(family)(model.config)
    _check_processor(family, source, adapter, processor)
    return VLM(model=model, processor=processor, adapter=adapter, name=name)


def _placement(device: torch.device) -> dict[str, Any]:
    """`from_pretrained` arguments reading the weights straight onto `device`.

    transformers reads safetensors onto the CPU by default; with a ``device_map`` it reads each
    tensor onto the device, so a GPU checkpoint never takes a CPU copy. That path needs the
    accelerate package: without it (or for the CPU itself) the weights come through the CPU.
    """
    if device.type == "cpu" or importlib.util.find_spec("accelerate") is None:
        return {}
    return {"device_map": device}


def _load_model(family: str, source: str | Path, kwargs: dict[str, Any]) -> Any:
    """`from_pretrained`, refusing a checkpoint whose weights do not cover the model."""
    try:
        model, info = adapter_class(family).model_class.from_pretrained(
            source, output_loading_info=True, **kwargs
        )
    except _LOAD_ERRORS as err:
        raise AdapterError(
            f"cannot load the {family} weights of {source} ({type(err).__name__}: "
            f"{' '.join(str(err).split())[:400]}). Restore the checkpoint's config.json and weight "
            "files from the original, or re-save the model with vrp.save."
        ) from None
    missing = sorted(info.get("missing_keys", ()))
    mismatched = sorted(str(k) for k in info.get("mismatched_keys", ()))
    problems = [f"{len(missing)} tensors missing (e.g. {missing[:3]})"] if missing else []
    problems += (
        [f"{len(mismatched)} of another shape (e.g. {mismatched[:3]})"] if mismatched else []
    )
    if problems:
        raise AdapterError(
            f"the weight files of {source} do not match its config.json: {'; '.join(problems)}; "
            "transformers would fill them with random values. Restore the weight files (and "
            "config.json) from the original checkpoint."
        )
    return model


def _load_processor(family: str, source: str | Path, *, local_only: bool) -> Any:
    try:
        return adapter_class(family).load_processor(source, local_only=local_only)
    except _LOAD_ERRORS as err:
        raise _processor_error(family, source, err) from None


def _processor_error(family: str, source: str | Path, err: Exception) -> AdapterError:
    files = adapter_class(family).processor_files
    missing = [f for f in files if not (source / f).is_file()] if isinstance(source, Path) else []
    absent = f" Missing there: {', '.join(missing)}." if missing else ""
    return AdapterError(
        f"the tokenizer / processor files of {source} do not build a working {family} processor "
        f"({type(err).__name__}: {' '.join(str(err).split())[:300]}).{absent} Copy "
        f"{', '.join(files)} from the original checkpoint, or re-save the "
        "model with vrp.save."
    )


def _check_processor(family: str, source: str | Path, adapter: Adapter, processor: Any) -> None:
    """Encodes one prompt and finds the yes/no tokens, so that a broken processor or tokenizer
    fails at load, naming its files, rather than later in `encode` or a signal."""
    vision = getattr(adapter.config, "vision_config", None)
    side = int(getattr(vision, "image_size", 0) or 64)
    image = Image.new("RGB", (side, side), (128, 128, 128))
    try:
        adapter.encode(processor, [image], [adapter.prompt("Is there a cat?")])
        adapter.answer_tokens(processor.tokenizer)
    except (VrpError, *_LOAD_ERRORS) as err:
        raise _processor_error(family, source, err) from None


def _load_hub(repo_id: str, *, device: Any, dtype: Any, attn: str) -> VLM:
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(repo_id)
    except OSError as err:
        raise ModelNotFoundError(
            f"Cannot fetch {repo_id!r} from the Hugging Face Hub ({type(err).__name__}). Offline, "
            "download the checkpoint elsewhere and pass its local directory to vrp.load."
        ) from err
    family = str(config.model_type)
    adapter_class(family)  # an unsupported family fails before any weight is downloaded
    return _from_pretrained(family, repo_id, name=repo_id, device=device, dtype=dtype, attn=attn)


def save(vlm: VLM, directory: str | Path) -> Path:
    """Saves a VLM's weights, config, tokenizer and processor files so that `load` reads them back.

    Raises:
      ConfigError: `directory` is not a path, is a file, or cannot be created (checked before
        anything is written).
    """
    if not isinstance(directory, str | os.PathLike):
        raise ConfigError(
            f"save needs a folder path (str or Path); got {type(directory).__name__} "
            f"{directory!r}. Pass e.g. vrp.save(vlm, 'checkpoints/my-model')."
        )
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise ConfigError(
            f"cannot save a model to {directory}: it is a file, and a checkpoint is a folder. "
            "Pass a folder path (it is created if needed)."
        )
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(
            f"cannot create the checkpoint folder {directory}: {err.strerror or err}. Choose a "
            "path under a folder you can write to."
        ) from None
    vlm.hf.save_pretrained(directory)
    vlm.adapter.save_processor(vlm.processor, directory)
    return directory


def default_model() -> str:
    """The built-in model the CLI uses by default: the LLaVA organism once shipped, else tiny."""
    names = builtin_names()
    return "organism/llava" if "organism/llava" in names else "tiny/llava"
