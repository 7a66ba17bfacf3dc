"""Writing a job's result: ``torch.save`` of the saved values, as nnsight's client loads it.

A saved value may not carry the hosted model's object graph out of the server (its modules,
envoys, tracers, frames): the pickler refuses them by type, with a message saying what to save.
Tensors come back detached: the model's parameters require gradients (as after `vrp.load`, so
that traces computing gradients run as locally), and no autograd graph crosses the wire.
"""

import io
import pickle
import types
from typing import Any

import torch
from nnsight.tracing.tracer import Tracer

from ._errors import LimitError, SandboxError


def _refused_result_types() -> tuple[type, ...]:
    from greenlet import greenlet
    from nnsight.intervention.envoy import Envoy
    from nnsight.intervention.interleaver import Interleaver, Mediator

    return (
        torch.nn.Module, Envoy, Interleaver, Mediator, Tracer, types.ModuleType, types.FrameType,
        types.CodeType, greenlet,
    )  # fmt: skip


class _ResultPickler(pickle.Pickler):
    refused: tuple[type, ...] = ()

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, self.refused):
            raise SandboxError(
                f"A saved value holds an object of type {type(obj).__name__}, part of the hosted "
                "model's object graph, which does not leave the server. Save tensors instead (e.g. "
                "`model.layer.output.save()`, or `module.weight.detach().clone().save()`)."
            )
        if isinstance(obj, torch.Tensor) and obj.requires_grad:
            # no autograd graph crosses the wire: a result is data, as under the client's no_grad
            return obj.detach().__reduce_ex__(2)
        return NotImplemented


_RESULT_PICKLE = types.ModuleType("vrp_result_pickle")
_RESULT_PICKLE.Pickler = _ResultPickler  # type: ignore[attr-defined]
_RESULT_PICKLE.dump = pickle.dump  # type: ignore[attr-defined]


def encode_result(saves: dict[str, Any], *, compress: bool, limit: int) -> bytes:
    """``torch.save`` of the saved values (zstd when the request was), as the client loads it.

    Raises:
      SandboxError: a saved value holds a module, envoy, tracer or frame.
      LimitError: the encoded result is larger than `limit` bytes.
    """
    if not _ResultPickler.refused:
        _ResultPickler.refused = _refused_result_types()
    buffer = io.BytesIO()
    torch.save(saves, buffer, pickle_module=_RESULT_PICKLE)
    data = buffer.getvalue()
    if compress:
        import zstandard

        data = zstandard.ZstdCompressor(level=3).compress(data)
    if len(data) > limit:
        raise LimitError(
            f"The result is {len(data) / 2**20:.1f} MB, over this server's limit of "
            f"{limit / 2**20:.1f} MB (--max-result-mb). Save less (slice positions or layers "
            "inside the trace), or split the work over several traces."
        )
    return data
