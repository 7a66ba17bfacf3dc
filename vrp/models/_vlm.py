"""The `VLM` handle: a Hugging Face VLM wrapped in nnsight, with its adapter and processor."""

import copy
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Bool, Float, Int
from PIL.Image import Image
from torch import Tensor

from ..core import Component, Site, SiteError, Tower
from ..core.types import AnswerLogits, Logits
from ._inputs import VlmInputs
from ._protocol import Adapter, AnswerTokens


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

    def __init__(self, *, model: Any, processor: Any, adapter: Adapter, name: str) -> None:
        # importing nnsight patches globals: do it lazily
        from ._remote import NamedTransformersModel

        self.hf = model.eval()
        self.processor = processor
        self.adapter: Adapter = adapter
        self.name = name
        self.nnsight = NamedTransformersModel(  # remote traces name the model by `name`
            model,
            name=name,
            task="image-text-to-text",
            tokenizer=processor.tokenizer,
            processor=processor,
            **_placement(model),
        )
        self.answer_tokens: AnswerTokens = adapter.answer_tokens(processor.tokenizer)
        self.backend = "local"

    def with_backend(self, backend: str) -> "VLM":
        """A handle on the same model whose traces run on `backend` by default.

        Every trace VRP opens for the handle (`run_graph` and what builds on it: the pipeline,
        the circuits sweeps and the study) and its `generate` go there, unless an
        `ExecutionConfig` names another backend. The weights stay loaded here too: signals
        such as the logit lens read the unembedding locally, and nnsight needs the module tree
        to build a trace.

        Args:
          backend: "local", "serialise" (nnsight's in-process serialisation round trip) or the
            URL of a server speaking nnsight's remote protocol (`vrp serve`), which must host this
            model under the name it was loaded by (`self.name`). An API key, where the server
            asks for one, comes from nnsight's config (``NDIF_API_KEY``).

        Raises:
          ConfigError: `backend` is none of these.
        """
        from ._remote import check_backend

        handle = copy.copy(self)
        handle.backend = check_backend(backend)
        return handle

    @property
    def family(self) -> str:
        return self.adapter.family

    @property
    def tokenizer(self) -> Any:
        return self.processor.tokenizer

    @property
    def device(self) -> torch.device:
        return next(self.hf.parameters()).device

    @property
    def attn_implementation(self) -> str:
        """The attention kernel the model runs: "eager", "sdpa" or "flash_attention_2"."""
        return str(getattr(self.hf.config, "_attn_implementation", None) or "eager")

    def __repr__(self) -> str:
        where = "" if self.backend == "local" else f", backend={self.backend!r}"
        return f"VLM({self.name!r}, family={self.family!r}, layers={self.adapter.n_layers}{where})"

    def prompt(self, question: str) -> str:
        """The family's official prompt for `question`."""
        return self.adapter.prompt(question)

    def encode(self, images: Sequence[Image], questions: Sequence[str]) -> VlmInputs:
        """Encodes (image, question) rows with the family's prompt format, left-padded."""
        return self.encode_prompts(images, [self.prompt(q) for q in questions])

    def encode_prompts(self, images: Sequence[Image], prompts: Sequence[str]) -> VlmInputs:
        """Encodes (image, full prompt) rows; each prompt holds the family's image placeholder."""
        return self.adapter.encode(self.processor, images, prompts).to(self.device)

    def image_region(self, size: tuple[int, int]) -> tuple[float, float, float, float]:
        """The box (left, top, right, bottom) of an image of `size` (width, height) that the
        vision tower sees and the patch grid covers: the whole image, or its central crop for a
        centre-cropping processor (LLaVA-1.5's)."""
        return self.adapter.image_region(self.processor, size)

    @torch.no_grad()
    def logits(self, inputs: VlmInputs) -> Logits:
        """Plain forward pass (no trace when local): logits at every position."""
        if self.backend == "local":
            return self.hf(**inputs.data).logits
        from ..interventions._calls import forward_logits  # traces open in interventions only

        return forward_logits(self, inputs, backend=self.backend, last_only=False)

    @torch.no_grad()
    def answer_logits(self, inputs: VlmInputs) -> AnswerLogits:
        """Logits at the answer position (the last token of each left-padded row); the other
        positions' logits are not computed (`logits_to_keep=1`)."""
        if self.backend == "local":
            return self.hf(**inputs.data, logits_to_keep=1).logits[:, -1]
        from ..interventions._calls import forward_logits

        return forward_logits(self, inputs, backend=self.backend, last_only=True)

    def yes_no_margin(self, answer_logits: AnswerLogits) -> Float[Tensor, " batch"]:
        """Best "yes" spelling's logit minus best "no" spelling's logit, per row.

        VRP's one rule for a yes/no answer, used by the pipeline, the signals, the metrics and the
        circuits metrics: the model answers with whichever yes/no spelling ("yes", "Yes", " yes",
        ...) it scores highest, exactly as greedy decoding does, so the margin is positive iff
        greedy decoding says "yes" (whenever it emits a yes/no spelling). The margin equals
        log P(best yes spelling) - log P(best no spelling).
        """
        from ..signals import yes_no_margin  # pure tensor code; imported late to keep layers apart

        yes, no = self.answer_tokens.yes, self.answer_tokens.no
        return yes_no_margin(answer_logits, yes, no, reduce="max")

    def says_yes(self, answer_logits: AnswerLogits) -> Bool[Tensor, " batch"]:
        """The yes/no answer of each row: "yes" iff the yes-no margin is positive."""
        return self.yes_no_margin(answer_logits) > 0

    def answer_token(
        self, answer_logits: AnswerLogits, says_yes: Bool[Tensor, " batch"] | None = None
    ) -> Int[Tensor, " batch"]:
        """The token of each row's answer, in the spelling the model uses.

        Args:
          answer_logits: logits at the answer position.
          says_yes: which answer to spell per row; None spells the model's own answer
            (`says_yes`), which is the token greedy decoding emits. Pass the ground truth
            (``labels == "yes"``) for the correct answer's token (the logit-lens target).

        Returns:
          One token id per row, on the logits' device.
        """
        from ..signals import best_spelling

        chosen = self.says_yes(answer_logits) if says_yes is None else says_yes
        yes, no = self.answer_tokens.yes, self.answer_tokens.no
        return best_spelling(answer_logits, yes, no, chosen)

    @torch.no_grad()
    def generate(
        self, inputs: VlmInputs, *, max_new_tokens: int = 8, seed: int | None = None, **kwargs: Any
    ) -> list[str]:
        """Greedy (or sampled, with `do_sample=True` in kwargs) continuations, decoded.

        Args:
          inputs: an encoded batch (`encode`).
          max_new_tokens: tokens generated per row at most.
          seed: seeds the sampling. Hugging Face's `generate` draws from torch's default
            generators, so they are forked (the CPU's and the model's CUDA device's), seeded and
            restored afterwards: sampling is reproducible and the caller's random state is left
            exactly as it was. None samples from the current global state. Off the "local"
            backend (`with_backend`) the seed is applied where the sampling runs, and a seeded
            sample equals the local one.
          **kwargs: passed to the transformers model's `generate`.
        """
        if self.backend == "local":
            with _forked_rng(self.device, seed):
                out = self.hf.generate(
                    **inputs.data,
                    max_new_tokens=max_new_tokens,
                    pad_token_id=self.tokenizer.pad_token_id,
                    **kwargs,
                )
        else:  # a trace (VRP's interventions open every trace), sent where the handle says
            from ..interventions._calls import generate_tokens

            out = generate_tokens(self, inputs, backend=self.backend,
                                  max_new_tokens=max_new_tokens, seed=seed, **kwargs)  # fmt: skip
        new = out[:, inputs.seq_len :]
        return [t.strip() for t in self.tokenizer.batch_decode(new, skip_special_tokens=True)]

    def sites(self, tower: Tower = Tower.LANGUAGE) -> list[Site]:
        """Every (layer, component) site of `tower`, in forward order."""
        shape = self.adapter.shape(tower)
        comps = [c for c in Component if c in shape.components]
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


@contextmanager
def _forked_rng(device: torch.device, seed: int | None) -> Iterator[None]:
    """Seeds the CPU generator and `device`'s CUDA generator (if any) for the block, then
    restores both; no other device's generator is touched. A no-op without a seed."""
    if seed is None:
        yield
        return
    cuda = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda, device_type="cuda"):
        torch.random.default_generator.manual_seed(seed)
        for each in cuda:
            with torch.cuda.device(each):
                torch.cuda.manual_seed(seed)
        yield


def _placement(model: Any) -> dict[str, Any]:
    """Keeps `model` where it is when nnsight wraps it.

    nnsight builds a transformers pipeline around the model, and a pipeline given no device moves
    the model to cuda:0 whenever CUDA exists, even a model placed on the CPU or on cuda:1 on
    purpose. A model dispatched over devices by accelerate (`hf_device_map`) is left to the
    pipeline, which reads that map itself.
    """
    if getattr(model, "hf_device_map", None):
        return {}
    return {"device": next(model.parameters()).device}
