"""Patching clean into corrupted runs pair by pair, by layer, component and position group.

`patch_pairs` first runs every pair once to decide which pairs a patching study can use: the
clean answer must be right, the corrupted answer must differ from it (else there is nothing to
restore), and the two prompts must have the same token layout (patching copies position by
position). It then patches each usable pair's clean activations into its corrupted run at every
(layer, component, position group) cell, with `patch_sweep`, and normalises per pair: 0 is the
corrupted run's yes-minus-no margin, 1 the clean run's.

Per-pair normalised scores divide by the pair's clean-corrupt gap, which can be close to zero
(a pair whose answers barely flip): such a near tie turns a tiny overshoot into a score of 50 and
dominates any mean over pairs. Aggregates therefore pool: `pooled` is the restored margin summed
over pairs divided by the gap summed over pairs (each pair oriented towards its clean answer), a
ratio of means that weights each pair by its gap, and `profile` gives each pair's restored
margin in units of the mean gap, whose mean over pairs is exactly that ratio.

Position groups, resolved per batch of pairs that share one layout:

- "answer": the last token, where the answer is read (`LastToken`);
- "question": every other text token (the question and the prompt template), as explicit
  `Indices`, since no selector names "text but not the last token";
- "image": the image tokens (`ImageTokens`).
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

import numpy as np
from jaxtyping import Bool, Float

from vrp import Component, ConfigError, ImageTokens, Indices, LastToken, Positions, Site
from vrp.core import TidyRecords
from vrp.interventions import Graph, GraphPool, run_graph
from vrp.models import VLM, VlmInputs

from ._corrupt import CorruptPair
from ._pair_batches import PairBatching, run_batches
from ._sweep import PatchResult, patch_sweep

PositionGroup: TypeAlias = Literal["answer", "question", "image"]
POSITION_GROUPS: tuple[PositionGroup, ...] = ("answer", "question", "image")
COMPONENTS = (Component.RESID_POST, Component.ATTN_OUT, Component.MLP_OUT)


@dataclass(frozen=True, kw_only=True)
class PairPatching(TidyRecords):
    """Per-pair patching scores, with each pair's validity.

    Attributes:
      pairs: the pairs, in order.
      components: the patched components (axis 1 of `scores`).
      groups: the position groups (axis 2).
      layers: the language layers (axis 3).
      clean_metric: each pair's clean yes-minus-no margin: as measured in the patching trace
        for valid pairs (their scores are normalised by it), in the validity pass otherwise.
      corrupt_metric: each pair's corrupted margin, measured the same way.
      clean_correct: the clean answer is right.
      flipped: the corrupted answer differs from the clean one.
      aligned: clean and corrupted prompts have the same token layout.
      metric: the corrupted run's margin after patching each cell, `(pair, component, group,
        layer)`; NaN for pairs that are not `valid`.
      scores: `metric` normalised per pair (0 = corrupted run, 1 = clean run, as `patch_sweep`
        measures them); NaN for pairs that are not `valid`. Noisy for pairs whose gap is near
        zero: aggregate with `pooled` / `profile`, not a mean of these.
    """

    pairs: tuple[CorruptPair, ...]
    components: tuple[Component, ...]
    groups: tuple[PositionGroup, ...]
    layers: tuple[int, ...]
    clean_metric: Float[np.ndarray, " pair"] = field(compare=False)
    corrupt_metric: Float[np.ndarray, " pair"] = field(compare=False)
    clean_correct: Bool[np.ndarray, " pair"] = field(compare=False)
    flipped: Bool[np.ndarray, " pair"] = field(compare=False)
    aligned: Bool[np.ndarray, " pair"] = field(compare=False)
    metric: Float[np.ndarray, "pair component group layer"] = field(compare=False, repr=False)
    scores: Float[np.ndarray, "pair component group layer"] = field(compare=False, repr=False)

    @property
    def valid(self) -> Bool[np.ndarray, " pair"]:
        """Pairs a patching study can use: clean right, corrupted answer different, aligned."""
        return self.clean_correct & self.flipped & self.aligned

    def restored(
        self, component: Component, group: PositionGroup
    ) -> tuple[Float[np.ndarray, "pair layer"], Float[np.ndarray, " pair"]]:
        """The valid pairs' restored margin by layer and their gap, oriented towards the clean
        answer: `(sign * (metric - corrupt_metric), |clean_metric - corrupt_metric|)`, with
        `sign` the sign of the pair's gap (restoring the clean answer is positive).

        Raises:
          ConfigError: `component` or `group` was not patched, or no pair is valid.
        """
        if component not in self.components or group not in self.groups:
            raise ConfigError(
                f"profile: {component.value}/{group} was not patched; patched components "
                f"{[c.value for c in self.components]}, groups {list(self.groups)}."
            )
        valid = self.valid
        if not valid.any():
            raise ConfigError(
                f"profile: none of the {len(self.pairs)} pairs is usable (clean right, corrupted "
                "answer different, same layout); pass more pairs or a stronger corruption."
            )
        c, g = self.components.index(component), self.groups.index(group)
        gap = (self.clean_metric - self.corrupt_metric)[valid]
        shift = self.metric[valid][:, c, g, :] - self.corrupt_metric[valid][:, None]
        return np.sign(gap)[:, None] * shift, np.abs(gap)

    def pooled(self, component: Component, group: PositionGroup) -> Float[np.ndarray, " layer"]:
        """The pooled normalised score by layer: restored margin summed over the valid pairs over
        their gap summed (0 = corrupted runs, 1 = clean runs; a ratio of means, robust to near
        ties, unlike the mean of `scores`).

        Raises:
          ConfigError: `component` or `group` was not patched, or no pair is valid.
        """
        restored, gap = self.restored(component, group)
        return restored.sum(axis=0) / gap.sum()

    def profile(
        self, component: Component, group: PositionGroup
    ) -> Float[np.ndarray, "pair layer"]:
        """Each valid pair's restored margin by layer in units of the valid pairs' mean gap, for
        `circuits.localise`: its mean over pairs is `pooled`, and a bootstrap over its rows
        resamples pairs.

        Raises:
          ConfigError: `component` or `group` was not patched, or no pair is valid.
        """
        restored, gap = self.restored(component, group)
        return restored / gap.mean()

    def to_records(self, *, include_invalid: bool = False) -> list[dict[str, Any]]:
        """One row per valid pair per cell: the pair (index, question_id, split, category,
        corruption, change, and its validity: clean_correct, flipped, aligned, valid), the cell
        (layer, component, positions), the clean and corrupted margins, the patched margin and
        the normalised score. With `include_invalid`, every other pair adds one row whose cell
        fields and scores are None, so the table also counts the pairs that could not be used.
        """
        rows = []
        valid = self.valid
        for index, pair in enumerate(self.pairs):
            if not (valid[index] or include_invalid):
                continue
            common = {"pair": index, "question_id": pair.clean.question_id,
                      "split": pair.clean.split, "category": pair.clean.category,
                      "corruption": pair.kind, "change": pair.change,
                      "clean_correct": bool(self.clean_correct[index]),
                      "flipped": bool(self.flipped[index]), "aligned": bool(self.aligned[index]),
                      "valid": bool(valid[index]),
                      "clean_metric": float(self.clean_metric[index]),
                      "corrupt_metric": float(self.corrupt_metric[index])}  # fmt: skip
            if not valid[index]:
                rows.append({**common, "layer": None, "component": None, "positions": None,
                             "metric": None, "score": None})  # fmt: skip
                continue
            for (c, comp), (g, group), (li, layer) in _cells(
                self.components, self.groups, self.layers
            ):
                rows.append({**common, "layer": layer, "component": comp.value, "positions": group,
                             "metric": float(self.metric[index, c, g, li]),
                             "score": float(self.scores[index, c, g, li])})  # fmt: skip
        return rows


def _cells(
    components: Sequence[Component], groups: Sequence[str], layers: Sequence[int]
) -> list[tuple[tuple[int, Component], tuple[int, str], tuple[int, int]]]:
    """Every (component, group, layer) cell with its indices, components outermost."""
    return [(c, g, li) for c in enumerate(components) for g in enumerate(groups)
            for li in enumerate(layers)]  # fmt: skip


def patch_pairs(
    vlm: VLM,
    pairs: Sequence[CorruptPair],
    *,
    components: Sequence[Component] = COMPONENTS,
    groups: Sequence[PositionGroup] = POSITION_GROUPS,
    cells_per_trace: int = 32,
    pool: GraphPool | None = None,
    batching: PairBatching | None = None,
) -> PairPatching:
    """Decides which pairs are usable and patches them at every layer x component x group.

    Args:
      vlm: the model.
      pairs: clean/corrupt pairs (`corrupt_pairs`).
      components: language components to patch (residual stream, attention and MLP outputs).
      groups: position groups to patch ("answer", "question", "image").
      cells_per_trace: cells stacked into one trace (bounds memory).
      pool: runs the traces on replicas of the model (`RayGraphPool`), same scores.
      batching: many pairs in batches (bounding memory), each saved to a checkpoint folder when
        done so that a rerun resumes (`PairBatching`); None: all pairs in one batch, unsaved.
        Each batch's baselines and scores are its own pairs', so the result is the same.

    Raises:
      ConfigError: no pairs, no components or an unknown group; a checkpoint folder of another
        sweep.
      GraphError: a component does not exist in the model.
    """
    if not pairs or not components or any(g not in POSITION_GROUPS for g in groups) or not groups:
        raise ConfigError(
            f"patch_pairs needs pairs, components and groups from {POSITION_GROUPS}; got "
            f"{len(pairs)} pairs, {len(components)} components and groups {list(groups)}."
        )
    axes = (tuple(components), tuple(groups), tuple(range(vlm.adapter.n_layers)))

    def patch(batch: Sequence[CorruptPair]) -> dict[str, np.ndarray]:
        return _patch_batch(vlm, batch, axes, (cells_per_trace, pool))

    if batching is None:
        arrays = patch(pairs)
    else:
        settings = {"components": [c.value for c in axes[0]], "groups": list(axes[1]),
                    "layers": len(axes[2])}  # fmt: skip
        arrays = run_batches(vlm, pairs, batching, settings, patch)
    return PairPatching(pairs=tuple(pairs), components=axes[0], groups=axes[1], layers=axes[2],
                        **arrays)  # fmt: skip


def _patch_batch(
    vlm: VLM,
    pairs: Sequence[CorruptPair],
    axes: tuple[tuple[Component, ...], tuple[PositionGroup, ...], tuple[int, ...]],
    running: tuple[int, GraphPool | None],
) -> dict[str, np.ndarray]:
    """`patch_pairs`' arrays for one batch of pairs."""
    check = _check_pairs(vlm, pairs)
    clean, corrupt, margin, layouts = check.clean, check.corrupt, check.margin, check.layouts
    clean_correct, flipped, aligned = check.clean_correct, check.flipped, check.aligned
    metric = np.full((len(pairs), *map(len, axes)), np.nan)
    scores = metric.copy()
    for rows in _same_layout(clean_correct & flipped & aligned, layouts):
        sweep, cells = _sweep_rows(vlm, clean.rows(rows), corrupt.rows(rows), axes, running)
        raw = sweep.per_row.float().cpu().numpy()
        normalised = sweep.normalised_per_row.float().cpu().numpy()
        for cell, (c, g, li) in enumerate(cells):
            metric[rows, c, g, li], scores[rows, c, g, li] = raw[cell], normalised[cell]
        margin["clean"][rows] = sweep.clean_per_row.float().cpu().numpy()
        margin["corrupt"][rows] = sweep.corrupt_per_row.float().cpu().numpy()
    return {"clean_metric": margin["clean"], "corrupt_metric": margin["corrupt"],
            "clean_correct": clean_correct, "flipped": flipped, "aligned": aligned,
            "metric": metric, "scores": scores}  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class _PairCheck:
    clean: VlmInputs
    corrupt: VlmInputs
    margin: dict[str, np.ndarray]
    layouts: list[tuple[bool, ...]]
    clean_correct: np.ndarray
    flipped: np.ndarray
    aligned: np.ndarray


def _check_pairs(vlm: VLM, pairs: Sequence[CorruptPair]) -> _PairCheck:
    """Encodes the pairs and runs them once: margins, layouts and each pair's validity."""
    clean = vlm.encode([p.clean.image for p in pairs], [p.clean.question for p in pairs])
    corrupt = vlm.encode([p.corrupt.image for p in pairs], [p.corrupt.question for p in pairs])
    logits = run_graph(vlm, Graph(nodes=(), runs=("clean", "corrupt")),
                       {"clean": clean, "corrupt": corrupt}).answer_logits  # fmt: skip
    margin = {run: vlm.yes_no_margin(logits[run]).float().cpu().numpy() for run in logits}
    truth = np.array([p.clean.answer == "yes" for p in pairs])
    layouts = [_layout(clean, i) for i in range(len(pairs))]
    return _PairCheck(
        clean=clean, corrupt=corrupt, margin=margin, layouts=layouts,
        clean_correct=(margin["clean"] > 0) == truth,
        flipped=(margin["clean"] > 0) != (margin["corrupt"] > 0),
        aligned=np.array([layouts[i] == _layout(corrupt, i) for i in range(len(pairs))]),
    )  # fmt: skip


def usable_pairs(
    vlm: VLM, pairs: Sequence[CorruptPair]
) -> tuple[tuple[CorruptPair, ...], VlmInputs, VlmInputs]:
    """The pairs a node-level study can use together, encoded: valid pairs (clean answer right,
    corrupted answer different, aligned; see `patch_pairs`) of the most common token layout.

    Raises:
      ConfigError: no pairs, or none of them is usable.
    """
    if not pairs:
        raise ConfigError("usable_pairs needs pairs (circuits.corrupt_pairs); got none.")
    check = _check_pairs(vlm, pairs)
    groups = _same_layout(check.clean_correct & check.flipped & check.aligned, check.layouts)
    if not groups:
        raise ConfigError(
            f"none of the {len(pairs)} pairs is usable (clean answer right, corrupted answer "
            "different, same token layout); pass more pairs or a stronger corruption."
        )
    rows = max(groups, key=len)
    return (tuple(pairs[i] for i in rows), check.clean.rows(rows),
            check.corrupt.rows(rows))  # fmt: skip


def _layout(inputs: VlmInputs, row: int) -> tuple[bool, ...]:
    """A row's real tokens as image (True) or text (False), in order."""
    real = inputs.attention_mask[row].bool()
    return tuple(bool(v) for v in inputs.image_mask[row][real].tolist())


def _same_layout(valid: np.ndarray, layouts: list[tuple[bool, ...]]) -> list[list[int]]:
    groups: dict[tuple[bool, ...], list[int]] = {}
    for row in np.flatnonzero(valid):
        groups.setdefault(layouts[row], []).append(int(row))
    return list(groups.values())


def _positions(group: str, layout: tuple[bool, ...]) -> Positions | None:
    """The selector of a position group for rows of one layout (None: the group is empty)."""
    if group == "answer":
        return LastToken()
    if group == "image":
        return ImageTokens() if any(layout) else None
    text = tuple(i for i, image in enumerate(layout[:-1]) if not image)
    return Indices(text) if text else None


def _sweep_rows(
    vlm: VLM, clean: VlmInputs, corrupt: VlmInputs, axes: tuple,
    how: tuple[int, GraphPool | None],
) -> tuple[PatchResult, list[tuple[int, int, int]]]:  # fmt: skip
    """Patches rows of one layout at every cell whose position group is not empty there;
    returns the sweep and the (component, group, layer) indices of its cells."""
    layout = _layout(clean, 0)
    cells, sites = [], []
    for (c, component), (g, group), (li, layer) in _cells(*axes):
        positions = _positions(group, layout)
        if positions is not None:
            cells.append((c, g, li))
            sites.append(Site(layer=layer, component=component, positions=positions))
    sweep = patch_sweep(vlm, clean, corrupt, sites, vlm.yes_no_margin,
                        cells_per_trace=how[0], pool=how[1])  # fmt: skip
    return sweep, cells
