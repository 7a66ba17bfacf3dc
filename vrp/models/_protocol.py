"""The interface every model-family adapter implements."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from PIL.Image import Image
from torch import Tensor

from ..core import Component, Site, Tower
from ._inputs import VlmInputs


@dataclass(frozen=True, kw_only=True)
class TowerShape:
    """Sizes of one tower, read from the checkpoint's config."""

    n_layers: int
    n_heads: int
    d_model: int
    d_head: int
    d_mlp: int
    components: frozenset[Component]


@dataclass(frozen=True, kw_only=True)
class AnswerTokens:
    """Token ids that begin a "yes" or a "no" answer (several casings / leading-space variants)."""

    yes: tuple[int, ...]
    no: tuple[int, ...]


class Adapter(Protocol):
    """Maps typed sites of one VLM family to nnsight envoys and canonical tensors.

    Adapters are the only code that names Hugging Face module paths. All reads and writes use the
    canonical layouts documented on `Component`; the adapter converts at the boundary (tuples, flat
    Qwen2-VL vision sequences, per-head views).
    """

    family: ClassVar[str]
    image_placeholder: ClassVar[str]

    def shape(self, tower: Tower) -> TowerShape:
        """Sizes and available components of `tower`."""
        ...

    def validate(self, site: Site) -> None:
        """Raises SiteError if `site` does not exist in this model."""
        ...

    def read(self, model: Any, site: Site, inputs: VlmInputs) -> Tensor:
        """Inside a trace: the full canonical value at `site` (selectors not applied)."""
        ...

    def write(self, model: Any, site: Site, inputs: VlmInputs, value: Tensor) -> None:
        """Inside a trace: replaces the full canonical value at `site`."""
        ...

    def edit_attention_mask(self, model: Any, layer: int, edit: Any) -> None:
        """Inside a trace: replaces language layer `layer`'s attention mask by `edit(mask)`."""
        ...

    def prompt(self, question: str) -> str:
        """The family's official prompt around `question`, with the image placeholder."""
        ...

    def encode(self, processor: Any, images: Sequence[Image], prompts: Sequence[str]) -> VlmInputs:
        """Runs the processor on (image, prompt) rows into a left-padded, validated batch."""
        ...

    def answer_tokens(self, tokenizer: Any) -> AnswerTokens:
        """The family tokenizer's "yes" / "no" answer token ids."""
        ...
