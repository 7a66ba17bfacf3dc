"""The interface every model-family adapter implements: the one type callers see.

`VLM.adapter`, the intervention executor, the pipeline, the cards and the loaders all type against
`Adapter`; each family file registers a class with `vrp.models.register`, whose signature makes mypy
check the class against this Protocol. Everything a caller needs from a family is on it: checked
reads and writes, sizes, prompts and encoding, the weights the signals linearise, how to build a
tiny instance, how to load and save its processor, and what a model card says about it.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from jaxtyping import Float, Int
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


MaskEdit = Callable[[Tensor], Tensor]
"""Maps an attention mask (additive float or boolean, ``batch 1|head query key``) to a new one."""


@runtime_checkable
class Adapter(Protocol):
    """Maps typed sites of one VLM family to nnsight envoys and canonical tensors.

    Adapters are the only code that names Hugging Face module paths. All reads and writes use the
    canonical layouts documented on `Component`; the adapter converts at the boundary (tuples, flat
    Qwen2-VL vision sequences, window orders, per-head views).

    Attributes:
      family: the registry key, equal to the transformers config's ``model_type``.
      title: the family's name for people ("Qwen2-VL"), used by cards and the CLI.
      description: one paragraph on the family's design, used by model cards.
      image_placeholder: the text a prompt holds where the image goes.
      model_class: the transformers class `vrp.load` instantiates.
      processor_files: the files `load_processor` reads from a checkpoint directory.
      spec_options: which family-specific `ModelSpec` fields this family accepts.
      published: published configs of real checkpoints by name (``config.json`` values), which
        `vrp.models.build_published` builds at real size.
      config: the transformers config of the model this adapter serves.
    """

    family: ClassVar[str]
    title: ClassVar[str]
    description: ClassVar[str]
    image_placeholder: ClassVar[str]
    model_class: ClassVar[type[Any]]
    processor_files: ClassVar[tuple[str, ...]]
    spec_options: ClassVar[frozenset[str]]
    published: ClassVar[Mapping[str, Mapping[str, Any]]]
    config: Any

    def __init__(self, config: Any) -> None: ...

    # ----- sizes and sites ------------------------------------------------------------------------
    @property
    def n_layers(self) -> int:
        """Language-model layers."""
        ...

    def shape(self, tower: Tower) -> TowerShape:
        """Sizes and available components of `tower`."""
        ...

    def validate(self, site: Site) -> None:
        """Raises SiteError if `site` does not exist in this model."""
        ...

    def envoy(self, model: Any, site: Site) -> Any:
        """The nnsight envoy whose input or output holds `site` (validated first)."""
        ...

    def read(self, model: Any, site: Site, inputs: VlmInputs, *, checked: bool = False) -> Tensor:
        """Inside a trace: the full canonical value at `site` (selectors not applied); `checked`
        skips re-validating a site the caller validated."""
        ...

    def write(
        self, model: Any, site: Site, inputs: VlmInputs, value: Tensor, *, checked: bool = False
    ) -> None:
        """Inside a trace: replaces the full canonical value at `site`."""
        ...

    def edit_attention_mask(self, model: Any, layer: int, edit: MaskEdit) -> None:
        """Inside a trace: replaces language layer `layer`'s attention mask by `edit(mask)`."""
        ...

    def skip_language_layers(self, model: Any, below: int, hidden: Tensor) -> None:
        """Inside a trace: language layers 0 .. `below` - 1 are not run, and the residual stream
        enters layer `below` as `hidden` (``batch seq d_model``)."""
        ...

    causal_prompt: ClassVar[bool]
    """Whether every prompt position attends only to earlier ones (a prefix cache is exact)."""

    vision_enters_at_embeddings: ClassVar[bool]
    """Whether the image reaches the language model only as input embeddings at its image
    tokens (not through cross-attention): then a run resumed past layer 0, or past the image
    tokens, needs no pixels."""

    def read_position_ids(self, model: Any) -> Any:
        """Inside a trace: the position ids the language model receives (None if it derives them
        from the cache position)."""
        ...

    def resumed_inputs(
        self,
        data: Mapping[str, Tensor],
        *,
        start: int = 0,
        past: Any = None,
        position_ids: Tensor | None = None,
    ) -> dict[str, Any]:
        """The model inputs of a trace whose first language layer is skipped: the image pixels
        dropped (only layer 0 reads the vision tower's output), everything positions and masks
        are built from kept; from position `start` on, with the earlier positions' cached keys
        and values (`past`) and position ids, when `start` > 0."""
        ...

    # ----- prompts and encoding -------------------------------------------------------------------
    def prompt(self, question: str) -> str:
        """The family's official prompt around `question`, with the image placeholder."""
        ...

    def encode(self, processor: Any, images: Sequence[Image], prompts: Sequence[str]) -> VlmInputs:
        """Runs the processor on (image, prompt) rows into a left-padded, validated batch."""
        ...

    def image_region(
        self, processor: Any, size: tuple[int, int]
    ) -> tuple[float, float, float, float]:
        """The box (left, top, right, bottom) of an image of `size` that the vision tower sees."""
        ...

    def token_grid(
        self, site: Site, inputs: VlmInputs
    ) -> tuple[Int[Tensor, " token"], tuple[int, int]]:
        """Each token of a vision or projector site on its patch grid (raster index, -1 for
        none), and the grid (rows, cols)."""
        ...

    @property
    def image_token_id(self) -> int:
        """The id of the token the processor repeats once per image feature."""
        ...

    def answer_tokens(self, tokenizer: Any) -> AnswerTokens:
        """The family tokenizer's "yes" / "no" answer token ids."""
        ...

    # ----- weights the signals need (plain torch, outside traces) ---------------------------------
    def final_norm(self, hf: Any) -> Any:
        """The language model's final norm module (applied before the unembedding)."""
        ...

    def final_norm_gain(self, hf: Any) -> Float[Tensor, " d_model"]:
        """The final norm's effective per-dimension gain."""
        ...

    def final_norm_linearisation(
        self, hf: Any, resid: Float[Tensor, "batch d_model"]
    ) -> tuple[Float[Tensor, " d_model"], Float[Tensor, " batch"]]:
        """(gain, divisor) of the final norm frozen at `resid`: ``norm(x) ~ x * gain / divisor``."""
        ...

    def unembedding(self, hf: Any) -> Tensor:
        """W_U as ``d_model vocab``."""
        ...

    def head_output_weight(self, hf: Any, layer: int) -> Tensor:
        """W_O of language layer `layer` as ``d_model (head d_head)``."""
        ...

    def vision_position_embedding(self, hf: Any) -> Any:
        """The vision tower's learned position table, or None if positions are rotary."""
        ...

    # ----- the family: building, loading and saving -----------------------------------------------
    @classmethod
    def check_spec(cls, spec: Any) -> None:
        """Raises AdapterError if `spec` (a `ModelSpec`) does not describe a model of this family."""
        ...

    @classmethod
    def build_tiny(cls, spec: Any, tokenizer: Any) -> tuple[Any, Any]:
        """A randomly initialised (model, processor) of `spec`'s sizes around `tokenizer`."""
        ...

    @classmethod
    def build_config(cls, values: Mapping[str, Any], tokenizer: Any) -> Any:
        """A transformers config from published `values`, its token ids taken from `tokenizer`."""
        ...

    @classmethod
    def build_processor(cls, config: Any, tokenizer: Any) -> Any:
        """The family's processor for a model of `config`, around an offline `tokenizer`."""
        ...

    @classmethod
    def load_processor(cls, source: str | Path, *, local_only: bool) -> Any:
        """The processor saved in a checkpoint directory (or, online, a Hub repo)."""
        ...

    @classmethod
    def save_processor(cls, processor: Any, directory: Path) -> None:
        """Writes `processor`'s files so that `load_processor(directory)` reads them back."""
        ...


if TYPE_CHECKING:
    AdapterClass = type[Adapter]
else:  # runtime checkers (beartype, under the tests) cannot issubclass a Protocol with data members
    AdapterClass = type
"""An adapter class: mypy checks it against `Adapter`; at run time any class passes the hint."""
