"""The encoded batch every adapter produces and every trace consumes."""

from dataclasses import dataclass, field

import torch
from jaxtyping import Bool, Int
from torch import Tensor


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

    def to(self, device: torch.device | str) -> "VlmInputs":
        data = {k: v.to(device) for k, v in self.data.items()}
        return VlmInputs(
            data=data, image_mask=self.image_mask.to(device), grids=self.grids, prompts=self.prompts
        )
