"""`vrp.load`: built-in models by name, or a checkpoint from a local directory or the Hub."""

import json
from pathlib import Path
from typing import Any

import torch
from transformers import AutoProcessor, AutoTokenizer
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

from ..core import ModelNotFoundError
from ._build import build_vlm
from ._processors import QWEN2_VL_CHAT_TEMPLATE, qwen2_vl_from_parts
from ._registry import adapter_class, families
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
    dtype: torch.dtype | None = None,
    attn_implementation: str = "eager",
) -> VLM:
    """Loads a VLM and wraps it in nnsight with its family's adapter.

    Args:
      name_or_path: a built-in name ("organism/llava", "tiny/qwen2_vl", ...), a local checkpoint
        directory, or a Hub repo id such as "llava-hf/llava-1.5-7b-hf".
      device: where the weights go.
      dtype: weight dtype (None keeps the checkpoint's).
      attn_implementation: "eager" (needed for attention patterns) or "sdpa".

    Raises:
      ModelNotFoundError: the name is unknown, the directory holds no checkpoint, or the Hub cannot
        be reached.
      AdapterError: the checkpoint's model type has no adapter.
    """
    text = str(name_or_path)
    if text.startswith("tiny/"):
        vlm = build_vlm(text.removeprefix("tiny/") if text[5:] in families() else _unknown(text))
        vlm.hf.set_attn_implementation(attn_implementation)
        vlm.adapter.eager = attn_implementation == "eager"
        return _place(vlm, device, dtype)
    if text.startswith("organism/"):
        directory = ORGANISM_DIR / text.removeprefix("organism/")
        if not (directory / "config.json").exists():
            _unknown(text)
        return load_directory(
            directory, name=text, device=device, dtype=dtype, attn=attn_implementation
        )
    path = Path(text).expanduser()
    if path.is_dir():
        return load_directory(path, name=text, device=device, dtype=dtype, attn=attn_implementation)
    if path.suffix or text.count("/") != 1:
        _unknown(text)
    return _load_hub(text, device=device, dtype=dtype, attn=attn_implementation)


def _unknown(name: str) -> Any:
    raise ModelNotFoundError(
        f"Unknown model {name!r}. Expected a built-in name ({', '.join(builtin_names())}), a local "
        "checkpoint directory holding config.json, or a Hub repo id 'owner/name'."
    )


def _place(vlm: VLM, device: str | torch.device, dtype: torch.dtype | None) -> VLM:
    vlm.hf.to(device=torch.device(device), dtype=dtype) if dtype else vlm.hf.to(
        torch.device(device)
    )
    return vlm


def _model_type(directory: Path) -> str:
    config_file = directory / "config.json"
    if not config_file.exists():
        raise ModelNotFoundError(
            f"{directory} holds no config.json, so it is not a transformers checkpoint. Pass the "
            "directory written by save_pretrained (or vrp.save)."
        )
    model_type = str(json.loads(config_file.read_text()).get("model_type"))
    adapter_class(model_type)  # raises the AdapterError naming the registered families
    return model_type


def load_directory(
    directory: Path, *, name: str, device: Any = "cpu", dtype: Any = None, attn: str = "eager"
) -> VLM:
    """Loads a checkpoint saved with `save_pretrained` (model + processor files) offline."""
    family = _model_type(directory)
    return _from_pretrained(family, directory, name=name, device=device, dtype=dtype, attn=attn)


def _from_pretrained(
    family: str, source: str | Path, *, name: str, device: Any, dtype: Any, attn: str
) -> VLM:
    """Model, processor and adapter of `family` from a directory or (online) a Hub repo id."""
    local_only = isinstance(source, Path)
    kwargs: dict[str, Any] = {"local_files_only": local_only, "attn_implementation": attn}
    if dtype is not None:
        kwargs["dtype"] = dtype
    model = adapter_class(family).model_class.from_pretrained(source, **kwargs)
    model = model.to(torch.device(device))
    processor = _load_processor(family, source, local_only=local_only)
    adapter = adapter_class(family)(model.config)
    return VLM(model=model, processor=processor, adapter=adapter, name=name)


def _load_processor(family: str, source: str | Path, *, local_only: bool) -> Any:
    if family != "qwen2_vl":
        return AutoProcessor.from_pretrained(source, local_files_only=local_only)
    images = Qwen2VLImageProcessorPil.from_pretrained(source, local_files_only=local_only)
    tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local_only)
    template = getattr(tokenizer, "chat_template", None) or QWEN2_VL_CHAT_TEMPLATE
    return qwen2_vl_from_parts(images, tokenizer, template)


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
    """Saves a VLM's weights, config, tokenizer and processor files so that `load` reads them back."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    vlm.hf.save_pretrained(directory)
    vlm.tokenizer.save_pretrained(directory)
    vlm.processor.image_processor.save_pretrained(directory)
    if vlm.family != "qwen2_vl":
        vlm.processor.save_pretrained(directory)
    return directory


def default_model() -> str:
    """The built-in model the CLI uses by default: the LLaVA organism once shipped, else tiny."""
    names = builtin_names()
    return "organism/llava" if "organism/llava" in names else "tiny/llava"
