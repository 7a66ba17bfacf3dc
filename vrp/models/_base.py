"""Shared adapter machinery: site validation, envoy resolution and canonical layouts.

The three families share the decoder layout of transformers 5 (``model.language_model.layers[i]`` with
``self_attn.o_proj`` and ``mlp.down_proj``); their vision towers and projectors differ. A family file
sets the per-tower module names (`LayerPaths`) and the family's prompt, grid and processor quirks.
"""

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from jaxtyping import Float, Int
from PIL.Image import Image
from torch import Tensor

from ..core import AdapterError, Component, DataError, PromptError, Site, SiteError, Tower, to_rgb
from ._attention import edit_mask, read_pattern
from ._inputs import VlmInputs
from ._protocol import AnswerTokens, MaskEdit, TowerShape
from ._registry import adapter_class, families
from ._resume import ResumeSupport
from ._spec import FAMILY_OPTIONS, ModelSpec, check_options

ALL_COMPONENTS = frozenset(Component)
_INPUT_COMPONENTS = frozenset(
    {
        Component.RESID_PRE,
        Component.ATTN_IN,
        Component.HEAD_OUT,
        Component.MLP_IN,
        Component.MLP_NEURONS,
    }
)
"""Components read from (and written to) a module's input rather than its output."""
PROJECTOR_COMPONENTS = frozenset({Component.RESID_PRE, Component.RESID_POST})


@dataclass(frozen=True, kw_only=True)
class LayerPaths:
    """Attribute names inside one transformer layer of a tower.

    Attributes:
      attn: the attention block.
      head_proj: the attention output projection inside `attn` (its input holds per-head outputs).
      mlp: the MLP block.
      neuron_proj: the MLP down projection inside `mlp` (its input holds the neurons).
      attn_returns_weights: the attention block returns (output, weights).
      query: the query projection inside `attn` (attention patterns are computed from it).
      key: the key projection inside `attn`.
      attn_norm: the norm the attention block's input passes through (its input is
        `Component.ATTN_IN`), a sibling of `attn` in the layer.
      mlp_norm: the norm the MLP block's input passes through (`Component.MLP_IN`).
    """

    attn: str
    head_proj: str
    mlp: str
    neuron_proj: str
    attn_returns_weights: bool
    query: str = "q_proj"
    key: str = "k_proj"
    attn_norm: str = "input_layernorm"
    mlp_norm: str = "post_attention_layernorm"


LANGUAGE_PATHS = LayerPaths(
    attn="self_attn",
    head_proj="o_proj",
    mlp="mlp",
    neuron_proj="down_proj",
    attn_returns_weights=True,
)
ENCODER_PATHS = LayerPaths(
    attn="self_attn",
    head_proj="out_proj",
    mlp="mlp",
    neuron_proj="fc2",
    attn_returns_weights=True,
    attn_norm="layer_norm1",
    mlp_norm="layer_norm2",
)
"""CLIP's and SigLIP's encoder layers (LLaVA's and PaliGemma's vision towers)."""


def _get(envoy: Any, dotted: str) -> Any:
    for name in dotted.split("."):
        envoy = getattr(envoy, name)
    return envoy


class BaseAdapter(ResumeSupport, ABC):
    """Implements most of the `Adapter` protocol for decoder VLMs; a family file sets the class
    attributes, implements the abstract methods and overrides what differs (see `Adapter` for
    what each attribute means).

    Attributes:
      vision_paths: attribute names inside one vision layer.
    """

    family: ClassVar[str] = ""
    title: ClassVar[str] = ""
    description: ClassVar[str] = ""
    model_class: ClassVar[type[Any]]
    image_placeholder: ClassVar[str] = "<image>"
    class_token: ClassVar[bool] = False  # the vision tower's first token is on no patch (CLIP)
    processor_files: ClassVar[tuple[str, ...]] = (
        "tokenizer.json",
        "tokenizer_config.json",
        "preprocessor_config.json",
        "processor_config.json",
    )
    spec_options: ClassVar[frozenset[str]] = frozenset()
    published: ClassVar[Mapping[str, Mapping[str, Any]]] = {}
    vision_paths: ClassVar[LayerPaths]

    def __init__(self, config: Any) -> None:
        self.config = config
        self._shapes = {
            Tower.LANGUAGE: self._language_shape(config.text_config),
            Tower.VISION: self._vision_shape(config.vision_config),
            Tower.PROJECTOR: self._projector_shape(config),
        }

    # ----- sizes and validation ------------------------------------------------------------------
    @staticmethod
    def _language_shape(cfg: Any) -> TowerShape:
        heads = int(cfg.num_attention_heads)
        d_head = int(getattr(cfg, "head_dim", None) or cfg.hidden_size // heads)
        return TowerShape(
            n_layers=int(cfg.num_hidden_layers),
            n_heads=heads,
            d_model=int(cfg.hidden_size),
            d_head=d_head,
            d_mlp=int(cfg.intermediate_size),
            components=ALL_COMPONENTS,
        )

    def _vision_shape(self, cfg: Any) -> TowerShape:
        heads = int(cfg.num_attention_heads)
        return TowerShape(
            n_layers=int(cfg.num_hidden_layers),
            n_heads=heads,
            d_model=int(cfg.hidden_size),
            d_head=int(cfg.hidden_size) // heads,
            d_mlp=int(cfg.intermediate_size),
            components=self._vision_components(),
        )

    def _vision_components(self) -> frozenset[Component]:
        return ALL_COMPONENTS

    def _projector_shape(self, config: Any) -> TowerShape:
        return TowerShape(
            n_layers=1,
            n_heads=0,
            d_model=int(config.text_config.hidden_size),
            d_head=0,
            d_mlp=0,
            components=PROJECTOR_COMPONENTS,
        )

    def shape(self, tower: Tower) -> TowerShape:
        return self._shapes[tower]

    @property
    def n_layers(self) -> int:
        """Language-model layers."""
        return self._shapes[Tower.LANGUAGE].n_layers

    def validate(self, site: Site) -> None:
        shape = self._shapes[site.tower]
        where = f"{self.family} has {shape.n_layers} {site.tower.value} layers"
        if not 0 <= site.layer < shape.n_layers:
            raise SiteError(
                f"{site} is out of range: {where} (0..{shape.n_layers - 1}). Pass a layer in range."
            )
        if site.component not in shape.components:
            valid = ", ".join(c.name for c in Component if c in shape.components)
            raise SiteError(
                f"{site}: the {site.tower.value} tower of {self.family} has no {site.component.name}. "
                f"Valid components there: {valid}."
            )
        self._validate_units("heads", site.heads, shape.n_heads, site)
        self._validate_units("neurons", site.neurons, shape.d_mlp, site)
        self._validate_units("dims", site.dims, shape.d_model, site)

    def _validate_units(self, name: str, units: Any, size: int, site: Site) -> None:
        if units is None:
            return
        bad = [u for u in units if not 0 <= u < size]
        if bad:
            raise SiteError(
                f"{site}: {name} {bad} out of range; {self.family}'s {site.tower.value} tower has "
                f"{size} {name} per layer (0..{size - 1})."
            )

    # ----- envoys and canonical values -------------------------------------------------------------
    def _layer(self, model: Any, site: Site) -> Any:
        if site.tower is Tower.LANGUAGE:
            return model.model.language_model.layers[site.layer]
        return self._vision_layer(model, site.layer)

    @abstractmethod
    def _vision_layer(self, model: Any, layer: int) -> Any:
        """The envoy of vision layer `layer`."""

    def _projector(self, model: Any) -> Any:
        return model.model.multi_modal_projector

    def _paths(self, tower: Tower) -> LayerPaths:
        return LANGUAGE_PATHS if tower is Tower.LANGUAGE else self.vision_paths

    def envoy(self, model: Any, site: Site) -> Any:
        """The nnsight envoy whose input or output holds `site` (validated first)."""
        self.validate(site)
        return self._envoy(model, site)

    def _envoy(self, model: Any, site: Site) -> Any:
        if site.tower is Tower.PROJECTOR:
            return self._projector(model)
        layer, paths = self._layer(model, site), self._paths(site.tower)
        component = site.component
        if component in (Component.RESID_PRE, Component.RESID_POST):
            return layer
        if component is Component.ATTN_IN:
            return _get(layer, paths.attn_norm)
        if component is Component.MLP_IN:
            return _get(layer, paths.mlp_norm)
        if component is Component.HEAD_OUT:
            return _get(layer, f"{paths.attn}.{paths.head_proj}")
        if component in (Component.ATTN_PATTERN, Component.ATTN_OUT):
            return _get(layer, paths.attn)
        if component is Component.MLP_NEURONS:
            return _get(layer, f"{paths.mlp}.{paths.neuron_proj}")
        return _get(layer, paths.mlp)

    def _reads_input(self, site: Site) -> bool:
        return site.component in _INPUT_COMPONENTS

    def read(self, model: Any, site: Site, inputs: VlmInputs, *, checked: bool = False) -> Tensor:
        """Inside a trace: the full canonical value at `site` (`checked` skips re-validation)."""
        envoy = self._envoy(model, site) if checked else self.envoy(model, site)
        if site.component is Component.ATTN_PATTERN:  # recomputed: any attention implementation
            return self._read_pattern(envoy, site, inputs)
        raw = envoy.input if self._reads_input(site) else envoy.output
        if site.component is Component.ATTN_OUT and self._paths(site.tower).attn_returns_weights:
            raw = raw[0]
        return self._to_canonical(site, raw, inputs)

    def _read_pattern(self, block: Any, site: Site, inputs: VlmInputs) -> Tensor:
        """Inside a trace: the canonical pattern at `site` from attention block `block`."""
        paths = self._paths(site.tower)
        query, key = _get(block, paths.query), _get(block, paths.key)
        causal = site.tower is Tower.LANGUAGE and self.causal_prompt
        return read_pattern(block, query, key, site, self._shapes[site.tower], causal=causal)

    def write(
        self, model: Any, site: Site, inputs: VlmInputs, value: Tensor, *, checked: bool = False
    ) -> None:
        """Inside a trace: replaces the full canonical value at `site`."""
        envoy = self._envoy(model, site) if checked else self.envoy(model, site)
        if site.component is Component.ATTN_PATTERN:
            raise SiteError(
                f"{site}: attention patterns are read-only (changing the returned weights does not "
                "change the forward pass). Use an attention-edge knockout to block attention."
            )
        native = self._from_canonical(site, value, inputs)
        if self._reads_input(site):
            envoy.input = native
        elif site.component is Component.ATTN_OUT and self._paths(site.tower).attn_returns_weights:
            envoy.output = (native, envoy.output[1])
        else:
            envoy.output = native

    def _to_canonical(self, site: Site, raw: Tensor, inputs: VlmInputs) -> Tensor:
        if site.component is Component.HEAD_OUT:
            shape = self._shapes[site.tower]
            return raw.reshape(*raw.shape[:-1], shape.n_heads, shape.d_head)
        return raw

    def _from_canonical(self, site: Site, value: Tensor, inputs: VlmInputs) -> Tensor:
        if site.component is Component.HEAD_OUT:
            return value.flatten(-2)
        return value

    # ----- weights the signals need (plain torch, outside traces) ---------------------------------
    def final_norm(self, hf: Any) -> Any:
        """The language model's final norm module (applied before the unembedding)."""
        return hf.model.language_model.norm

    def final_norm_gain(self, hf: Any) -> Float[Tensor, " d_model"]:
        """The final RMSNorm's per-dimension gain (its weight)."""
        return self.final_norm(hf).weight

    def final_norm_linearisation(
        self, hf: Any, resid: Float[Tensor, "batch d_model"]
    ) -> tuple[Float[Tensor, " d_model"], Float[Tensor, " batch"]]:
        """(gain, divisor) of the final RMSNorm frozen at the final residuals `resid`, so that
        ``norm(x) ~ x * gain / divisor`` (exact at `resid`): for direct logit attribution."""
        norm = self.final_norm(hf)
        eps = float(getattr(norm, "variance_epsilon", getattr(norm, "eps", 1e-6)))
        divisor = resid.float().pow(2).mean(dim=-1).add(eps).sqrt()
        return self.final_norm_gain(hf), divisor

    def unembedding(self, hf: Any) -> Tensor:
        """W_U as ``d_model vocab`` (the LM head's weight, transposed; a view, not a copy)."""
        return hf.lm_head.weight.T

    def vision_position_embedding(self, hf: Any) -> Any:
        """The vision tower's learned absolute position embedding (a ``torch.nn.Embedding``: one
        row per patch, plus CLIP's class token), or None if the family encodes positions otherwise
        (Qwen2-VL: 2-D rotary)."""
        return hf.model.vision_tower.embeddings.position_embedding

    def head_output_weight(self, hf: Any, layer: int) -> Tensor:
        """W_O of language layer `layer` as ``d_model (head d_head)``: maps concatenated per-head
        outputs (`Component.HEAD_OUT`, flattened) to the attention output."""
        self.validate(Site(layer=layer, component=Component.HEAD_OUT))
        return hf.model.language_model.layers[layer].self_attn.o_proj.weight

    def edit_attention_mask(self, model: Any, layer: int, edit: MaskEdit) -> None:
        """Inside a trace: replaces the mask language layer `layer` attends with by `edit(mask)`.

        `edit` maps the mask the model built (additive float ``batch 1 seq key``, or boolean) to a
        new one, which may carry a head axis (``batch head seq key``).

        Raises:
          SiteError: the layer's attention takes no 4-D mask (flash attention).
        """
        block = self._envoy(model, Site(layer=layer, component=Component.ATTN_OUT))
        edit_mask(block, edit, f"Language layer {layer} of {self.family}")

    # ----- prompts and encoding ------------------------------------------------------------------
    @abstractmethod
    def prompt(self, question: str) -> str:
        """The family's official prompt around `question`."""

    def _grids(self, data: dict[str, Tensor]) -> tuple[tuple[int, int], ...]:
        """Patch grid per row; by default the square grid of a fixed-resolution vision tower."""
        vision = self.config.vision_config
        side = int(vision.image_size) // int(vision.patch_size)
        return tuple((side, side) for _ in range(data["input_ids"].shape[0]))

    def token_grid(
        self, site: Site, inputs: VlmInputs
    ) -> tuple[Int[Tensor, " token"], tuple[int, int]]:
        """Where each token of a vision or projector site (one image's) lies on its patch grid:
        the raster index ``row * cols + col`` per token, -1 for a token on no patch (CLIP's
        class token), and the grid (rows, cols). The projector's output is the language model's
        image tokens, on `VlmInputs.grids`.

        Raises:
          SiteError: a language site (its image tokens are `VlmInputs.image_mask`).
        """
        self.validate(site)
        if site.tower is Tower.LANGUAGE:
            raise SiteError(
                f"{site}: language positions are not vision tokens; the image tokens of a "
                "language site are where VlmInputs.image_mask is True, on VlmInputs.grids."
            )
        rows, cols = inputs.grids[0]
        lead = int(self.class_token and site.tower is Tower.VISION)
        index = torch.cat([torch.full((lead,), -1), torch.arange(rows * cols)])
        return index, (rows, cols)

    def _processor_kwargs(self) -> dict[str, Any]:
        return {}

    def image_region(
        self, processor: Any, size: tuple[int, int]
    ) -> tuple[float, float, float, float]:
        """The part of an image of `size` (width, height) that the vision tower sees, as
        (left, top, right, bottom) in the image's pixels: the patch grid covers exactly this box.

        The whole image for processors that resize it whole (SigLIP's, Qwen2-VL's); the central
        crop for processors that resize the short side and centre-crop (CLIP's, as LLaVA-1.5's
        processor does), following their arithmetic: the short side becomes `shortest_edge`,
        the long side `int(shortest_edge * long / short)`, and the crop starts at
        `(resized - crop) // 2`.
        """
        width, height = size
        images = getattr(processor, "image_processor", processor)
        crop = getattr(images, "crop_size", None)
        short = getattr(getattr(images, "size", None), "shortest_edge", None)
        if not getattr(images, "do_center_crop", False) or crop is None or short is None:
            return (0.0, 0.0, float(width), float(height))
        if width <= height:
            new_w, new_h = int(short), int(int(short) * height / width)
        else:
            new_w, new_h = int(int(short) * width / height), int(short)
        left, top = (new_w - int(crop.width)) // 2, (new_h - int(crop.height)) // 2
        sx, sy = width / new_w, height / new_h
        return (left * sx, top * sy, (left + int(crop.width)) * sx, (top + int(crop.height)) * sy)

    def encode(self, processor: Any, images: Sequence[Image], prompts: Sequence[str]) -> VlmInputs:
        """Encodes (image, prompt) rows, left-padded; each image goes through `vrp.to_rgb` first.

        Raises:
          DataError: an image is not a PIL image, is empty, or cannot be decoded.
          PromptError: `images` or `prompts` is not a list, the counts differ, there are no
            rows, or a prompt lacks the placeholder.
        """
        for name, rows in (("images", images), ("prompts", prompts)):
            if isinstance(rows, Image | str | bytes) or not isinstance(rows, Sequence):
                raise PromptError(
                    f"{name} must be a list, one entry per row; got {type(rows).__name__}. Wrap "
                    "a single row in lists: encode([image], [question])."
                )
        rgb = []
        for i, image in enumerate(images):
            try:
                rgb.append(to_rgb(image))  # the one image rule of vrp (see vrp.to_rgb)
            except DataError as error:
                raise DataError(f"image {i} of the batch: {error}") from None
        images, prompts = rgb, list(prompts)
        if len(images) != len(prompts) or not prompts:
            raise PromptError(
                f"encode needs one image per prompt and at least one row, got {len(images)} images "
                f"and {len(prompts)} prompts. Pass two lists of equal length, e.g. "
                "encode([image], [question])."
            )
        for i, text in enumerate(prompts):
            if text.count(self.image_placeholder) != 1:
                raise PromptError(
                    f"Prompt {i} must contain the image placeholder {self.image_placeholder!r} "
                    f"exactly once, found {text.count(self.image_placeholder)} in {text!r}. "
                    f"Build prompts with the handle's prompt(question)."
                )
        processor.tokenizer.padding_side = "left"
        data = processor(
            images=images,
            text=prompts,
            return_tensors="pt",
            padding=True,
            **self._processor_kwargs(),
        )
        data = {k: v for k, v in data.items() if isinstance(v, Tensor) and k != "labels"}
        return self._check_inputs(data, tuple(prompts))

    def _check_inputs(self, data: dict[str, Tensor], prompts: tuple[str, ...]) -> VlmInputs:
        image_mask = data["input_ids"] == self.image_token_id
        grids = self._grids(data)
        expected = torch.tensor([h * w for h, w in grids])
        found = image_mask.sum(dim=1)
        if not torch.equal(found, expected):
            raise PromptError(
                f"Image token count mismatch: each row needs as many image tokens as its image has "
                f"features ({expected.tolist()}), the encoding holds {found.tolist()}. Check that "
                "every prompt holds one image placeholder and the processor matches the model."
            )
        if len(set(grids)) != 1:
            raise PromptError(
                f"All images of a batch must share one patch grid, got {sorted(set(grids))}. "
                "Resize images to one size, or encode them in separate batches."
            )
        return VlmInputs(data=data, image_mask=image_mask, grids=grids, prompts=prompts)

    @property
    def image_token_id(self) -> int:
        token_id = getattr(self.config, "image_token_id", None)
        if token_id is None:
            token_id = getattr(self.config, "image_token_index", None)
        if token_id is None:
            raise AdapterError(f"{self.family} config has no image_token_id / image_token_index.")
        return int(token_id)

    def answer_tokens(self, tokenizer: Any) -> AnswerTokens:
        return AnswerTokens(yes=_first_tokens(tokenizer, "yes"), no=_first_tokens(tokenizer, "no"))

    # ----- the family: building, loading and saving ----------------------------------------------
    @classmethod
    def check_spec(cls, spec: ModelSpec) -> None:
        """Refuses family options this family does not take, and a bad rotary base."""
        check_options(cls.family, spec, cls.spec_options, _takers())

    @classmethod
    @abstractmethod
    def build_tiny(cls, spec: ModelSpec, tokenizer: Any) -> tuple[Any, Any]:
        """A randomly initialised (model, processor) of `spec`'s sizes around `tokenizer`."""

    @classmethod
    @abstractmethod
    def build_config(cls, values: Mapping[str, Any], tokenizer: Any) -> Any:
        """A transformers config from published `values`, its token ids taken from `tokenizer`."""

    @classmethod
    @abstractmethod
    def build_processor(cls, config: Any, tokenizer: Any) -> Any:
        """The family's processor for a model of `config`, around an offline `tokenizer`."""

    @classmethod
    def load_processor(cls, source: str | Path, *, local_only: bool) -> Any:
        """The processor saved with the checkpoint (``processor_config.json`` names its class)."""
        from transformers import AutoProcessor

        return AutoProcessor.from_pretrained(source, local_files_only=local_only)

    @classmethod
    def save_processor(cls, processor: Any, directory: Path) -> None:
        """Writes the tokenizer, image processor and processor files."""
        processor.tokenizer.save_pretrained(directory)
        processor.image_processor.save_pretrained(directory)
        processor.save_pretrained(directory)


def _first_tokens(tokenizer: Any, word: str) -> tuple[int, ...]:
    """Ids of the first token of each casing / spacing variant of `word` that decodes to it."""
    ids: list[int] = []
    for variant in (word.capitalize(), word, " " + word.capitalize(), " " + word, word.upper()):
        encoded = tokenizer.encode(variant, add_special_tokens=False)
        if not encoded:
            continue
        first = encoded[0]
        text = tokenizer.decode([first]).strip().lower()
        if text and word.startswith(text) and first not in ids and len(text) >= min(2, len(word)):
            ids.append(int(first))
    if not ids:
        raise AdapterError(
            f"The tokenizer has no token beginning the answer {word!r}; yes/no margins need one. "
            "Use a tokenizer whose vocabulary holds 'Yes'/'No' or 'yes'/'no'."
        )
    return tuple(ids)


def _takers() -> dict[str, str]:
    """Per family-specific `ModelSpec` option, the titles of the registered families taking it."""
    return {
        option: ", ".join(
            adapter_class(f).title for f in families() if option in adapter_class(f).spec_options
        )
        for option in FAMILY_OPTIONS
    }
