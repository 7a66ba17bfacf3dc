"""A hosted model: the VLM a worker owns, its remote identity, and the check that no job changed it.

Jobs run one after another on one shared model, so a job that edits a weight in place, leaves a
hook behind or flips a module to training mode would change every later user's results. After
each job the worker compares the model with the fingerprint taken at load (every parameter's and
buffer's identity, storage, in-place version counter and content checksums, every module's hooks,
mode and attributes, the configuration); on any difference the model is reloaded from its source
and the job fails with a message naming what changed.

The checksums (sum and L2 norm in float64 of every tensor) catch what version counters miss: an
edit through ``weight.data`` or a NumPy view shares the storage but not the counter. They cost
two reductions over the weights per job, a few milliseconds for a 7B model on a GPU.
"""

import json
from collections.abc import Callable
from typing import Any

import torch
from nnsight.modeling.transformers import TransformersModel

from ..models import VLM, load
from ._errors import ServeError

Fingerprint = tuple[tuple[Any, ...], ...]

ATTENTION = ("eager", "sdpa")
"""Attention implementations a request may switch the hosted model to (flash attention too when
the model was loaded with it)."""


def _tensor_state(name: str, tensor: torch.Tensor | None) -> tuple[Any, ...]:
    if tensor is None:
        return (name, None)
    return (name, id(tensor), tensor.data_ptr(), tensor._version, tensor.requires_grad,
            tensor.dtype, tensor.device, tuple(tensor.shape))  # fmt: skip


def _config_state(config: Any) -> tuple[Any, ...]:
    """The configuration's attributes, sub-configurations included (the attention implementation
    left out: requests switch it). Values are compared by repr, without copying the config."""
    from transformers import PretrainedConfig

    items = []
    for key, value in sorted(vars(config).items()):
        if "attn_implementation" in key:
            continue
        items.append(
            (key, _config_state(value) if isinstance(value, PretrainedConfig) else repr(value))
        )
    return tuple(items)


def fingerprint(model: torch.nn.Module) -> Fingerprint:
    """What must be the same after every job (see the module docstring)."""
    from torch.nn.modules import module as torch_module

    hooks = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks",
             "_state_dict_hooks", "_load_state_dict_pre_hooks")  # fmt: skip
    parts: list[tuple[Any, ...]] = []
    for path, module in model.named_modules(remove_duplicate=False):
        parts.append((path, type(module), module.training, tuple(sorted(vars(module))),
                      tuple(len(getattr(module, h, ())) for h in hooks)))  # fmt: skip
        prefix = f"{path}." if path else ""
        parts += [_tensor_state(prefix + n, p) for n, p in module._parameters.items()]
        parts += [_tensor_state(prefix + n, b) for n, b in module._buffers.items()]
    parts.append(("config", _config_state(model.config)))
    parts.append(("global hooks", len(torch_module._global_forward_hooks),
                  len(torch_module._global_forward_pre_hooks),
                  len(torch_module._global_backward_hooks)))  # fmt: skip
    return tuple(parts)


def checksums(model: torch.nn.Module) -> tuple[list[str], torch.Tensor]:
    """The names of `model`'s parameters and buffers, and a (tensor, 2) float64 table of their
    sums and L2 norms (NaN read as 0)."""
    names: list[str] = []
    rows: list[torch.Tensor] = []
    with torch.no_grad():
        for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
            value = tensor if tensor.is_floating_point() else tensor.to(torch.float64)
            norm = torch.linalg.vector_norm(value, dtype=torch.float64)
            rows.append(torch.stack([value.sum(dtype=torch.float64), norm]))
            names.append(name)
    table = torch.stack(rows).nan_to_num() if rows else torch.zeros(0, 2, dtype=torch.float64)
    return names, table.cpu()


def _changed_tensor(before: tuple[list[str], torch.Tensor], after: torch.Tensor) -> str | None:
    names, table = before
    if table.shape == after.shape and torch.equal(table, after):
        return None
    if table.shape != after.shape:
        return "the set of parameters"
    row = int((table != after).any(dim=1).nonzero()[0])
    return f"the values of {names[row]}"


def _difference(before: Fingerprint, after: Fingerprint) -> str:
    if len(before) != len(after):
        return "the module tree changed"
    for old, new in zip(before, after, strict=True):
        if old != new:
            return f"{old[0] or 'the model'} changed"
    return "the model changed"


def _warm_up(vlm: VLM) -> None:
    """One forward and one generated token, so that what transformers installs lazily on first
    use (its output-recording hooks) is part of the baseline fingerprint."""
    from PIL import Image

    inputs = vlm.encode([Image.new("RGB", (32, 32))], ["is there a circle ?"])
    with torch.no_grad():
        vlm.hf(**inputs.data)
    vlm.generate(inputs, max_new_tokens=1)


class HostedModel:
    """A model `vrp serve` hosts, loaded by its VRP name.

    Args:
      name: the VRP name (built-in name, checkpoint directory or Hub id).
      device: where the weights go.
      dtype: weight dtype name, or None for the checkpoint's.
      loader: loads the VLM (vrp.load by default; tests may pass a factory).
    """

    def __init__(
        self,
        name: str,
        *,
        device: str = "cpu",
        dtype: str | None = None,
        loader: Callable[..., VLM] | None = None,
    ) -> None:
        self.name = name
        self.device = device
        self.dtype = dtype
        self._loader = loader or load
        self.vlm: VLM
        self.persistent: dict[str, Any]
        self._baseline: Fingerprint
        self._checksums: tuple[list[str], torch.Tensor]
        self.reloads = 0
        self._load()

    def _load(self) -> None:
        self.vlm = self._loader(self.name, device=self.device, dtype=self.dtype)
        self.default_attention = str(self.vlm.nnsight.attn_implementation)
        self.persistent = self.vlm.nnsight._remoteable_persistent_objects()
        try:  # a Hub id is canonicalised through the Hub, which may be out of reach
            self.model_key: str | None = self.model.to_model_key()
        except Exception:  # noqa: BLE001  (the key is informative only; requests match by name)
            self.model_key = None
        _warm_up(self.vlm)
        self._baseline = fingerprint(self.vlm.hf)
        self._checksums = checksums(self.vlm.hf)

    @property
    def model(self) -> TransformersModel:
        return self.vlm.nnsight

    def describe(self) -> dict[str, Any]:
        """What the model-list endpoint says about this model."""
        hf = self.vlm.hf
        return {
            "name": self.name,
            "family": self.vlm.family,
            "model_key": self.model_key,
            "device": str(self.vlm.device),
            "dtype": str(next(hf.parameters()).dtype).removeprefix("torch."),
            "parameters": sum(p.numel() for p in hf.parameters()),
            "attn_implementation": self.default_attention,
            "reloads": self.reloads,
        }

    def apply_env(self, env: dict[str, Any]) -> None:
        """Applies a request's environment (nnsight sends the client's attention implementation).

        Raises:
          ServeError: an environment key or attention implementation this server does not apply.
        """
        unknown = sorted(set(env) - {"attn_implementation"})
        if unknown:
            raise ServeError(
                f"The request asks for {unknown} in its environment; this server applies only "
                "attn_implementation (PEFT adapters are not served)."
            )
        attention = env.get("attn_implementation")
        if attention is None or attention == self.model.attn_implementation:
            return
        allowed = {*ATTENTION, self.default_attention}
        if attention not in allowed:
            raise ServeError(
                f"attn_implementation {attention!r} is not served here; ask for one of "
                f"{sorted(allowed)} (load the client's model with that implementation)."
            )
        self.model._remoteable_set_env({"attn_implementation": attention})

    def after_job(self) -> str | None:
        """Resets per-job state; reloads the model if the job changed it.

        Returns:
          None when the model is as loaded, else what changed (the model has been reloaded).
        """
        self.vlm.hf.zero_grad(set_to_none=True)
        if self.model.attn_implementation != self.default_attention:
            self.model._remoteable_set_env({"attn_implementation": self.default_attention})
        after = fingerprint(self.vlm.hf)
        if after == self._baseline:
            change = _changed_tensor(self._checksums, checksums(self.vlm.hf)[1])
            if change is None:
                return None
        else:
            change = _difference(self._baseline, after)
        self.reloads += 1
        self._load()
        return change


def model_name(model_key: str) -> str:
    """The model name in an nnsight model key (``"<class path>:<json with repo_id>"``).

    Raises:
      ServeError: the key is not in nnsight 0.8's format, or it comes from another VRP version
        (VRP's classes travel by reference, so client and server must run the same VRP).
    """
    from .. import __version__

    _, _, suffix = model_key.partition(":")
    try:
        data = json.loads(suffix)
        name = data["repo_id"]
    except (ValueError, KeyError, TypeError):
        raise ServeError(
            f"The request's model key {model_key[:200]!r} is not an nnsight 0.8 key "
            "('<class>:{\"repo_id\": ...}'). Send it with nnsight 0.8.1's remote backend."
        ) from None
    if not isinstance(name, str):
        raise ServeError(f"The request's model key names no model: repo_id is {name!r}.")
    client = data.get("vrp")
    if client is not None and client != __version__:
        raise ServeError(
            f"The client runs VRP {client} and this server VRP {__version__}; VRP's classes "
            f"travel by reference, so both must run the same version (pip install vrp=={__version__})."
        )
    return name
