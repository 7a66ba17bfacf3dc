"""Section: the published study's headline numbers next to this run's, and whether each finding
holds in kind (not in value: the organisms are small models on a synthetic benchmark).

Source: "Visuals Lie, Consistency Speaks" (arXiv 2606.17389) and "Where Reliability Lives in
Vision-Language Models" (arXiv 2605.08200), as summarised in the project's methods brief. The
criteria for "holds in kind" are written next to each row, so a reader can disagree with them.
"""

from collections.abc import Callable
from typing import Any

from ._doc import Section, Table
from ._format import NA, est, finite, layer, num, pval
from ._lens import lens_rows
from ._rundata import RunData
from ._signals import BEHAVIOURAL

PUBLISHED: dict[str, Any] = {
    "r_clusters": {"estimate": 0.001, "ci_low": -0.034, "ci_high": 0.036, "n": 3090},
    "r_entropy": {"estimate": -0.012, "ci_low": -0.047, "ci_high": 0.024, "n": 3090},
    "mask_top_pp": {"llava": -8.2, "paligemma": -11.3},
    "sc_r": 0.429,
    "sc_auroc": {"llava": 0.78, "paligemma": 0.81, "qwen2_vl": 0.79},
    "probe_auroc": {"llava": 0.956, "paligemma": 0.738, "qwen2_vl": 0.971},
    "neurons_pp": {"llava": -2.0},
    "dims_pp": {"paligemma": -1.0, "qwen2_vl": 2.0},
    "dims_share": {"paligemma": 1000 / 2048, "qwen2_vl": 2000 / 3584},
    "peak_layer": {"llava": (24, 32), "paligemma": (14, 18), "qwen2_vl": (27, 28)},
    "mlp_share": {"llava": 0.821, "paligemma": 0.476, "qwen2_vl": 0.682},
}
"""The published headline values (changes in percentage points, peak layers as (layer, of))."""

FAMILIES = ("paligemma", "qwen2_vl", "llava")


def family_of(model: str) -> str | None:
    """The published study's family a model name belongs to, guessed from its name (for runs
    whose manifest does not record the adapter's family): "organism/qwen2_vl" -> "qwen2_vl";
    None if unknown."""
    name = model.lower().replace("-", "_")
    return next((f for f in FAMILIES if f.replace("_", "") in name.replace("_", "")), None)


def recorded_family(run: RunData, model: str) -> str | None:
    """The adapter family the run recorded for `model` (``manifest.json`` ``models[m].family``,
    else a stage result's ``family``), or None for a run written before families were recorded."""
    entry = (run.manifest.get("models") or {}).get(model) or {}
    found = entry.get("family") if isinstance(entry, dict) else None
    if not found:
        found = next((r.get("family") for r in run.results.get(model, {}).values()
                      if r.get("family")), None)  # fmt: skip
    return str(found) if found else None


def published_family(run: RunData, model: str) -> str | None:
    """The published study's family `model` belongs to: its recorded adapter family when the
    run has one (None if the published study has no such family, e.g. "qwen2_5_vl"), else the
    guess from its name (`family_of`)."""
    recorded = recorded_family(run, model)
    if recorded is not None:
        return recorded if recorded in FAMILIES else None
    return family_of(model)


Row = tuple[str, str, str, str, str, str]
Check = Callable[[RunData, str, str], list[Row]]


def _pp(e: dict[str, Any] | None) -> str:
    """An accuracy change in percentage points with its CI: "-0.6 pp [-7.7, +6.4]"."""
    x = finite((e or {}).get("estimate"))
    if x is None:
        return NA
    lo, hi = finite((e or {}).get("ci_low")), finite((e or {}).get("ci_high"))
    span = "" if lo is None or hi is None else f" [{100 * lo:+.1f}, {100 * hi:+.1f}]"
    return f"{100 * x:+.1f} pp{span}"


def _share(e: dict[str, Any]) -> str:
    """A share as a percentage with its CI: "27.8% [25.6, 29.9]"."""
    x, lo, hi = (finite(e.get(k)) for k in ("estimate", "ci_low", "ci_high"))
    if x is None:
        return NA
    span = "" if lo is None or hi is None else f" [{100 * lo:.1f}, {100 * hi:.1f}]"
    return f"{100 * x:.1f}%{span}"


def _verdict(ok: bool | None) -> str:
    return "undefined" if ok is None else ("holds" if ok else "does not hold")


def _attention(run: RunData, model: str, family: str) -> list[Row]:
    signals = (run.result(model, "signals") or {}).get("signals") or {}
    out = []
    for name, key, label in (("clusters_components", "r_clusters", "C_k"),
                             ("spatial_entropy", "r_entropy", "H_s")):  # fmt: skip
        r = (signals.get(name) or {}).get("point_biserial")
        low, high = finite((r or {}).get("ci_low")), finite((r or {}).get("ci_high"))
        ok = None if low is None or high is None else low <= 0.0 <= high
        out.append((f"attention structure does not predict correctness (r of {label})", model,
                    f"r = {est(PUBLISHED[key])}", f"r = {est(r)}", _verdict(ok),
                    "the run's 95% CI of r contains 0"))  # fmt: skip
    return out


def _masking(run: RunData, model: str, family: str) -> list[Row]:
    top = (((run.result(model, "causal") or {}).get("masking") or {}).get("token") or {}).get("top")
    change = (top or {}).get("change") or {}
    x, p = finite(change.get("estimate")), finite(change.get("p_value"))
    ok = None if x is None or p is None else (x < 0 and p < 0.05)
    paper = PUBLISHED["mask_top_pp"].get(family)
    shown = f"{paper:+.1f} pp, p < 0.001" if paper is not None else "not reported for this family"
    return [("masking the top-30% attended patches lowers accuracy", model, shown,
             f"{_pp(change)}, p = {pval(change.get('p_value'))}", _verdict(ok),
             "token-level change < 0 with McNemar p < 0.05")]  # fmt: skip


def _consistency(run: RunData, model: str, family: str) -> list[Row]:
    signals = (run.result(model, "signals") or {}).get("signals") or {}
    aurocs = {k: (signals.get(k) or {}).get("auroc") for k in BEHAVIOURAL}
    mine = aurocs.get("self_consistency")
    defined = {k: finite(v.get("estimate")) for k, v in aurocs.items() if v}
    ok = None
    if mine and defined.get("self_consistency") is not None:
        best = max(defined, key=lambda k: abs((defined[k] or 0.5) - 0.5))
        low, high = finite(mine.get("ci_low")), finite(mine.get("ci_high"))
        ok = (
            best == "self_consistency"
            and low is not None
            and high is not None
            and (low > 0.5 or high < 0.5)
        )
    paper = PUBLISHED["sc_auroc"].get(family)
    shown = (f"AUROC {paper:.2f} (K = 10), r = {PUBLISHED['sc_r']:.3f}" if paper is not None
             else f"r = {PUBLISHED['sc_r']:.3f}")  # fmt: skip
    return [("self-consistency is the best behavioural predictor", model, shown,
             f"AUROC {est(mine)} (K = {run.n_samples})", _verdict(ok),
             "largest |AUROC - 0.5| of the behavioural signals, CI excluding 0.5")]  # fmt: skip


def _probes(run: RunData, model: str, family: str) -> list[Row]:
    probes = run.result(model, "probes") or {}
    best = probes.get("best_layer")
    e = (probes.get("per_layer") or {}).get(str(best))
    low = finite((e or {}).get("ci_low"))
    paper = PUBLISHED["probe_auroc"].get(family)
    return [("hidden-state probes predict correctness", model,
             f"AUROC {paper:.3f}" if paper is not None else "not reported for this family",
             f"AUROC {est(e)} at L{best}", _verdict(None if low is None else low > 0.5),
             "best layer's held-out AUROC CI above 0.5")]  # fmt: skip


def _neurons(run: RunData, model: str, family: str) -> list[Row]:
    if family != "llava":
        return []
    neurons = (run.result(model, "causal") or {}).get("neurons") or {}
    change = neurons.get("change") or {}
    x = finite(change.get("estimate"))
    vs = finite((neurons.get("p_vs_controls") or {}).get("estimate"))
    ok = None if x is None or vs is None else (x < 0 and vs < 0.05)
    return [("late-fusion bottleneck: top-5 last-layer neurons matter more than random 5", model,
             f"{PUBLISHED['neurons_pp']['llava']:+.1f} pp (random: +0.0 pp)",
             f"{_pp(change)}, p vs random = {pval(vs)}", _verdict(ok),
             "top-k change < 0 and below the random sets (p vs controls < 0.05)")]  # fmt: skip


def _dims(run: RunData, model: str, family: str) -> list[Row]:
    if family not in PUBLISHED["dims_pp"]:
        return []
    points = ((run.result(model, "causal") or {}).get("dims") or {}).get("points") or []
    target = PUBLISHED["dims_share"][family]
    usable = [p for p in points if finite(p.get("fraction")) and p.get("change")]
    if not usable:
        return []
    point = min(usable, key=lambda p: abs(float(p["fraction"]) - target))
    x = finite(point["change"].get("estimate"))
    return [("early fusion is distributed: zeroing about half of a layer's dimensions barely "
             "hurts", model, f"{PUBLISHED['dims_pp'][family]:+.1f} pp at {target:.0%} of the "
             "dimensions", f"{_pp(point['change'])} at {num(point.get('fraction'))} of them",
             _verdict(None if x is None else x >= -0.05), "change within 5 pp of the baseline")]  # fmt: skip


def _lens(run: RunData, model: str, family: str) -> list[Row]:
    if not run.rows("signals", model):
        return []
    found = lens_rows(run, model)
    out = []
    paper_layer, of = PUBLISHED["peak_layer"].get(family, (None, None))
    peak, layers = found["visual_peak"], found["layers"]
    ok = None if peak is None or not layers else peak >= (layers - 1) / 2
    out.append(("visual integration peaks in the later layers", model,
                f"L{paper_layer} of {of}" if paper_layer is not None else "not reported for this family",
                f"median {layer(peak)} of {layers}", _verdict(ok),
                "median peak layer in the later half"))  # fmt: skip
    paper = PUBLISHED["mlp_share"].get(family)
    share = finite(found["mlp_share"].get("estimate"))
    ok = None if share is None or paper is None else (share > 0.5) == (paper > 0.5)
    out.append(("MLPs write most of the margin growth (or not, as published per family)", model,
                f"MLP share {paper:.1%}" if paper is not None else "not reported",
                f"MLP share {_share(found['mlp_share'])}", _verdict(ok),
                "on the same side of 50% as published"))  # fmt: skip
    return out


CHECKS: tuple[tuple[str, Check], ...] = (
    ("signals", _attention), ("causal", _masking), ("signals", _consistency), ("probes", _probes),
    ("causal", _neurons), ("causal", _dims), ("signals", _lens),
)  # fmt: skip
"""Each finding's check and the stage it reads (skipped for a model without that stage)."""


def published_section(run: RunData) -> Section:
    """Each published headline finding next to this run's value, with a verdict in kind."""
    families = {m: published_family(run, m) for m in run.models}
    rows = [row for stage, check in CHECKS for model in run.models
            if run.result(model, stage) is not None
            for row in check(run, model, families[model] or "")]  # fmt: skip
    unknown = [m for m in run.models if families[m] is None]
    notes = [] if not unknown else [f"No published family for {', '.join(unknown)} (its "
                                    "recorded adapter family, or for an older run its name, is "
                                    "none of llava, paligemma, qwen2_vl)."]  # fmt: skip
    guessed = [m for m in run.models if recorded_family(run, m) is None]
    if guessed:
        notes.append(f"The run does not record the adapter family of {', '.join(guessed)} (a "
                     "run written before `vrp run` recorded it): the family was guessed from "
                     "the model's name.")  # fmt: skip
    notes.append("The published MLP-bypass effect (+5.0 pp, early fusion) names no layer, so it "
                 "is not compared here; see the MLP bypass section.")  # fmt: skip
    table = Table(
        key="published", title="Published study vs this run",
        columns=("finding", "model", "published", "this run", "in kind", "criterion"),
        rows=tuple(rows), data=tuple(dict(zip(("finding", "model", "published", "this run",
                                                "in kind", "criterion"), r, strict=True))
                                     for r in rows),
        note="Published values: arXiv 2606.17389 and 2605.08200 (LLaVA-1.5-7B, PaliGemma-3B, "
        "Qwen2-VL-7B; 3,090 questions). A finding 'holds' when this run shows the same kind of "
        "effect by the criterion given, not the same value.",
    )  # fmt: skip
    return Section(key="published", title="Published study vs this run", tables=(table,),
                   notes=tuple(notes),
                   intro="The study's headline findings, checked in kind on this run.")  # fmt: skip
