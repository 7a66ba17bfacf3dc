"""Exact, JSON-safe encoding of tensors stored inside graphs (means, pools, directions)."""

import base64
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..core import GraphError

_VIEWED = {torch.bfloat16: torch.int16}
"""Dtypes numpy lacks, stored bit-exactly as a same-width integer view."""


def tensor_to_json(value: Tensor) -> dict[str, Any]:
    """Encodes a tensor bit-exactly as {dtype, shape, base64 little-endian bytes}."""
    value = value.detach().cpu().contiguous()
    name = str(value.dtype).removeprefix("torch.")
    if value.dtype in _VIEWED:
        value = value.view(_VIEWED[value.dtype])
    array = value.numpy()
    little = array.astype(array.dtype.newbyteorder("<"))
    return {
        "dtype": name,
        "shape": list(array.shape),
        "data": base64.b64encode(little.tobytes()).decode(),
    }


def tensor_from_json(data: dict[str, Any]) -> Tensor:
    """Inverts `tensor_to_json`.

    Raises:
      GraphError: the record is malformed.
    """
    try:
        dtype = getattr(torch, data["dtype"])
        stored = _VIEWED.get(dtype, dtype)
        numpy_dtype = np.dtype(str(stored).removeprefix("torch.")).newbyteorder("<")
        array = np.frombuffer(base64.b64decode(data["data"]), dtype=numpy_dtype).reshape(
            data["shape"]
        )
    except (AttributeError, KeyError, TypeError, ValueError) as err:
        raise GraphError(
            f"Cannot decode a stored tensor ({err}); expected keys dtype, shape and base64 data."
        ) from err
    tensor = torch.from_numpy(array.astype(array.dtype.newbyteorder("="))).clone()
    return tensor.view(dtype) if dtype in _VIEWED else tensor
