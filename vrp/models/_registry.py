"""The family registry: which adapter serves which transformers model type.

Families join it with the `register` class decorator in their own file; every list of families in
VRP (built-in names, CLI help, the serve sandbox, test parametrisations) is read from here.
"""

from typing import Any, TypeVar

from ..core import AdapterError
from ._protocol import Adapter, AdapterClass

A = TypeVar("A", bound=AdapterClass)

_ADAPTERS: dict[str, AdapterClass] = {}


def families() -> tuple[str, ...]:
    """Names of the registered model families, in registration order."""
    return tuple(_ADAPTERS)


def register(adapter: A) -> A:
    """Registers an adapter class under its `family` name; a class decorator.

    The parameter's type makes mypy check the class against the `Adapter` Protocol.

    Raises:
      AdapterError: the class has no non-empty `family`, or another class holds that name.
    """
    family = getattr(adapter, "family", "")
    if not isinstance(family, str) or not family:
        raise AdapterError(
            f"{adapter.__name__} must set a non-empty string `family` class attribute (the "
            f"transformers config's model_type); got {family!r}."
        )
    held = _ADAPTERS.get(family)
    if held is not None and held.__qualname__ != adapter.__qualname__:
        raise AdapterError(
            f"family {family!r} is already registered by {held.__module__}.{held.__qualname__}; "
            f"{adapter.__module__}.{adapter.__qualname__} cannot take it. Give the new adapter "
            "another family name, or unregister the old one first."
        )
    _ADAPTERS[family] = adapter
    return adapter


def unregister(family: str) -> None:
    """Removes `family` from the registry (a no-op if it is not registered)."""
    _ADAPTERS.pop(family, None)


def adapter_class(family: str) -> AdapterClass:
    """The adapter class of `family`.

    Raises:
      AdapterError: the family is not registered.
    """
    if family not in _ADAPTERS:
        raise AdapterError(
            f"Unknown model family {family!r}. Registered families: {', '.join(_ADAPTERS)}. "
            "Pass one of those, or register an adapter with @vrp.models.register."
        )
    return _ADAPTERS[family]


def adapter_for_config(config: Any) -> Adapter:
    """Builds the adapter for a transformers config by its `model_type`.

    Raises:
      AdapterError: no adapter serves this model type.
    """
    return adapter_class(str(getattr(config, "model_type", None)))(config)
