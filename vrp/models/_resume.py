"""What an adapter provides to resume the language model part-way (`vrp.interventions.Resume`).

A trace resumed at layer `l` skips the language layers below `l`; resumed at position `p` as
well, it runs only positions `p` onwards, attending to the earlier positions through their keys
and values cached from a run of the same inputs (transformers' `DynamicCache`). Only families
whose prompt positions attend causally may do the latter (`causal_prompt`).
"""

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import Tensor

from ..core import Component, Site


class ResumeSupport:
    """Mixin of `BaseAdapter`: skipping layers, resumed inputs, positions and caches."""

    pixel_inputs: ClassVar[tuple[str, ...]] = ("pixel_values",)
    """The processor outputs that only the vision tower reads."""
    vision_enters_at_embeddings: ClassVar[bool] = False
    """Whether the vision tower's output reaches the language model only through the input
    embeddings (image features replace the image tokens' embeddings, as in LLaVA, PaliGemma and
    Qwen-VL), so that a trace skipping the first language layer need not run the vision tower.
    Off by default: a family that feeds vision features to later layers (cross-attention) keeps
    its pixels in resumed traces."""
    causal_prompt: ClassVar[bool] = True
    """Whether every prompt position attends only to earlier ones, so that the keys and values of
    a prefix do not depend on what follows it (False for PaliGemma's bidirectional prefix)."""

    def _layer(self, model: Any, site: Site) -> Any:  # pragma: no cover - BaseAdapter's
        raise NotImplementedError

    def skip_language_layers(self, model: Any, below: int, hidden: Tensor) -> None:
        """Inside a trace: language layers 0 .. `below` - 1 are not run (nnsight skips them), and
        the residual stream enters layer `below` as `hidden`. Each skipped layer returns
        `hidden`: only the last one's output is read on, by layer `below` or the final norm."""
        for layer in range(below):
            self._layer(model, Site(layer=layer, component=Component.RESID_POST)).skip(hidden)

    def read_position_ids(self, model: Any) -> Any:
        """Inside a trace: the position ids the language model receives (None where it derives
        them from the cache position itself, as Llama does)."""
        return model.model.language_model.inputs[1].get("position_ids")

    def resumed_inputs(
        self,
        data: Mapping[str, Tensor],
        *,
        start: int = 0,
        past: Any = None,
        position_ids: Tensor | None = None,
    ) -> dict[str, Any]:
        """The model inputs of a trace whose first language layer is skipped: the image pixels
        (`pixel_inputs`) dropped where the vision output enters at the embeddings only
        (`vision_enters_at_embeddings`), so the vision tower does not run; from position
        `start` on only (with `past`, the cached keys and values of the earlier positions, and
        their `position_ids` if the family takes explicit ones) when `start` > 0."""
        dropped = self.pixel_inputs if self.vision_enters_at_embeddings else ()
        kept = {k: v for k, v in data.items() if k not in dropped}
        if start == 0:
            return kept
        out: dict[str, Any] = {
            "input_ids": kept["input_ids"][:, start:],
            "attention_mask": kept["attention_mask"],  # the cached positions' mask included
            "past_key_values": past,
            "cache_position": torch.arange(
                start, kept["input_ids"].shape[1], device=kept["input_ids"].device
            ),  # fmt: skip
        }
        if position_ids is not None:
            out["position_ids"] = position_ids[..., start:]
        return out


def tiled_cache(cache: Any, rows: range, start: int, repeat: int, device: torch.device) -> Any:
    """A fresh `DynamicCache` on `device` holding `cache`'s keys and values of `rows` at
    positions before `start`, repeated `repeat` times along the batch (one block per run)."""
    from transformers import DynamicCache

    def part(tensor: Tensor) -> Tensor:
        return tensor[rows.start : rows.stop, :, :start].to(device).repeat(repeat, 1, 1, 1)

    return DynamicCache(ddp_cache_data=[(part(layer.keys), part(layer.values))
                                        for layer in cache.layers])  # fmt: skip


def concat_caches(caches: list[Any]) -> Any:
    """The `DynamicCache` of several row chunks' caches (same layers and positions), joined
    along the batch."""
    if len(caches) == 1:
        return caches[0]
    from transformers import DynamicCache

    layers = zip(*(cache.layers for cache in caches), strict=True)
    return DynamicCache(ddp_cache_data=[(torch.cat([part.keys for part in parts]),
                                         torch.cat([part.values for part in parts]))
                                        for parts in layers])  # fmt: skip
