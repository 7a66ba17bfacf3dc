"""The study's stages for one model: each streams its batches to the run directory and returns
its summary, so the CLI only orders them.

A batch's work depends only on the config and the batch index (questions, sampling seed), so a
resumed run recomputes exactly the batches that were missing and ends with the same records as an
uninterrupted one.
"""

import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pyarrow as pa

from ..core import UndefinedSignalWarning
from ..data import Sample, evaluate as evaluate_answers, parse_count_answer
from ..models import VLM
from ..pipeline import SampleSignals, SignalConfig, batch_signals
from ..probes import (
    LogisticProbe,
    MLPProbe,
    SparseLogisticProbe,
    SweepConfig,
    evaluate_probe,
    probe_sweep,
)
from ..stats import Estimate, auroc, fuse_signals, point_biserial
from ..store import ActivationStore
from ._config import StudyConfig
from ._rundir import RunDir, merged
from ._samples import Samples

Advance = Callable[[int], None]
"""Reports progress: called with the number of questions just finished."""


Rows = list[dict[str, Any]]
Compute = Callable[[Sequence[Any], int], tuple[Rows, np.ndarray | None]]
"""Computes one batch (its items and index): its records and, optionally, hidden states."""


@runtime_checkable
class BatchExecutor(Protocol):
    """Computes a stage's missing batches somewhere else (e.g. on Ray actors)."""

    def compute(
        self, ctx: "StageContext", stage: str, indices: Sequence[int]
    ) -> Iterator[tuple[int, Rows, np.ndarray | None]]:
        """Yields (index, rows, hidden) for every batch index, in any order, once each."""
        ...


@dataclass(frozen=True, kw_only=True)
class StageContext:
    """What a stage needs for one model.

    Attributes:
      executor: computes the batches elsewhere (None: here, one after the other).
    """

    config: StudyConfig
    run: RunDir
    model: str
    vlm: VLM
    samples: Samples  # the run's questions, in a fixed order, images read per batch
    advance: Advance
    executor: BatchExecutor | None = None


@dataclass(frozen=True, kw_only=True)
class Batched:
    """A batched stage once prepared for one model: its items, how one batch is computed (a
    function of the config and the batch index only), and how its rows are summarised."""

    items: Sequence[Any]
    compute: Compute
    summarise: Callable[[pa.Table], dict[str, Any]]


def load_model(config: StudyConfig, model: str) -> VLM:
    """`model` as the config places it: loaded here, its traces sent to `config.remote` if set."""
    import torch

    from ..models import load

    torch.manual_seed(config.seed)
    vlm = load(model, device=config.device, dtype=config.dtype)
    if config.remote is None:
        return vlm
    _check_same_model(vlm, config.remote)
    return vlm.with_backend(config.remote)


def _check_same_model(vlm: VLM, url: str) -> None:
    """Raises `ConfigError` unless the server hosts `vlm`'s model at the same size and dtype:
    the study reads the unembedding and the adapter locally and the activations remotely, so
    both must be one model."""
    from ..core import ConfigError
    from ..models._remote import check_server

    hosted = check_server(url, [vlm.name])[0]
    mine = {"parameters": sum(p.numel() for p in vlm.hf.parameters()),
            "dtype": str(next(vlm.hf.parameters()).dtype).removeprefix("torch.")}  # fmt: skip
    differ = {k: (v, hosted.get(k)) for k, v in mine.items() if hosted.get(k) != v}
    if differ:
        found = ", ".join(f"{k} {here} here, {there} there" for k, (here, there) in differ.items())
        raise ConfigError(
            f"remote: {url} hosts {vlm.name!r} differently from the model loaded here ({found}). "
            "Load the same weights in the same dtype on both sides (--dtype here, --dtype of "
            "vrp serve)."
        )


def run_batched(ctx: StageContext, stage: str, batched: Batched) -> dict[str, Any]:
    """Streams the stage's missing batches to the run directory, then summarises its rows."""
    return batched.summarise(_stream(ctx, stage, batched.items, batched.compute))


def estimate_json(estimate: Estimate) -> dict[str, Any]:
    """An `Estimate` as JSON values (NaN becomes null when written)."""
    return asdict(estimate)


def _spans(n: int, size: int) -> list[tuple[int, int]]:
    """(start, stop) of each batch: a batch's items are read only if it is computed."""
    return [(i, min(i + size, n)) for i in range(0, n, size)]


def _stream(ctx: StageContext, stage: str, items: Sequence[Any], compute: Compute) -> pa.Table:
    """Computes every batch of `items` not yet on disk (here, or on `ctx.executor`), then
    returns all of the stage's rows."""
    done = ctx.run.done_batches(stage, ctx.model)
    spans = _spans(len(items), ctx.config.batch_size)
    ctx.advance(sum(stop - start for i, (start, stop) in enumerate(spans) if i in done))
    todo = [i for i in range(len(spans)) if i not in done]
    if ctx.executor is not None:
        for index, rows, hidden in ctx.executor.compute(ctx, stage, todo):
            ctx.run.write_batch(stage, ctx.model, index, rows, hidden)
            ctx.advance(spans[index][1] - spans[index][0])
    for index in todo if ctx.executor is None else ():
        start, stop = spans[index]  # only now are the batch's images read (lazy slices)
        rows, hidden = compute(items[start:stop], index)
        ctx.run.write_batch(stage, ctx.model, index, rows, hidden)
        ctx.advance(stop - start)
    return merged(ctx.run.batch_tables(stage, ctx.model))


def compute_batch(batched: Batched, batch_size: int, index: int) -> tuple[Rows, np.ndarray | None]:
    """Batch `index` of a prepared stage (what an executor's worker runs)."""
    start, stop = _spans(len(batched.items), batch_size)[index]
    return batched.compute(batched.items[start:stop], index)


# ----- accuracy ------------------------------------------------------------------------------------
def _answers(vlm: VLM, batch: Sequence[Sample]) -> list[str]:
    """The model's raw answers: yes/no from the answer rule, counts from greedy generation."""
    answers = [""] * len(batch)
    yes_no = [i for i, s in enumerate(batch) if s.split != "counting"]
    counting = [i for i, s in enumerate(batch) if s.split == "counting"]
    for rows, read in ((yes_no, _yes_no), (counting, _counts)):
        if rows:
            picked = [batch[i] for i in rows]
            inputs = vlm.encode([s.image for s in picked], [s.question for s in picked])
            for i, answer in zip(rows, read(vlm, inputs), strict=True):
                answers[i] = answer
    return answers


def _yes_no(vlm: VLM, inputs: Any) -> list[str]:
    return ["yes" if y else "no" for y in vlm.says_yes(vlm.answer_logits(inputs)).tolist()]


def _counts(vlm: VLM, inputs: Any) -> list[str]:
    return vlm.generate(inputs, max_new_tokens=4)


def run_accuracy(ctx: StageContext) -> dict[str, Any]:
    """Answers every question; POPE metrics (accuracy, precision, recall, F1, yes-ratio) per
    split with Wilson / bootstrap intervals, and exact-match accuracy and MAE for counting."""
    return run_batched(ctx, "accuracy", prepare_accuracy(ctx))


def prepare_accuracy(ctx: StageContext) -> Batched:
    """The accuracy stage's batches and summary (see `run_accuracy`)."""

    def compute(batch: Sequence[Sample], index: int) -> tuple[list[dict[str, Any]], None]:
        answers = _answers(ctx.vlm, batch)
        items = ctx.samples.batch_items(index, ctx.config.batch_size)
        rows = [{"model": ctx.model, "item": item, **_accuracy_row(s, a)}
                for item, s, a in zip(items, batch, answers, strict=True)]  # fmt: skip
        return rows, None

    def summarise(table: pa.Table) -> dict[str, Any]:
        by_item = dict(zip(table["item"].to_pylist(), table["answer"].to_pylist(), strict=True))
        questions = ctx.samples.questions
        report = evaluate_answers(questions, [by_item[i] for i in ctx.samples.indices])
        return {
            "n": len(questions),
            "splits": {split: _metrics_json(m) for split, m in report.splits.items()},
        }

    return Batched(items=ctx.samples, compute=compute, summarise=summarise)


def _accuracy_row(sample: Sample, answer: str) -> dict[str, Any]:
    if sample.split == "counting":
        parsed = parse_count_answer(answer)
        correct = parsed is not None and parsed == int(sample.answer)
    else:
        correct = answer == sample.answer
    return {
        "question_id": sample.question_id,
        "split": sample.split,
        "category": sample.category,
        "label": str(sample.answer),
        "answer": answer,
        "correct": bool(correct),
    }


def _metrics_json(metrics: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in asdict(metrics).items():
        out[key] = value
    return out


# ----- signals -------------------------------------------------------------------------------------
_NOT_PREDICTORS = {
    "item",
    "question_id",
    "split",
    "category",
    "label",
    "answer",
    "correct",
    "all_agree",
}
PREDICTORS = tuple(
    f.name for f in fields(SampleSignals)
    if f.name not in _NOT_PREDICTORS and f.name not in SampleSignals.LABEL_DEPENDENT
)  # fmt: skip
"""Signals that may predict correctness (the label-dependent ones describe it by construction)."""


def yes_no_samples(samples: Samples) -> Samples:
    return samples.where(lambda q: q.answer in ("yes", "no"))


def run_signals(ctx: StageContext) -> dict[str, Any]:
    """Every per-question signal on the yes/no questions (with the per-layer curves of
    `LayerSignals` as list columns ``<name>_by_layer``, one value per language layer), the
    answer-position hidden states of every layer into the activation store, and each
    predictor's association with correctness."""
    return run_batched(ctx, "signals", prepare_signals(ctx))


def prepare_signals(ctx: StageContext) -> Batched:
    """The signals stage's batches and summary (see `run_signals`)."""
    config = SignalConfig(batch_size=ctx.config.batch_size, samples=ctx.config.samples,
                          seed=ctx.config.seed)  # fmt: skip
    samples = yes_no_samples(ctx.samples)

    def compute(batch: Sequence[Sample], index: int) -> tuple[list[dict[str, Any]], np.ndarray]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UndefinedSignalWarning)
            result = batch_signals(ctx.vlm, batch, config, index=index)
        for other in (w for w in caught if w.category is not UndefinedSignalWarning):
            warnings.warn_explicit(other.message, other.category, other.filename, other.lineno)
        notes = sorted({str(w.message) for w in caught if w.category is UndefinedSignalWarning})
        items = samples.batch_items(index, ctx.config.batch_size)
        rows = [{"model": ctx.model, "item": item, **r, "undefined": " | ".join(notes)}
                for item, r in zip(items, result.per_layer_records(), strict=True)]  # fmt: skip
        return rows, result.hidden.astype(np.float32)

    def summarise(table: pa.Table) -> dict[str, Any]:
        _build_store(ctx, list(samples.indices))
        return signal_summary(table, seed=ctx.config.seed)

    return Batched(items=samples, compute=compute, summarise=summarise)


def _build_store(ctx: StageContext, ids: list[int]) -> None:
    """Writes the stage's hidden states into a fresh activation store (atomically renamed)."""
    path = ctx.run.store_path(ctx.model)
    if path.is_dir():
        return
    blocks = list(ctx.run.hidden_blocks("signals", ctx.model))
    tmp = path.with_name(path.name + ".tmp")
    if tmp.exists():
        import shutil

        shutil.rmtree(tmp)
    n_layers, d = blocks[0].shape[1:]
    store = ActivationStore.create(tmp, layers=range(n_layers), d=int(d), dtype="float32")
    start = 0
    for block in blocks:
        store.append(block, sample_ids=ids[start : start + len(block)])
        start += len(block)
    tmp.rename(path)


def signal_summary(table: pa.Table, *, seed: int = 0) -> dict[str, Any]:
    """Each predictor's point-biserial r and AUROC for correctness (CI, n), or why it is
    undefined; and the held-out fusion of the defined ones."""
    correct = np.asarray(table["correct"].to_pylist(), dtype=int)
    out: dict[str, Any] = {"n": len(correct), "accuracy": float(correct.mean()), "signals": {}}
    usable: dict[str, np.ndarray] = {}
    for name in PREDICTORS:
        values = np.asarray(table[name].to_pylist(), dtype=float)
        reason = _undefined(values, correct)
        if reason:
            out["signals"][name] = {"undefined": reason, "n": len(values)}
            continue
        usable[name] = values
        out["signals"][name] = {
            "point_biserial": estimate_json(point_biserial(values, correct)),
            "auroc": estimate_json(auroc(values, correct)),
        }
    out["fusion"] = _fusion(usable, correct, seed)
    return out


def _undefined(values: np.ndarray, correct: np.ndarray) -> str:
    if not np.isfinite(values).all():
        return f"{int((~np.isfinite(values)).sum())} of {len(values)} values are NaN (undefined)"
    if np.ptp(values) == 0:
        return f"constant ({values[0]:g}) on every question"
    if correct.min() == correct.max():
        return "every answer is " + ("correct" if correct[0] else "wrong")
    return ""


def _fusion(usable: dict[str, np.ndarray], correct: np.ndarray, seed: int) -> dict[str, Any]:
    minority = int(min(correct.sum(), len(correct) - correct.sum()))
    if len(usable) < 2 or minority < 5:
        return {"undefined": f"needs >= 2 defined signals and >= 5 of each class ({minority})"}
    table = np.column_stack(list(usable.values()))
    fused = fuse_signals(table, correct, names=list(usable), n_splits=5, seed=seed)
    return {"signals": list(usable), "auroc": estimate_json(fused.auroc)}


# ----- probes --------------------------------------------------------------------------------------
L1_PROBE = SparseLogisticProbe(Cs=[1e-3, 1e-2, 1e-1, 1.0, 10.0], cv=3)
"""The study's L1 probe: C from 1e-3 to 10 on standardised features by 3-fold inner CV. The
library default's grid reaches C = 1e4, where liblinear's L1 solver barely converges on the
organisms' hidden states (432 s for 400 questions at one layer, against about 2 s here), and a
C that large leaves the probe barely sparse anyway."""


def run_probes(ctx: StageContext) -> dict[str, Any]:
    """Per-layer held-out logistic probes with a shuffled-label control, and at the best layer an
    L1 probe, an MLP probe and a probe on the last layers concatenated."""
    store = ActivationStore.open(ctx.run.store_path(ctx.model))
    labels = _store_labels(ctx, store)
    minority = int(min(labels.sum(), len(labels) - labels.sum()))
    if minority < ctx.config.probe_folds:
        ctx.advance(len(labels))
        return {
            "n": int(len(labels)),
            "undefined": f"the rarer correctness class has {minority} questions, fewer than "
            f"probe_folds={ctx.config.probe_folds}: held-out probes cannot be scored. Use more "
            "questions (--n) or fewer folds.",
        }
    cfg = SweepConfig(n_splits=ctx.config.probe_folds, seed=ctx.config.seed, refit=False)
    sweep = probe_sweep(store, labels, cfg)
    rows = [{"model": ctx.model, "layer": layer, "probe": "logistic", "condition": kind,
             **_flat(est)}
            for layer, auc, ctrl in zip(sweep.layers, sweep.auroc, sweep.control, strict=True)
            for kind, est in (("real", auc), ("shuffled", ctrl))]  # fmt: skip
    ctx.run.write_batch("probes", ctx.model, 0, rows)
    best = sweep.best_layer
    x_best = store.layer(best)
    extra = {
        "l1": evaluate_probe(L1_PROBE, x_best, labels, n_splits=cfg.n_splits, seed=cfg.seed),
        "mlp": evaluate_probe(
            MLPProbe(seed=cfg.seed), x_best, labels, n_splits=cfg.n_splits, seed=cfg.seed
        ),
    }
    last = list(store.layers[-min(5, len(store.layers)) :])
    stacked = np.concatenate([store.layer(layer) for layer in last], axis=1)
    concat = evaluate_probe(LogisticProbe(), stacked, labels, n_splits=cfg.n_splits, seed=cfg.seed)
    ctx.advance(len(labels))
    return {
        "n": int(len(labels)),
        "best_layer": best,
        "per_layer": {
            str(layer): estimate_json(a) for layer, a in zip(sweep.layers, sweep.auroc, strict=True)
        },
        "control": {
            str(layer): estimate_json(c)
            for layer, c in zip(sweep.layers, sweep.control, strict=True)
        },
        "at_best_layer": {k: _probe_json(v) for k, v in extra.items()},
        "last_layers_concat": {"layers": last, **_probe_json(concat)},
    }


def _store_labels(ctx: StageContext, store: ActivationStore) -> np.ndarray:
    table = merged(ctx.run.batch_tables("signals", ctx.model))
    correct = dict(zip(table["item"].to_pylist(), table["correct"].to_pylist(), strict=True))
    return np.array([int(correct[int(i)]) for i in store.sample_ids])


def _flat(estimate: Estimate) -> dict[str, Any]:
    return {"auroc": estimate.estimate, "ci_low": estimate.ci_low, "ci_high": estimate.ci_high,
            "n": estimate.n}  # fmt: skip


def _probe_json(score: Any) -> dict[str, Any]:
    return {k: estimate_json(v) if isinstance(v, Estimate) else v
            for k, v in asdict(score).items() if not isinstance(v, np.ndarray)}  # fmt: skip


def finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None
