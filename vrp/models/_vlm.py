"""The `VLM` handle: a Hugging Face VLM wrapped in nnsight, with its adapter and processor."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Bool, Float
from PIL.Image import Image
from torch import Tensor

from ..core import Component, Site, SiteError, Tower
from ..core.types import AnswerLogits, Logits
from ._base import BaseAdapter
from ._inputs import VlmInputs
from ._protocol import AnswerTokens


@dataclass(frozen=True, kw_only=True)
class ModelInfo:
    """What `vrp inspect` prints about a model."""

    name: str
    family: str
    n_parameters: int
    towers: dict[
        str, dict[str, Any]
    ]  # per tower: layers, heads, d_model, d_head, d_mlp, components
    image_tokens: int
    grid: tuple[int, int]
    attn_implementation: str


class VLM:
    """A loaded VLM: the nnsight model (`.nnsight`), its adapter, processor and tokenizer.

    Args:
      model: a transformers model of a registered family, in eval mode.
      processor: the family's processor.
      adapter: the family's adapter for `model.config`.
      name: how the model was named when loaded.
    """

    def __init__(self, *, model: Any, processor: Any, adapter: BaseAdapter, name: str) -> None:
        from nnsight import TransformersModel  # importing nnsight patches globals: do it lazily

        self.hf = model.eval()
        self.processor = processor
        self.adapter = adapter
        self.name = name
        self.nnsight = TransformersModel(
            model, task="image-text-to-text", tokenizer=processor.tokenizer, processor=processor
        )
        self.answer_tokens: AnswerTokens = adapter.answer_tokens(processor.tokenizer)

    @property
    def family(self) -> str:
        return self.adapter.family

    @property
    def tokenizer(self) -> Any:
        return self.processor.tokenizer

    @property
    def device(self) -> torch.device:
        return next(self.hf.parameters()).device

    def __repr__(self) -> str:
        return f"VLM({self.name!r}, family={self.family!r}, layers={self.adapter.n_layers})"

    def prompt(self, question: str) -> str:
        """The family's official prompt for `question`."""
        return self.adapter.prompt(question)

    def encode(self, images: Sequence[Image], questions: Sequence[str]) -> VlmInputs:
        """Encodes (image, question) rows with the family's prompt format, left-padded."""
        return self.encode_prompts(images, [self.prompt(q) for q in questions])

    def encode_prompts(self, images: Sequence[Image], prompts: Sequence[str]) -> VlmInputs:
        """Encodes (image, full prompt) rows; each prompt holds the family's image placeholder."""
        return self.adapter.encode(self.processor, images, prompts).to(self.device)

    @torch.no_grad()
    def logits(self, inputs: VlmInputs) -> Logits:
        """Plain forward pass (no trace): logits at every position."""
        return self.hf(**inputs.data).logits

    def answer_logits(self, inputs: VlmInputs) -> AnswerLogits:
        """Logits at the answer position (the last token of each left-padded row)."""
        return self.logits(inputs)[:, -1]

    def yes_no_margin(self, answer_logits: AnswerLogits) -> Float[Tensor, " batch"]:
        """log P(any "yes" spelling) - log P(any "no" spelling) per row (logsumexp over the
        spellings): VRP's one rule for a yes/no answer (see `vrp.signals.yes_no_margin`)."""
        from ..signals import yes_no_margin  # pure tensor code; imported late to keep layers apart

        return yes_no_margin(answer_logits, self.answer_tokens.yes, self.answer_tokens.no)

    def says_yes(self, answer_logits: AnswerLogits) -> Bool[Tensor, " batch"]:
        """The yes/no answer of each row: "yes" iff the yes-no margin is positive."""
        return self.yes_no_margin(answer_logits) > 0

    @torch.no_grad()
    def generate(self, inputs: VlmInputs, *, max_new_tokens: int = 8, **kwargs: Any) -> list[str]:
        """Greedy (or sampled, with `do_sample=True` in kwargs) continuations, decoded."""
        pad = self.tokenizer.pad_token_id
        out = self.hf.generate(
            **inputs.data, max_new_tokens=max_new_tokens, pad_token_id=pad, **kwargs
        )
        new = out[:, inputs.seq_len :]
        return [t.strip() for t in self.tokenizer.batch_decode(new, skip_special_tokens=True)]

    def sites(self, tower: Tower = Tower.LANGUAGE) -> list[Site]:
        """Every (layer, component) site of `tower`, in forward order."""
        shape = self.adapter.shape(tower)
        comps = [c for c in Component if c in shape.components]
        if not self.adapter.eager:
            comps = [c for c in comps if c is not Component.ATTN_PATTERN]
        return [
            Site(tower=tower, layer=i, component=c) for i in range(shape.n_layers) for c in comps
        ]

    def validate(self, site: Site) -> None:
        """Raises SiteError if `site` does not exist in this model."""
        if not isinstance(site, Site):
            raise SiteError(f"Expected a vrp.Site, got {type(site).__name__}: {site!r}.")
        self.adapter.validate(site)

    def info(self, inputs: VlmInputs) -> ModelInfo:
        """A summary of the model's towers and of the image tokens of `inputs`."""
        towers = {
            tower.value: {
                "layers": s.n_layers,
                "heads": s.n_heads,
                "d_model": s.d_model,
                "d_head": s.d_head,
                "d_mlp": s.d_mlp,
                "components": [c.value for c in Component if c in s.components],
            }
            for tower in Tower
            for s in [self.adapter.shape(tower)]
        }
        return ModelInfo(
            name=self.name,
            family=self.family,
            n_parameters=sum(p.numel() for p in self.hf.parameters()),
            towers=towers,
            image_tokens=inputs.n_image_tokens,
            grid=inputs.grids[0],
            attn_implementation=str(getattr(self.hf.config, "_attn_implementation", "")),
        )
