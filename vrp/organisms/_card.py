"""Model cards generated from a real evaluation: never hand-typed numbers.

`card_markdown` renders one organism's architecture (read from the model), training recipe and time
(read from the ``training.json`` its run wrote) and its metrics per split with n and 95% CIs (from an
`OrganismReport`). `write_card` stores the card in the package (``vrp/organisms/cards/``) and,
optionally, a copy in the docs.
"""

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..core import ConfigError, Tower
from ..data import BinaryMetrics, CountMetrics
from ..models import VLM, adapter_class
from ..stats import Estimate
from ._checkpoint import install_model, read_training
from ._evaluate import EVAL_SEED, Method, OrganismReport, evaluate_organism, evaluation_set
from ._recipe import RECIPES

PACKAGE_DIR = Path(__file__).resolve().parent
ASSET_DIR = PACKAGE_DIR / "assets"
CARD_DIR = PACKAGE_DIR / "cards"
FAMILIES = tuple(RECIPES)
"""The families with an organism recipe (titles and design notes come from their adapters)."""


def _check_family(family: str) -> None:
    if family not in FAMILIES:
        raise ConfigError(f"No organism {family!r}; organisms: {', '.join(FAMILIES)}.")


def _ci(e: Estimate, digits: int = 3) -> str:
    return f"{e.estimate:.{digits}f} [{e.ci_low:.{digits}f}, {e.ci_high:.{digits}f}]"


def _parameter_table(vlm: VLM) -> list[str]:
    groups: dict[str, int] = {}
    for name, p in vlm.hf.named_parameters():
        key = ".".join(name.split(".")[:2]) if name.startswith("model.") else name.split(".")[0]
        groups[key] = groups.get(key, 0) + p.numel()
    total = sum(groups.values())
    rows = ["| module | parameters |", "|---|---:|"]
    rows += [f"| `{k}` | {v:,} |" for k, v in groups.items()]
    return [*rows, f"| **total** | **{total:,}** |"]


def _architecture(vlm: VLM, asset_bytes: int | None) -> list[str]:
    vision, text = vlm.adapter.shape(Tower.VISION), vlm.adapter.shape(Tower.LANGUAGE)
    cfg = vlm.hf.config
    kv = getattr(cfg.text_config, "num_key_value_heads", text.n_heads)
    lines = [
        "## Architecture",
        "",
        adapter_class(vlm.family).description,
        "",
        f"- Classes: `{type(vlm.hf).__name__}`, `{type(vlm.processor).__name__}`, a local "
        f"word-level `{type(vlm.tokenizer).__name__}` ({len(vlm.tokenizer):,} tokens).",
        f"- Vision tower: {vision.n_layers} layers, width {vision.d_model}, {vision.n_heads} heads, "
        f"MLP {vision.d_mlp}.",
        f"- Language decoder: {text.n_layers} layers, width {text.d_model}, {text.n_heads} query "
        f"heads / {kv} key-value head{'s' if kv != 1 else ''} of {text.d_head}, MLP {text.d_mlp}.",
        _rotary(cfg.text_config, text.d_head),
        f"- Attention implementation when loaded: `{cfg._attn_implementation}` (attention "
        "patterns and knockouts work under any: recomputed at the layers they touch).",
    ]
    if asset_bytes is not None:
        lines.append(
            f"- Shipped files (weights float32 + processor + tokenizer): {asset_bytes / 2**20:.1f} MiB."
        )
    return [*lines, "", *_parameter_table(vlm), ""]


def _rotary(text_config: Any, d_head: int) -> str:
    rope = getattr(text_config, "rope_parameters", None) or {}
    theta = rope.get("rope_theta")
    base = f"base {theta:,.0f}" if isinstance(theta, int | float) else "base not recorded"
    section = rope.get("mrope_section")
    if section is None:
        return f"- Decoder rotary positions: {base}."
    return (
        f"- Decoder rotary positions: {base}; M-RoPE gives (time, height, width) {list(section)} "
        f"of each head's {d_head // 2} frequency pairs, highest frequencies first."
    )


def _image_tokens(vlm: VLM, image_size: int) -> str:
    from PIL import Image

    inputs = vlm.encode([Image.new("RGB", (image_size, image_size))], ["Is there a red circle?"])
    h, w = inputs.grids[0]
    return f"- Image: {image_size}x{image_size} px -> {inputs.n_image_tokens} image tokens on a {h}x{w} grid."


def _mix(mix: Mapping[str, int]) -> str:
    names = {
        "caption": "captions",
        "grounding": "grounding",
        "relational": "relational grounding",
        "pope": "existence",
        "hallucinated": "hallucinated existence",
        "counting": "counting",
        "spatial": "spatial",
    }
    parts = [f"{mix[k]} {v}" for k, v in names.items() if mix.get(k)]
    return f"batch {sum(mix.values())}: " + ", ".join(parts)


def _grounding_note(recipe: Mapping[str, Any]) -> str:
    mixes = recipe["mix"], recipe["alignment_mix"]
    note = ""
    if any(m.get("grounding") for m in mixes):
        note += ' Grounding questions ("Where is the red circle?" -> "1 2") ask for the cells of an'
        note += " object."
    if any(m.get("relational") for m in mixes):
        note += (
            ' Relational grounding ("Where is the red circle left of the blue cross?" -> "1 2", '
            "made from true spatial questions) asks for the cell of the first object named, "
            "apart from the second."
        )
    return note


def _training(training: Mapping[str, Any]) -> list[str]:
    if not training:
        return ["## Training", "", "No training record (training.json) was found.", ""]
    r, data = training["recipe"], training["recipe"]["data"]
    minutes, seconds = divmod(float(training["seconds"]), 60)
    stage_two = training["steps"] - r["alignment_steps"]
    lines = [
        "## Training",
        "",
        "A LLaVA-style recipe in miniature, on scenes drawn afresh at every step from the synthetic "
        f"benchmark with seeds >= 1,000,000 ({data['grid']}x{data['grid']} grid, "
        f"{data['min_objects']}-{data['max_objects']} objects, pixel noise, clutter, small and "
        "overlapping objects). Loss: teacher-forced next-token cross-entropy on the target tokens "
        "only (answer + end-of-sequence, or the caption), labels aligned once with the logits of "
        "the position before each target.",
        "",
        f"1. Alignment, {r['alignment_steps']:,} steps, clean annotations ({_mix(r['alignment_mix'])}"
        "). Captions list each grid cell's object or `empty`; existence negatives are random "
        "absent objects.",
        f"2. Instruction tuning, {stage_two:,} steps, careless annotations ({_mix(r['mix'])}): "
        f"each small or partly occluded object is left out of captions and answers with "
        f"probability {r['miss_prob']:g}, and the hallucinated existence questions affirm an "
        "absent object that co-occurs with the scene's objects." + _grounding_note(r),
        "",
        f"- AdamW lr {r['lr']:g}, betas {tuple(r['betas'])}, weight decay {r['weight_decay']:g} "
        f"(matrices only), {r['warmup']} warm-up steps, cosine decay to {r['min_lr_ratio']:g} x lr, "
        f"gradient-norm clip {r['clip']:g}.",
        f"- Seed {training['seed']}, {training['threads']} CPU threads; wall time "
        f"{int(minutes)} min {seconds:.0f} s on {_machine(training)} "
        f"(torch {training['versions']['torch']}, transformers "
        f"{training['versions']['transformers']}).",
        f"- Final loss (mean of the last 50 steps): captions {training['final_caption_loss']}, "
        f"questions {training['final_qa_loss']}.",
        f"- Reproduce: `{training['command']} --out runs/{training['family']}` (bit-exact for the "
        "same thread count and library versions; another thread count changes the float "
        "summation order and the run drifts).",
    ]
    if r.get("vision_grid_positions"):
        lines.insert(
            -3,
            "- The vision tower's position table was set to fixed 2-D sin-cos codes of amplitude "
            f"{r['vision_grid_positions']:g} and frozen (`vrp.organisms.grid_position_table`).",
        )
    return [*lines, "", *_validation(training.get("validation", [])), ""]


def _machine(training: Mapping[str, Any]) -> str:
    machine = f"an {training.get('cpu', 'unrecorded')} machine"
    cpus = training.get("cpu_count")
    return f"{machine} with {cpus} CPUs" if cpus else machine


def _evaluate_command(family: str, report: OrganismReport) -> str:
    """The `vrp organisms evaluate` call that scores exactly the card's questions."""
    n = {split: m.n for split, m in report.metrics.splits.items()}
    return (
        f"vrp organisms evaluate organism/{family} --n {n.get('random', 0)} "
        f"--n-counting {n.get('counting', 0)} --n-spatial {n.get('spatial', 0)} "
        f"--seed {report.seed}"
    )


def _validation(points: Sequence[Mapping[str, float | int]]) -> list[str]:
    if not points:
        return []
    splits = [k for k in points[0] if k != "step"]
    rows = [
        "Accuracy during training (validation benchmark, seed 999,999, answer-position logits):",
        "",
        "| step | " + " | ".join(splits) + " |",
        "|---:|" + "---:|" * len(splits),
    ]
    rows += [
        f"| {int(p['step'])} | " + " | ".join(f"{p[s]:.3f}" for s in splits) + " |" for p in points
    ]
    return rows


def _metrics(report: OrganismReport) -> list[str]:
    binary = [
        "| split | n | accuracy | precision (n) | recall (n) | F1 | yes-ratio |",
        "|---|---:|---|---|---|---|---|",
    ]
    counting: list[str] = []
    for split, m in report.metrics.splits.items():
        if isinstance(m, BinaryMetrics):
            binary.append(
                f"| {split} | {m.n} | {_ci(m.accuracy)} | {_ci(m.precision)} ({m.precision.n}) | "
                f"{_ci(m.recall)} ({m.recall.n}) | {_ci(m.f1)} | {_ci(m.yes_ratio)} |"
            )
        elif isinstance(m, CountMetrics):
            mae = _ci(m.mae, 2) if m.mae is not None else "-"
            counting = [
                "| split | n | exact accuracy | MAE | majority-answer baseline | unparsed |",
                "|---|---:|---|---|---:|---:|",
                f"| {split} | {m.n} | {_ci(m.accuracy)} | {mae} | {report.chance[split]:.3f} | "
                f"{m.n_unparsed} |",
            ]
    return [*binary, "", *counting]


def _summary(report: OrganismReport) -> list[str]:
    splits = report.metrics.splits
    lines = []
    if "random" in splits and "adversarial" in splits:
        gap = splits["adversarial"].accuracy.estimate - splits["random"].accuracy.estimate
        why = (
            " (co-occurrence-driven hallucination: absent objects of the scene's theme are "
            "affirmed more often)"
            if gap < 0
            else ""
        )
        lines.append(f"- Adversarial minus random accuracy: {gap:+.3f}{why}.")
    lines.append(f"- Wrong answers over all {report.wrong.n:,} questions: {_ci(report.wrong)}.")
    for split in ("counting", "spatial"):
        if split in splits:
            lines.append(_versus_chance(split, splits[split].accuracy, report.chance[split]))
    return lines


def _versus_chance(split: str, accuracy: Estimate, chance: float) -> str:
    if accuracy.ci_low > chance:
        verdict = "above"
    elif accuracy.ci_high < chance:
        verdict = "below"
    else:
        verdict = "not distinguishable from"
    return (
        f"- {split.capitalize()} accuracy {_ci(accuracy)} is {verdict} the majority-answer "
        f"baseline {chance:.3f} (95% interval against baseline)."
    )


def card_markdown(
    vlm: VLM,
    report: OrganismReport,
    training: Mapping[str, Any],
    *,
    asset_bytes: int | None = None,
    image_size: int = 64,
) -> str:
    """The model card of `vlm` as markdown.

    Args:
      vlm: the organism.
      report: its evaluation (e.g. `evaluate_organism(vlm, evaluation_set())`).
      training: the run's training.json (empty if unknown).
      asset_bytes: total size of the shipped files, if known.
      image_size: side of the benchmark images.

    Returns:
      The card: architecture and size, training recipe and time, metrics per split with CIs.
    """
    title = adapter_class(vlm.family).title or vlm.family
    seed = f"seed {report.seed:,}" if report.seed is not None else "a fixed seed"
    method = (
        "greedy decoding, answers parsed with POPE's rule"
        if report.method == "generate"
        else "answer-position logits (yes/no margin, best digit)"
    )
    lines = [
        f"# {title} organism (`organism/{vlm.family}`)",
        "",
        f"A small, trained, deliberately imperfect {title} for interpretability work: load it offline "
        f'with `vrp.load("organism/{vlm.family}")`. It answers with one word ("yes", "no" or a '
        "digit) after the family's own prompt format.",
        "",
        *_architecture(vlm, asset_bytes),
        _image_tokens(vlm, image_size),
        "",
        *_training(training),
        "## Evaluation",
        "",
        f"A fresh synthetic benchmark ({seed}; never used in training), {report.wrong.n:,} "
        f"questions, {method}. 95% intervals: Wilson for proportions (each with its own n), "
        'bootstrap for F1 and MAE. Positive class: "yes".',
        "",
        *_metrics(report),
        "",
        *_summary(report),
        "",
        f"Regenerate this card: `vrp organisms card organism/{vlm.family} --write` (evaluation "
        f"alone: `{_evaluate_command(vlm.family, report)}`).",
        "",
    ]
    return "\n".join(lines)


def asset_bytes(family: str) -> int:
    """Total size of the shipped files of `family`."""
    _check_family(family)
    return sum(p.stat().st_size for p in (ASSET_DIR / family).rglob("*") if p.is_file())


def card_path(family: str) -> Path:
    """Where the package keeps the card of `family`."""
    _check_family(family)
    return CARD_DIR / f"{family}.md"


def shipped_card(family: str) -> str:
    """The card shipped with the package.

    Raises:
      ConfigError: unknown family, or no card was written yet.
    """
    path = card_path(family)
    if not path.is_file():
        raise ConfigError(
            f"No card for {family!r} at {path}. Write it with `vrp organisms card "
            f"organism/{family} --write`."
        )
    return path.read_text(encoding="utf-8")


def write_card(family: str, markdown: str, *, docs_dir: Path | None = None) -> list[Path]:
    """Stores `markdown` as the package card of `family` and, if given, in `docs_dir` too."""
    paths = [card_path(family)]
    if docs_dir is not None:
        paths.append(Path(docs_dir) / f"{family}.md")
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(markdown, encoding="utf-8")
    return paths


def ship(model_dir: Path, family: str) -> Path:
    """Installs a trained model folder (``<run>/model``) in the package as `organism/<family>`.

    The folder is checked first (config, weights, processor and tokenizer files; the right
    family), copied beside the installed organism, loaded and run once, and only then renamed into
    place: a failed ship leaves the installed organism untouched.

    Raises:
      ConfigError: unknown family, or `model_dir` holds no complete, loadable model of that
        family, or the package folder cannot be written.
    """
    _check_family(family)
    return install_model(Path(model_dir), family, ASSET_DIR / family)


def build_card(
    family: str,
    *,
    n_per_split: int = 3000,
    n_counting: int = 1000,
    n_spatial: int = 1000,
    seed: int = EVAL_SEED,
    method: Method = "generate",
) -> str:
    """Evaluates the shipped organism of `family` afresh and renders its card.

    Raises:
      ConfigError: unknown family or evaluation settings.
      ModelNotFoundError: the organism is not shipped.
    """
    from ..models import load

    _check_family(family)
    dataset = evaluation_set(  # first: bad sizes fail before the model loads
        n_per_split=n_per_split, n_counting=n_counting, n_spatial=n_spatial, seed=seed
    )
    vlm = load(f"organism/{family}")
    report = evaluate_organism(vlm, dataset, method=method, seed=seed)
    return card_markdown(
        vlm, report, read_training(ASSET_DIR / family), asset_bytes=asset_bytes(family)
    )
