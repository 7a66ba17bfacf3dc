"""Disk-backed activation storage: append per batch, read per layer as a memory map."""

from ._store import ActivationStore as ActivationStore

__all__ = ["ActivationStore"]
