"""Training an organism: captioning + question answering, teacher-forced, resumable, deterministic.

Each step runs two sub-batches through the model (captions, then questions), sums their mean
next-token losses over the target tokens, clips the gradient norm and takes one AdamW step. The
data of step ``s`` depend only on (recipe, seed, s) (see `TrainingStream`), the weights only on the
seed, so a run is reproducible bit for bit for a given seed *and thread count*: a different number of
threads changes floating-point summation order, and the trajectory drifts (accuracy stays within
about a point or two).
"""

import dataclasses
import functools
import math
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import transformers
from torch import Tensor
from tqdm.auto import tqdm

from ..core import ConfigError
from ..data import Dataset
from ..models import VLM, build_vlm
from ._checkpoint import check_fresh, load_state, save_model, save_state
from ._data import Example, StepBatch, TrainingStream
from ._evaluate import evaluate_organism, evaluation_set
from ._positions import set_grid_positions
from ._recipe import ORGANISM_WORDS, Recipe, recipe as shipped_recipe
from ._targets import encode_with_targets, target_loss

VALIDATION_SEED = 999_999
"""Benchmark seed of the accuracy tracked during training (neither training data nor card data)."""


@dataclass(frozen=True, kw_only=True)
class TrainingResult:
    """What a finished (or resumed and finished) run produced."""

    family: str
    seed: int
    steps: int
    threads: int
    seconds: float  # wall time of all sessions of the run
    caption_loss: tuple[float, ...]  # per step
    qa_loss: tuple[float, ...]  # per step
    validation: tuple[
        dict[str, float | int], ...
    ]  # {"step": s, split: accuracy} every `validate_every` steps
    model_dir: Path  # loadable with vrp.load

    @property
    def final_qa_loss(self) -> float | None:
        """Mean answer loss of the last 50 steps, as training.json and the card record it."""
        return _tail_mean(list(self.qa_loss))


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    decay: list[torch.nn.Parameter] = []
    keep: list[torch.nn.Parameter] = []
    for name, p in model.named_parameters():
        (decay if p.ndim >= 2 and "embed" not in name else keep).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": keep, "weight_decay": 0.0}]


def _schedule(recipe: Recipe) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < recipe.warmup:
            return (step + 1) / recipe.warmup
        progress = (step - recipe.warmup) / max(1, recipe.steps - recipe.warmup)
        cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
        return recipe.min_lr_ratio + (1 - recipe.min_lr_ratio) * cosine

    return factor


def _sub_batch_loss(vlm: VLM, examples: tuple[Example, ...]) -> Tensor:
    batch = encode_with_targets(
        vlm,
        [e.image for e in examples],
        [e.question for e in examples],
        [e.target for e in examples],
    )
    logits = vlm.hf(**batch.inputs.data).logits
    return target_loss(logits, batch.labels)


def train_step(
    vlm: VLM, optimizer: torch.optim.Optimizer, batch: StepBatch, clip: float
) -> tuple[float, float]:
    """One optimiser step on a caption and a question sub-batch; returns their losses."""
    qa = _sub_batch_loss(vlm, batch.questions)
    cap = _sub_batch_loss(vlm, batch.captions) if batch.captions else torch.zeros(())
    (cap + qa).backward()
    torch.nn.utils.clip_grad_norm_(vlm.hf.parameters(), clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return cap.detach().item(), qa.detach().item()


class _Run:
    """The mutable state of one training run (model, optimiser, history)."""

    def __init__(self, recipe: Recipe, seed: int, out: Path, threads: int) -> None:
        self.recipe, self.seed, self.out, self.threads = recipe, seed, out, threads
        self.vlm = build_vlm(
            recipe.family,
            recipe.spec,
            words=ORGANISM_WORDS,
            seed=seed,
            name=f"organism/{recipe.family}",
        )
        if recipe.vision_grid_positions is not None:
            side = recipe.spec.image_size // recipe.spec.patch_size
            set_grid_positions(self.vlm, side=side, scale=recipe.vision_grid_positions)
        self.optimizer = torch.optim.AdamW(
            _param_groups(self.vlm.hf, recipe.weight_decay), lr=recipe.lr, betas=recipe.betas
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, _schedule(recipe))
        self.step = 0
        self.seconds = 0.0
        self.caption_loss: list[float] = []
        self.qa_loss: list[float] = []
        self.validation: list[dict[str, float | int]] = []

    def identity(self) -> dict[str, Any]:
        return {"family": self.recipe.family, "seed": self.seed, "steps": self.recipe.steps}

    def state(self) -> dict[str, Any]:
        return {
            "identity": self.identity(),
            "model": self.vlm.hf.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "step": self.step,
            "seconds": self.seconds,
            "torch_rng": torch.get_rng_state(),
            "caption_loss": self.caption_loss,
            "qa_loss": self.qa_loss,
            "validation": self.validation,
        }

    def restore(self, state: dict[str, Any]) -> None:
        if state["identity"] != self.identity():
            raise ConfigError(
                f"The checkpoint in {self.out} belongs to run {state['identity']}, not "
                f"{self.identity()}. Resume with the same family, seed and steps, or choose "
                "another --out folder."
            )
        self.vlm.hf.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step, self.seconds = int(state["step"]), float(state["seconds"])
        torch.set_rng_state(state["torch_rng"])
        self.caption_loss = list(state["caption_loss"])
        self.qa_loss = list(state["qa_loss"])
        self.validation = list(state["validation"])

    def training_metadata(self) -> dict[str, Any]:
        return {
            "family": self.recipe.family,
            "seed": self.seed,
            "steps": self.step,
            "threads": self.threads,
            "seconds": round(self.seconds, 1),
            "command": (
                f"vrp organisms train --family {self.recipe.family} --seed {self.seed} "
                f"--steps {self.recipe.steps} --threads {self.threads}"
            ),
            "recipe": dataclasses.asdict(self.recipe),
            "final_caption_loss": _tail_mean(self.caption_loss),
            "final_qa_loss": _tail_mean(self.qa_loss),
            "validation": self.validation,
            "versions": {
                "torch": torch.__version__,
                "transformers": transformers.__version__,
                "python": platform.python_version(),
            },
            "cpu": platform.processor() or platform.machine(),
            "cpu_count": len(os.sched_getaffinity(0)),  # the CPUs this process may use
        }

    def checkpoint(self) -> None:
        save_state(self.out, self.state())
        save_model(self.out, self.vlm, self.training_metadata())


def _tail_mean(values: list[float], n: int = 50) -> float | None:
    tail = values[-n:]
    return round(sum(tail) / len(tail), 4) if tail else None


@functools.cache
def _validation_set(n: int) -> Dataset:
    return evaluation_set(n_per_split=n, n_counting=n // 2, n_spatial=n, seed=VALIDATION_SEED)


def _validate(vlm: VLM, n: int) -> dict[str, float]:
    data = _validation_set(n)
    vlm.hf.eval()
    report = evaluate_organism(vlm, data, method="logits")
    vlm.hf.train()
    return {split: round(m.accuracy.estimate, 4) for split, m in report.metrics.splits.items()}


def train(  # noqa: PLR0913  (keyword-only; mirrors the options of `vrp organisms train`)
    family: str,
    *,
    seed: int = 0,
    out: str | Path,
    steps: int | None = None,
    resume: bool = False,
    threads: int = 2,
    progress: bool = True,
    validate_every: int = 0,
    recipe: Recipe | None = None,
) -> TrainingResult:
    """Trains (or resumes training) an organism of `family` and writes it to ``out/model``.

    Args:
      family: "llava", "paligemma" or "qwen2_vl".
      seed: seeds the initial weights and the training data.
      out: the run folder (``checkpoint.pt`` to resume, ``model/`` to load).
      steps: run this many steps instead of the recipe's (the schedule is stretched to fit).
      resume: continue the checkpoint in `out` instead of starting afresh.
      threads: torch CPU threads; results are bit-exact only for the same count.
      progress: show a progress bar.
      validate_every: every so many steps, record accuracy on a small validation benchmark
        (0 = never; costs about a second each time).
      recipe: a custom recipe; the shipped recipe of `family` if None.

    Returns:
      The run's losses, validation accuracies, wall time and model folder.

    Raises:
      ConfigError: no recipe for `family`, `out` holds a run and `resume` is False, `resume`
        is True and `out` holds no checkpoint of this (family, seed, steps), or the recipe sets
        `vision_grid_positions` for a family without a learned vision position table (Qwen2-VL),
        or `seed` < 0, `threads` < 1, `validate_every` < 0 or `steps` < 1.
    """
    _check_counts(seed=seed, threads=threads, validate_every=validate_every, steps=steps)
    recipe = recipe if recipe is not None else shipped_recipe(family)
    if steps is not None:
        recipe = recipe.with_steps(steps)
    out = Path(out)
    if not resume:
        check_fresh(out)
    torch.set_num_threads(threads)
    with torch.random.fork_rng(devices=[]):  # the caller's random state is left as it was
        torch.random.default_generator.manual_seed(seed)
        run = _Run(recipe, seed, out, threads)
        if resume:
            run.restore(load_state(out))
        _loop(run, progress, validate_every)
        run.checkpoint()
    return TrainingResult(
        family=recipe.family,
        seed=seed,
        steps=run.step,
        threads=threads,
        seconds=run.seconds,
        caption_loss=tuple(run.caption_loss),
        qa_loss=tuple(run.qa_loss),
        validation=tuple(run.validation),
        model_dir=out / "model",
    )


def _loop(run: _Run, progress: bool, validate_every: int) -> None:
    recipe, stream = run.recipe, TrainingStream(run.recipe, run.seed)
    run.vlm.hf.train()
    bar = tqdm(
        total=recipe.steps,
        initial=run.step,
        disable=not progress,
        desc=f"{recipe.family} seed {run.seed}",
        unit="step",
    )
    started = time.perf_counter()
    while run.step < recipe.steps:
        stage = recipe.stage(run.step)
        batch = stream.step_batch(run.step)
        cap, qa = train_step(run.vlm, run.optimizer, batch, recipe.clip)
        run.scheduler.step()
        run.step += 1
        run.caption_loss.append(round(cap, 5))
        run.qa_loss.append(round(qa, 5))
        bar.update(1)
        bar.set_postfix(stage=stage.index, caption=f"{cap:.3f}", qa=f"{qa:.3f}", refresh=False)
        if validate_every and run.step % validate_every == 0:
            run.validation.append({"step": run.step, **_validate(run.vlm, 200)})
            bar.write(f"step {run.step}: {run.validation[-1]}")
        if run.step % recipe.checkpoint_every == 0 and run.step < recipe.steps:
            run.seconds += time.perf_counter() - started
            started = time.perf_counter()
            run.checkpoint()
    run.seconds += time.perf_counter() - started
    bar.close()
    run.vlm.hf.eval()


def _check_counts(*, seed: int, threads: int, validate_every: int, steps: int | None) -> None:
    rules = {
        "seed": (seed, 0, "the seed of weights and data"),
        "threads": (threads, 1, "torch CPU threads"),
        "validate_every": (validate_every, 0, "steps between validations, 0 for never"),
        "steps": (1 if steps is None else steps, 1, "training steps"),
    }
    for name, (value, low, meaning) in rules.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(
                f"{name} must be a whole number >= {low} ({meaning}), got {value!r}. Pass e.g. "
                f"{name}={max(low, 1)}."
            )
