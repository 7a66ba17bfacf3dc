"""The encoded batch every adapter produces and every trace consumes."""

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from jaxtyping import Bool, Int
from torch import Tensor

from ..core import ShapeError


@dataclass(frozen=True, kw_only=True)
class VlmInputs:
    """A left-padded batch of (image, prompt) rows ready for the model.

    Attributes:
      data: the processor's output (input_ids, attention_mask, pixel_values and the family's extras:
        token_type_ids for PaliGemma, image_grid_thw and mm_token_type_ids for Qwen2-VL).
      image_mask: which positions hold image tokens.
      grids: the patch grid (grid_h, grid_w) of each row's image, after any merge.
      prompts: the prompt text of each row, as given to the processor.
    """

    data: dict[str, Tensor]
    image_mask: Bool[Tensor, "batch seq"]
    grids: tuple[tuple[int, int], ...]
    prompts: tuple[str, ...] = field(default=())

    @property
    def input_ids(self) -> Int[Tensor, "batch seq"]:
        return self.data["input_ids"]

    @property
    def attention_mask(self) -> Int[Tensor, "batch seq"]:
        return self.data["attention_mask"]

    @property
    def batch_size(self) -> int:
        return int(self.input_ids.shape[0])

    @property
    def seq_len(self) -> int:
        return int(self.input_ids.shape[1])

    @property
    def n_image_tokens(self) -> int:
        """Image tokens per row (equal in every row of a batch)."""
        return int(self.image_mask[0].sum())

    def rows(self, index: Sequence[int], *, trim: bool = True) -> "VlmInputs":
        """The sub-batch of rows `index`; `trim` drops columns that are padding in every kept row
        (keep them to give every sub-batch the same ``seq`` axis)."""
        picked = torch.as_tensor(list(index), dtype=torch.long)
        data = {k: v[picked] for k, v in self.data.items() if k not in _PER_IMAGE}
        data.update(_pick_images(self.data, picked))
        keep = int(data["attention_mask"].sum(dim=1).max()) if trim else self.seq_len
        data = {k: v[:, -keep:] if k in _SEQ_PAD else v for k, v in data.items()}
        return VlmInputs(
            data=data,
            image_mask=self.image_mask[picked][:, -keep:],
            grids=tuple(self.grids[i] for i in picked.tolist()),
            prompts=tuple(self.prompts[i] for i in picked.tolist()) if self.prompts else (),
        )

    def to(self, device: torch.device | str) -> "VlmInputs":
        data = {k: v.to(device) for k, v in self.data.items()}
        return VlmInputs(
            data=data, image_mask=self.image_mask.to(device), grids=self.grids, prompts=self.prompts
        )


_SEQ_PAD = {"input_ids": 0, "attention_mask": 0, "token_type_ids": 0, "mm_token_type_ids": 0}
"""Processor outputs laid out ``batch seq``, with the value that pads them on the left."""
_PER_IMAGE = ("pixel_values", "image_grid_thw")
"""Processor outputs with one entry per image (Qwen2-VL flattens its patches across images)."""


def _pick_images(data: dict[str, Tensor], rows: Tensor) -> dict[str, Tensor]:
    if "image_grid_thw" not in data:
        return {"pixel_values": data["pixel_values"][rows]}
    grid = data["image_grid_thw"]
    patches = torch.split(data["pixel_values"], grid.prod(dim=-1).tolist())
    return {
        "pixel_values": torch.cat([patches[i] for i in rows.tolist()]),
        "image_grid_thw": grid[rows],
    }


def concat_inputs(parts: Sequence[VlmInputs]) -> VlmInputs:
    """Stacks batches row-wise into one left-padded batch (for one forward over several runs).

    Raises:
      ShapeError: the batches hold different processor outputs or image grids.
    """
    keys = set(parts[0].data)
    if any(set(p.data) != keys for p in parts):
        raise ShapeError(
            "Cannot stack batches with different processor outputs: "
            f"{[sorted(p.data) for p in parts]}. Encode every run with one model."
        )
    if len({g for p in parts for g in p.grids}) != 1:
        raise ShapeError(
            "Cannot stack batches whose images have different patch grids: "
            f"{sorted({g for p in parts for g in p.grids})}. Resize images to one size."
        )
    width = max(p.seq_len for p in parts)
    data = {}
    for key in keys:
        if key in _SEQ_PAD:
            data[key] = torch.cat([_left_pad(p.data[key], width, _SEQ_PAD[key]) for p in parts])
        else:
            data[key] = torch.cat([p.data[key] for p in parts])
    image_mask = torch.cat([_left_pad(p.image_mask, width, False) for p in parts])
    return VlmInputs(
        data=data,
        image_mask=image_mask,
        grids=tuple(g for p in parts for g in p.grids),
        prompts=tuple(t for p in parts for t in p.prompts),
    )


def _left_pad(value: Tensor, width: int, fill: int | bool) -> Tensor:
    missing = width - value.shape[1]
    if missing == 0:
        return value
    pad = torch.full((value.shape[0], missing), fill, dtype=value.dtype, device=value.device)
    return torch.cat([pad, value], dim=1)
