"""Exact, JSON-safe encoding of tensors stored inside graphs (means, pools, directions)."""

import base64
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..core import GraphError


def tensor_to_json(value: Tensor) -> dict[str, Any]:
    """Encodes a tensor bit-exactly as {dtype, shape, base64 little-endian bytes}."""
    array = value.detach().cpu().contiguous().numpy()
    return {
        "dtype": str(array.dtype),
        "shape": list(array.shape),
        "data": base64.b64encode(array.astype(array.dtype.newbyteorder("<")).tobytes()).decode(),
    }


def tensor_from_json(data: dict[str, Any]) -> Tensor:
    """Inverts `tensor_to_json`.

    Raises:
      GraphError: the record is malformed.
    """
    try:
        dtype = np.dtype(data["dtype"]).newbyteorder("<")
        raw = base64.b64decode(data["data"])
        array = np.frombuffer(raw, dtype=dtype).reshape(data["shape"])
    except (KeyError, TypeError, ValueError) as err:
        raise GraphError(
            f"Cannot decode a stored tensor ({err}); expected keys dtype, shape and base64 data."
        ) from err
    return torch.from_numpy(array.astype(array.dtype.newbyteorder("="))).clone()
