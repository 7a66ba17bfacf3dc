"""Section: activation patching of clean into corrupted runs, layer x position group, and the
localisation verdict of each profile, per model side by side."""

from typing import Any

import numpy as np

from ._doc import Figure, Section, Table, absent_section, missing_stage
from ._format import count, est, est_fields, finite, pval
from ._plot import colour, integer_axis, new_figure, png, series, short_name
from ._rundata import RunData

COUNTS = ("pairs", "clean_correct", "flipped", "aligned", "valid")


def cells(circuits: dict[str, Any], corruption: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(component, position group, cell) of one corruption, in the file's order."""
    found = ((circuits.get("corruptions") or {}).get(corruption) or {}).get("cells") or {}
    return [(c, g, cell) for c, groups in found.items() for g, cell in (groups or {}).items()]


def corruptions(run: RunData) -> list[str]:
    names: list[str] = []
    for model in run.models:
        for name in (run.result(model, "circuits") or {}).get("corruptions") or {}:
            if name not in names:
                names.append(name)
    return names


def patching_section(run: RunData) -> Section:
    """Pair counts, per-cell layer means and localisation verdicts, and the heatmaps."""
    key, title = "patching", "Activation patching and localisation"
    if not run.has("circuits"):
        return absent_section(key, title, missing_stage("circuits"))
    kinds = corruptions(run)
    tables = (_pairs_table(run, kinds), _verdict_table(run, kinds), _scores_table(run, kinds))
    figures = [f for f in (_heatmap(run, k) for k in kinds) if f is not None]
    profile = _profile_figure(run)
    if profile is not None:
        figures.append(profile)
    return Section(key=key, title=title, tables=tables, figures=tuple(figures),
                   intro="Clean activations patched into the corrupted run, one layer and "
                   "position group at a time; score 0 = the corrupted answer, 1 = the clean "
                   "one. The localisation verdict says whether a profile's effect is spread "
                   "over layers or concentrated late.")  # fmt: skip


def _pairs_table(run: RunData, kinds: list[str]) -> Table:
    rows, data = [], []
    for model in run.models:
        found = (run.result(model, "circuits") or {}).get("corruptions") or {}
        for kind in kinds:
            c = found.get(kind) or {}
            rows.append(
                (model, kind, *(count(c.get(k)) for k in COUNTS), est(c.get("valid_share")))
            )
            data.append({"model": model, "corruption": kind, **{k: c.get(k) for k in COUNTS},
                         **est_fields("valid_share", c.get("valid_share"))})  # fmt: skip
    return Table(key="patching_pairs", title="Clean/corrupt pairs per corruption",
                 columns=("model", "corruption", "pairs", "clean answer right", "answer flipped",
                          "same token layout", "usable", "usable share [95% CI]"),
                 rows=tuple(rows), data=tuple(data),
                 note="A pair is usable when the clean answer is right, the corruption flips "
                 "it, and both prompts have one token layout.")  # fmt: skip


def _verdict_table(run: RunData, kinds: list[str]) -> Table:
    rows, data = [], []
    for model in run.models:
        circuits = run.result(model, "circuits") or {}
        for kind in kinds:
            for component, group, cell in cells(circuits, kind):
                where = cell.get("localisation") or {"undefined": cell.get("undefined", "")}
                conc = _ci(where.get("concentration"), where.get("concentration_ci"))
                late = _ci(where.get("late_share"), where.get("late_share_ci"))
                rows.append((model, kind, component, group, where.get("verdict", "undefined"),
                             est(conc), est(late), count(where.get("peak")), count(cell.get("n")),
                             where.get("reason") or where.get("undefined", "")))  # fmt: skip
                data.append({"model": model, "corruption": kind, "component": component,
                             "positions": group, "verdict": where.get("verdict"),
                             **est_fields("concentration", conc), **est_fields("late_share", late),
                             "peak": where.get("peak"), "n": cell.get("n"),
                             "undefined": where.get("undefined")})  # fmt: skip
    return Table(key="localisation", title="Localisation verdict per profile",
                 columns=("model", "corruption", "component", "positions", "verdict",
                          "concentration [95% CI]", "late share [95% CI]", "peak layer",
                          "usable pairs", "reason"),
                 rows=tuple(rows), data=tuple(data),
                 note="circuits.localise over the pairs x layers scores: concentration (0 = "
                 "spread evenly, 1 = one layer) and the share of the effect in the late layers, "
                 "with bootstrap CIs over pairs.")  # fmt: skip


def _ci(value: Any, bounds: Any) -> dict[str, Any]:
    low, high = bounds if isinstance(bounds, list | tuple) and len(bounds) == 2 else (None, None)
    return {"estimate": value, "ci_low": low, "ci_high": high}


def _profiles(cell: dict[str, Any]) -> list[str]:
    """The keys of a cell holding one estimate per layer: ``per_layer`` (the pooled score) first,
    then any other per-layer score the run writes."""
    found = [k for k, v in cell.items()
             if isinstance(v, list) and v and all(isinstance(e, dict) and "n" in e for e in v)]  # fmt: skip
    return sorted(found, key=lambda k: (k != "per_layer", k))


def _scores_table(run: RunData, kinds: list[str]) -> Table:
    every = [(m, k, c, g, cell) for m in run.models for k in kinds
             for c, g, cell in cells(run.result(m, "circuits") or {}, k)]  # fmt: skip
    extra = sorted({p for *_, cell in every for p in _profiles(cell)} - {"per_layer"})
    rows, data = [], []
    for model, kind, component, group, cell in every:
        for layer, e in enumerate(cell.get("per_layer") or []):
            others = [(cell.get(p) or [{}] * (layer + 1))[layer] for p in extra]
            rows.append((model, kind, component, group, f"L{layer}", est(e),
                         pval(e.get("p_value")), pval(e.get("q_value")), count(e.get("n")),
                         *(est(o) for o in others)))  # fmt: skip
            row = {"model": model, "corruption": kind, "component": component,
                   "positions": group, "layer": layer, **est_fields("score", e),
                   "q_value": e.get("q_value"), "undefined": e.get("undefined")}  # fmt: skip
            for name, other in zip(extra, others, strict=True):
                row.update(est_fields(name, other))
            data.append(row)
    return Table(key="patching", title="Normalised patching score per layer, pooled over pairs",
                 columns=("model", "corruption", "component", "positions", "layer",
                          "score [95% CI]", "p (vs 0)", "q (BH)", "n",
                          *(f"{p.replace('_', ' ')} [95% CI]" for p in extra)),
                 rows=tuple(rows), data=tuple(data),
                 note="The restored margin summed over the usable pairs over their clean-corrupt "
                 "gap summed (a ratio of means: 0 = corrupted run, 1 = clean run); bootstrap CI "
                 "over pairs, sign-flip permutation p against 0, Benjamini-Hochberg q over every "
                 "cell and layer of the corruption (runs before the pooled score: the mean of "
                 "per-pair scores). Further columns: other per-layer scores the run records for "
                 "the cell.")  # fmt: skip


def _grid(circuits: dict[str, Any], kind: str) -> tuple[list[str], np.ndarray] | None:
    found = [(f"{c} / {g}", [finite(e.get("estimate")) for e in cell.get("per_layer") or []])
             for c, g, cell in cells(circuits, kind) if cell.get("per_layer")]  # fmt: skip
    if not found:
        return None
    width = max(len(v) for _, v in found)
    grid = np.full((len(found), width), np.nan)
    for i, (_, values) in enumerate(found):
        grid[i, : len(values)] = [np.nan if v is None else v for v in values]
    return [label for label, _ in found], grid


def _heatmap(run: RunData, kind: str) -> Figure | None:
    grids = {m: _grid(run.result(m, "circuits") or {}, kind) for m in run.models}
    shown = {m: g for m, g in grids.items() if g is not None}
    if not shown:
        return None
    fig, axes = new_figure(len(shown), width=3.8, height=3.6)
    image = None
    for ax, (model, (labels, grid)) in zip(axes, shown.items(), strict=True):
        image = ax.imshow(np.ma.masked_invalid(grid), aspect="auto", cmap="RdBu_r", vmin=-1, vmax=1)
        ax.set_yticks(range(len(labels)), labels, fontsize=7)
        ax.set_xticks(range(grid.shape[1]), [f"L{i}" for i in range(grid.shape[1])], fontsize=7)
        ax.set_title(short_name(model), fontsize=10)
    fig.colorbar(image, ax=axes, shrink=0.8, label="normalised score (pooled over pairs)")
    return Figure(key=f"patching_{kind}", title=f"Patching heatmaps, '{kind}' corruption",
                  png=png(fig), alt=f"Per model, the pooled normalised patching score of the "
                  f"'{kind}' corruption for each component and position group (rows) and layer "
                  "(columns); 1 restores the clean answer.")  # fmt: skip


def _profile_figure(run: RunData) -> Figure | None:
    shown = {m: (run.result(m, "circuits") or {}).get("headline") or {} for m in run.models}
    profiles = {}
    for model, head in shown.items():
        kind, component, group = (
            str(head.get(k)) for k in ("corruption", "component", "positions")
        )
        cell = {(c, g): v for c, g, v in cells(run.result(model, "circuits") or {}, kind)}
        found = (cell.get((component, group)) or {}).get("per_layer")
        if found:
            profiles[model] = (head, found)
    if not profiles:
        return None
    fig, axes = new_figure(len(profiles), width=3.6)
    for i, (ax, (model, (head, layers))) in enumerate(zip(axes, profiles.items(), strict=True)):
        xs, ys, lows, highs = series(enumerate(layers))
        ax.fill_between(xs, lows, highs, color=colour(i), alpha=0.25, lw=0)
        ax.plot(xs, ys, "o-", color=colour(i))
        ax.axhline(0, color="black", lw=0.8, ls=":")
        verdict = (head.get("localisation") or {}).get("verdict", "undefined")
        ax.set_title(f"{short_name(model)}: {verdict}", fontsize=10)
        ax.set_xlabel("layer")
        integer_axis(ax)
        ax.set_ylabel("normalised score, pooled (95% CI)")
    head = next(iter(profiles.values()))[0]
    what = f"{head.get('corruption')}, {head.get('component')}, {head.get('positions')}"
    return Figure(key="localisation", title=f"Localisation profile per model ({what})",
                  png=png(fig), alt=f"Per model, the headline patching profile ({what}) by layer "
                  "with its 95% CI band, and its localisation verdict.")  # fmt: skip
