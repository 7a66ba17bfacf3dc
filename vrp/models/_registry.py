"""The family registry: which adapter serves which transformers model type."""

from typing import Any

from ..core import AdapterError
from ._base import BaseAdapter
from .llava import LlavaAdapter
from .paligemma import PaliGemmaAdapter
from .qwen2_vl import Qwen2VLAdapter

_ADAPTERS: dict[str, type[BaseAdapter]] = {
    LlavaAdapter.family: LlavaAdapter,
    PaliGemmaAdapter.family: PaliGemmaAdapter,
    Qwen2VLAdapter.family: Qwen2VLAdapter,
}


def families() -> tuple[str, ...]:
    """Names of the registered model families."""
    return tuple(_ADAPTERS)


def register(adapter: type[BaseAdapter]) -> type[BaseAdapter]:
    """Registers an adapter class under its `family` name (usable as a class decorator)."""
    if not adapter.family:
        raise AdapterError(f"{adapter.__name__} must set a non-empty `family` class attribute.")
    _ADAPTERS[adapter.family] = adapter
    return adapter


def adapter_class(family: str) -> type[BaseAdapter]:
    """The adapter class of `family`.

    Raises:
      AdapterError: the family is not registered.
    """
    if family not in _ADAPTERS:
        raise AdapterError(
            f"Unknown model family {family!r}. Registered families: {', '.join(_ADAPTERS)}."
        )
    return _ADAPTERS[family]


def adapter_for_config(config: Any) -> BaseAdapter:
    """Builds the adapter for a transformers config by its `model_type`.

    Raises:
      AdapterError: no adapter serves this model type.
    """
    return adapter_class(str(getattr(config, "model_type", None)))(config)
