"""Exact, JSON-safe encoding of tensors stored inside graphs (means, pools, directions)."""

import base64
import math
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


def tensor_from_json(data: Any) -> Tensor:
    """Inverts `tensor_to_json`.

    Raises:
      GraphError: the record is not a {dtype, shape, data} object, names no torch dtype, has a
        shape that is not a list of sizes, or holds a byte count other than its shape needs.
    """
    fix = "Expected {dtype, shape, base64 data} as Graph.save writes it; re-save the graph."
    if not isinstance(data, dict) or not {"dtype", "shape", "data"} <= set(data):
        shown = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise GraphError(f"Cannot decode a stored tensor from {shown}. {fix}")
    dtype = getattr(torch, str(data["dtype"]), None)
    if not isinstance(dtype, torch.dtype):
        raise GraphError(f"stored tensor dtype {data['dtype']!r} is not a torch dtype. {fix}")
    shape = data["shape"]
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise GraphError(f"stored tensor shape {shape!r} is not a list of sizes >= 0. {fix}")
    try:
        stored = _VIEWED.get(dtype, dtype)
        numpy_dtype = np.dtype(str(stored).removeprefix("torch.")).newbyteorder("<")
        raw = base64.b64decode(data["data"], validate=True)
    except (TypeError, ValueError) as err:  # binascii.Error is a ValueError
        raise GraphError(f"Cannot decode a stored tensor ({err}). {fix}") from None
    expected = math.prod(shape) * numpy_dtype.itemsize
    if len(raw) != expected:
        raise GraphError(
            f"stored tensor of shape {shape} and dtype {data['dtype']} needs {expected} bytes, "
            f"its data holds {len(raw)}. {fix}"
        )
    array = np.frombuffer(raw, dtype=numpy_dtype).reshape(shape)
    tensor = torch.from_numpy(array.astype(array.dtype.newbyteorder("="))).clone()
    return tensor.view(dtype) if dtype in _VIEWED else tensor
