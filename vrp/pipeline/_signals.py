"""Every reliability signal of the VRP study, per sample, from one capture trace per batch.

Structural (attention to the image on the patch grid), mechanistic (logit lens, visual attribution,
attention vs MLP direct-logit shares) and behavioural (answer probability, entropy, margins,
self-consistency from batched sampling). Correctness is judged on yes/no questions.
"""

import warnings
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from ..core import ConfigError, DataError, TidyRecords, UndefinedSignalWarning
from ..data import Sample, parse_pope_answer
from ..models import VLM
from ..signals import (
    ComponentAttribution,
    Dbscan,
    MassComponents,
    attention_structure,
    component_attribution,
    logit_gap,
    logit_lens,
    peak_integration_layer,
    self_consistency,
    top_head_map,
    unembed_direction,
    vocab_entropy,
)
from ._attention import maps_from_patterns
from ._capture import BatchCapture, capture_batch


@dataclass(frozen=True, kw_only=True)
class SignalConfig:
    """Which signals to compute and how.

    Attributes:
      layers: language layers to read (None: all).
      batch_size: rows per trace.
      top_k_heads: K of the top-K-head attention entropy.
      late_window: layer steps summed into the late-diffusion rise; capped at (layers read - 1),
        so that a 2-layer model uses 1.
      samples: K answers sampled per question for self-consistency (0 skips it).
      temperature / top_p / max_new_tokens: sampling settings of self-consistency.
      grey: grey level of the blank image for the visual-attribution margin.
      seed: seeds the sampling (per batch: seed + batch index).
    """

    layers: tuple[int, ...] | None = None
    batch_size: int = 16
    top_k_heads: int = 5
    late_window: int = 3
    samples: int = 10
    temperature: float = 0.7
    top_p: float = 0.9
    max_new_tokens: int = 3
    grey: int = 128
    seed: int = 0
    dbscan: Dbscan = field(default_factory=Dbscan)
    components: MassComponents = field(default_factory=MassComponents)

    def __post_init__(self) -> None:
        checks = {
            "layers must be None or a non-empty tuple of distinct layers": self.layers is None
            or (len(self.layers) > 0 and len(set(self.layers)) == len(self.layers)),
            "batch_size must be >= 1": self.batch_size >= 1,
            "top_k_heads must be >= 1": self.top_k_heads >= 1,
            "late_window must be >= 1": self.late_window >= 1,
            "samples must be >= 0": self.samples >= 0,
            "temperature must be > 0": self.temperature > 0,
            "top_p must lie in (0, 1]": 0 < self.top_p <= 1,
        }
        failed = [rule for rule, ok in checks.items() if not ok]
        if failed:
            raise ConfigError(f"Invalid SignalConfig: {'; '.join(failed)}. Got {self!r}.")


@dataclass(frozen=True, kw_only=True)
class SampleSignals:
    """Every scalar signal of one answered question (NaN where a signal does not apply).

    A signal that cannot be defined for the run is NaN, with an `UndefinedSignalWarning`: C_k
    (DBSCAN) on a grid too small for its definition, and the layer-location signals (early
    locking, truth and visual peak layers) when fewer than 3 layers are read, since with one
    layer-to-layer step the "largest step" is that step, whatever the model does.

    The fields in `LABEL_DEPENDENT` are computed from the correct answer's token (the logit-lens
    truth margin and what derives from it): they describe how the model reaches the truth, and
    correlating them with correctness is circular. Predictors of correctness are the others.
    """

    LABEL_DEPENDENT: ClassVar[tuple[str, ...]] = (
        "truth_margin",
        "truth_peak_layer",
        "visual_attribution",
        "visual_peak_layer",
    )

    question_id: int
    split: str
    category: str
    label: str  # ground truth, "yes" / "no"
    answer: str  # the model's answer from its yes/no logits
    correct: bool
    spatial_entropy: float  # H_s of the layer-average map, nats
    spatial_entropy_norm: float  # H_s / log S
    clusters_dbscan: float  # NaN where the grid is too small for DBSCAN's definition
    clusters_components: float
    early_locking_layer: float  # a layer index; NaN with fewer than 3 layers read (see below)
    late_rise: float
    top_heads_entropy: float
    answer_logprob: float  # log P(the answer token greedy decoding emits), answer position
    vocab_entropy: float
    logit_gap: float  # top-1 minus top-2 logit
    yes_no_margin: float
    truth_margin: float  # logit lens at the last layer: correct token vs the best other
    truth_peak_layer: float  # layer of the largest increase of the truth margin
    visual_attribution: float  # truth margin with the image minus with a blank image, last layer
    visual_peak_layer: float  # peak visual-integration layer: largest increase of the difference
    mlp_share: float  # MLP share of the direct logit attribution to the yes-minus-no direction
    self_consistency: float
    all_agree: bool

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True, kw_only=True)
class LayerSignals:
    """The per-layer curves behind the scalar mechanistic signals, one row per question.

    Column ``j`` is layer ``layers[j]`` of `BatchSignals`. The truth and visual margins are
    label-dependent (they use the correct answer's token), like their last-layer values.

    Attributes:
      truth_margin: logit-lens truth margin (correct token vs the best other) after each layer;
        its last column is `SampleSignals.truth_margin`.
      visual_attribution: the truth margin with the image minus with a blank image; its last
        column is `SampleSignals.visual_attribution`.
      attn_direct: each layer's attention output . the correct-minus-wrong answer direction,
        through the final norm linearised as for `SampleSignals.mlp_share`.
      mlp_direct: the same for each layer's MLP output; ``mlp_share`` is
        ``sum|mlp_direct| / (sum|mlp_direct| + sum|attn_direct|)``.
    """

    NAMES: ClassVar[tuple[str, ...]] = (
        "truth_margin",
        "visual_attribution",
        "attn_direct",
        "mlp_direct",
    )

    truth_margin: Float[np.ndarray, "batch layer"]
    visual_attribution: Float[np.ndarray, "batch layer"]
    attn_direct: Float[np.ndarray, "batch layer"]
    mlp_direct: Float[np.ndarray, "batch layer"]

    def row(self, i: int) -> dict[str, list[float]]:
        """Question `i`'s curves as ``{name: [value per layer]}`` (plain floats)."""
        return {name: [float(v) for v in getattr(self, name)[i]] for name in self.NAMES}


@dataclass(frozen=True, kw_only=True)
class BatchSignals(TidyRecords):
    """Signals of one batch, their per-layer curves, and the answer-position hidden states (for
    probes)."""

    samples: tuple[SampleSignals, ...]
    hidden: Float[np.ndarray, "batch layer d_model"]
    layers: tuple[int, ...]
    per_layer: LayerSignals

    def to_records(self) -> list[dict[str, object]]:
        """One row per question: every field of its `SampleSignals` (hidden states and per-layer
        curves excluded; see `per_layer_records`)."""
        return [s.as_dict() for s in self.samples]

    def per_layer_records(self) -> list[dict[str, object]]:
        """One row per question: its scalar signals plus each `LayerSignals` curve as a list
        column named ``<name>_by_layer`` (value ``j`` at layer ``layers[j]``)."""
        return [
            {**s.as_dict(), **{f"{k}_by_layer": v for k, v in self.per_layer.row(i).items()}}
            for i, s in enumerate(self.samples)
        ]


def require_yes_no(samples: Sequence[Sample], purpose: str = "Reliability signals") -> list[str]:
    """The samples' yes/no answers.

    Raises:
      DataError: no samples, or a sample whose answer is not "yes" / "no" (counting questions).
    """
    if not samples:
        raise DataError(f"{purpose} need at least one sample; got none.")
    bad = [s for s in samples if s.answer not in ("yes", "no")]
    if bad:
        raise DataError(
            f"{purpose} need yes/no questions; question {bad[0].question_id} of split "
            f"{bad[0].split!r} has answer {bad[0].answer!r}. Select the POPE or spatial splits."
        )
    return [s.answer for s in samples]


def _attention(vlm: VLM, cap: BatchCapture, config: SignalConfig, direction: Tensor) -> dict:
    head_maps, maps = maps_from_patterns(cap.patterns, cap.inputs, cap.layers)
    window = max(1, min(config.late_window, len(cap.layers) - 1))
    structure = attention_structure(
        maps, dbscan=config.dbscan, components=config.components, late_window=window
    )
    effects = _head_effects(vlm, cap, direction)  # batch layer head
    k = min(config.top_k_heads, effects[0].numel())
    top = [
        top_head_map(head_maps[i : i + 1], effects[i], k).entropy.nats[0]
        for i in range(len(effects))
    ]
    return {
        "spatial_entropy": structure.entropy.nats,
        "spatial_entropy_norm": structure.entropy.normalised,
        "clusters_dbscan": structure.clusters_dbscan,
        "clusters_components": structure.clusters_components,
        "early_locking_layer": structure.evolution.early_locking_layer,
        "late_rise": structure.evolution.late_rise,
        "top_heads_entropy": torch.stack(top),
    }


def _head_effects(
    vlm: VLM, cap: BatchCapture, direction: Tensor
) -> Float[Tensor, "batch layer head"]:
    """|direct effect| of each head of each row on the row's truth direction (through W_O)."""
    effects = []
    for index, layer in enumerate(cap.layers):
        w_o = vlm.adapter.head_output_weight(vlm.hf, layer)  # d_model (head d_head)
        heads = cap.heads[:, index]  # batch head d_head
        per_head = w_o.reshape(w_o.shape[0], heads.shape[1], heads.shape[2])
        out = torch.einsum("bhe,dhe->bhd", heads, per_head)
        effects.append((out * direction[:, None, :]).sum(-1).abs())
    return torch.stack(effects, dim=1)


def _targets(vlm: VLM, logits: Tensor, labels: list[str]) -> tuple[Tensor, Tensor]:
    """The correct and the wrong answer's tokens per row, each in the spelling the model scores
    highest at the answer position (`VLM.answer_token`): what the logit lens tracks."""
    truth = torch.tensor([lab == "yes" for lab in labels], device=logits.device)
    return vlm.answer_token(logits, truth), vlm.answer_token(logits, ~truth)


def _lens(
    vlm: VLM, cap: BatchCapture, target: Tensor
) -> tuple[dict, Float[Tensor, "batch layer"], Float[Tensor, "batch layer"]]:
    """The scalar logit-lens signals, and the truth and visual margins at every layer read."""
    norm, w_u = vlm.adapter.final_norm(vlm.hf), vlm.adapter.unembedding(vlm.hf)
    kwargs = {"target": target, "norm": norm, "layers": cap.layers}
    real = logit_lens(cap.resid, w_u, **kwargs)
    blank = logit_lens(cap.blank_resid, w_u, **kwargs)
    visual = real.margin - blank.margin
    scalars = {
        "truth_margin": real.margin[:, -1],
        "truth_peak_layer": real.peak_layer,
        "visual_attribution": visual[:, -1],
        "visual_peak_layer": peak_integration_layer(visual, layers=cap.layers),
    }
    return scalars, real.margin, visual


def _components(vlm: VLM, cap: BatchCapture, direction: Tensor) -> ComponentAttribution:
    """Direct logit attribution of each layer's attention and MLP, through the final norm
    frozen at the final residual (when the last layer is read; else the plain projection)."""
    if cap.layers[-1] != vlm.adapter.n_layers - 1:
        return component_attribution(cap.attn, cap.mlp, direction)
    gain, divisor = vlm.adapter.final_norm_linearisation(vlm.hf, cap.resid[:, -1])
    return component_attribution(cap.attn, cap.mlp, direction, gamma=gain, scale=divisor)


def _behaviour(vlm: VLM, cap: BatchCapture, labels: list[str]) -> dict:
    logits = cap.logits.float()
    says_yes = vlm.says_yes(logits)
    answers = ["yes" if a else "no" for a in says_yes.tolist()]
    chosen = vlm.answer_token(logits, says_yes)  # the token greedy decoding emits
    logprob = torch.log_softmax(logits, -1).gather(1, chosen[:, None])[:, 0]
    return {
        "answer": answers,
        "correct": [a == lab for a, lab in zip(answers, labels, strict=True)],
        "answer_logprob": logprob,
        "vocab_entropy": vocab_entropy(logits),
        "logit_gap": logit_gap(logits),
        "yes_no_margin": vlm.yes_no_margin(logits),
    }


def _consistency(vlm: VLM, cap: BatchCapture, config: SignalConfig, index: int) -> dict:
    n = cap.logits.shape[0]
    if config.samples == 0:
        return {"self_consistency": [float("nan")] * n, "all_agree": [False] * n}
    texts = vlm.generate(
        cap.inputs,
        max_new_tokens=config.max_new_tokens,
        seed=config.seed + index,
        do_sample=True,
        temperature=config.temperature,
        top_p=config.top_p,
        num_return_sequences=config.samples,
    )
    k = config.samples
    results = [
        self_consistency(texts[i * k : (i + 1) * k], parse=parse_pope_answer) for i in range(n)
    ]
    return {
        "self_consistency": [r.score for r in results],
        "all_agree": [r.all_agree for r in results],
    }


def batch_signals(
    vlm: VLM, samples: Sequence[Sample], config: SignalConfig, *, index: int = 0
) -> BatchSignals:
    """Every signal of one batch of yes/no samples (one capture trace + one sampling call)."""
    labels = require_yes_no(samples)
    layers = config.layers or tuple(range(vlm.adapter.n_layers))
    cap = capture_batch(vlm, [s.image for s in samples], [s.question for s in samples],
                        layers=layers, grey=config.grey)  # fmt: skip
    target, foil = _targets(vlm, cap.logits.float(), labels)
    w_u = vlm.adapter.unembedding(vlm.hf)
    with torch.no_grad():
        direction = unembed_direction(w_u, target, foil)
        lens, truth_curve, visual_curve = _lens(vlm, cap, target)
        parts = _components(vlm, cap, direction)
        values = {
            **_behaviour(vlm, cap, labels),
            **_attention(vlm, cap, config, direction),
            **lens,
            "mlp_share": parts.mlp_share,
            **_consistency(vlm, cap, config, index),
        }
    _undefine_layer_locations(values, layers)
    rows = []
    for i, sample in enumerate(samples):
        row: dict[str, Any] = {k: _item(v, i) for k, v in values.items()}
        rows.append(SampleSignals(question_id=sample.question_id, split=sample.split,
                                  category=sample.category, label=labels[i], **row))  # fmt: skip
    hidden = cap.resid.detach().float().cpu().numpy()
    per_layer = LayerSignals(truth_margin=_numpy(truth_curve),
                             visual_attribution=_numpy(visual_curve),
                             attn_direct=_numpy(parts.attn), mlp_direct=_numpy(parts.mlp))  # fmt: skip
    return BatchSignals(samples=tuple(rows), hidden=hidden, layers=layers, per_layer=per_layer)


def _numpy(values: Float[Tensor, "batch layer"]) -> Float[np.ndarray, "batch layer"]:
    """A per-layer curve as float64 NumPy (the precision the scalar signals are stored in)."""
    return values.detach().double().cpu().numpy()


_LAYER_LOCATIONS = ("early_locking_layer", "truth_peak_layer", "visual_peak_layer")


def _undefine_layer_locations(values: dict[str, Any], layers: tuple[int, ...]) -> None:
    """Replaces the layer-location signals by NaN (and warns) when they are constant by
    construction: with fewer than 3 layers read there is one layer-to-layer step."""
    if len(layers) >= 3:
        for key in _LAYER_LOCATIONS:
            values[key] = values[key].double()
        return
    warnings.warn(
        f"{', '.join(_LAYER_LOCATIONS)} are undefined with {len(layers)} layers read "
        f"({list(layers)}): the largest layer-to-layer step is the only one. Reported as NaN. "
        "Read at least 3 layers (SignalConfig.layers) for a defined value.",
        UndefinedSignalWarning,
        stacklevel=3,
    )
    for key in _LAYER_LOCATIONS:
        values[key] = torch.full_like(values[key], float("nan"), dtype=torch.float64)


def _item(value: Any, i: int) -> Any:
    return value[i].item() if isinstance(value, Tensor) else value[i]


def dataset_signals(
    vlm: VLM, samples: Iterable[Sample], config: SignalConfig | None = None
) -> list[BatchSignals]:
    """`batch_signals` over `samples` in batches of `config.batch_size`."""
    config = config or SignalConfig()
    batch: list[Sample] = []
    out: list[BatchSignals] = []
    for sample in samples:
        batch.append(sample)
        if len(batch) == config.batch_size:
            out.append(batch_signals(vlm, batch, config, index=len(out)))
            batch = []
    if batch:
        out.append(batch_signals(vlm, batch, config, index=len(out)))
    return out
