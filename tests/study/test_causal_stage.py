"""The causal stage on the LLaVA organism (16 yes/no questions, 2 batches): a row per question per
condition, neurons ranked on one half and ablated on the other, numbers equal to the circuits
library calls, and a resume that recomputes only what is missing."""

import dataclasses
import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from circuits import (
    MaskingConfig,
    baseline_arm,
    bypass_arms,
    condition_outcomes,
    dims_arms,
    masking_arms,
    neuron_arms,
    rank_neurons,
    summarise_dimension_point,
    summarise_study,
)
from vrp import ConfigError
from vrp.study import ALL_STAGES, RunDir, Stage, StudyConfig, check_config, run_study
from vrp.study._causal import CAUSAL, halves
from vrp.study._samples import Samples, study_samples

MODEL = "organism/llava"
SETTINGS = {"models": (MODEL,), "n": 4, "batch_size": 8, "samples": 0, "seed": 3,
            "stages": (Stage.CAUSAL,)}  # fmt: skip
SLUG = "organism--llava"


def _config(out: Path) -> StudyConfig:
    return StudyConfig(out=out, **SETTINGS)


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("causal") / "run"
    run_study(_config(out))
    return out


@pytest.fixture(scope="module")
def vlm(load_model):
    return load_model(MODEL)


def _rows(out: Path) -> list[dict]:
    return pq.read_table(out / "records" / "causal.parquet").to_pylist()


def _result(out: Path) -> dict:
    return json.loads((out / "results" / SLUG / "causal.json").read_text())


def _plan(out: Path) -> dict:
    return json.loads((out / "parts" / "causal" / SLUG / "plan.json").read_text())


def test_every_condition_has_a_row_per_question(finished: Path) -> None:
    rows, plan = _rows(finished), _plan(finished)
    items = sorted({r["item"] for r in rows})
    assert len(items) == 16
    assert sorted(plan["rank_items"] + plan["eval_items"]) == items
    counts: dict[tuple, set] = {}
    for r in rows:
        counts.setdefault((r["family"], r["condition"], r["level"], r["draw"]), set()).add(
            r["item"]
        )
    shared = 1 + 2 * (2 + CAUSAL.n_masks) + len(CAUSAL.fractions) * CAUSAL.n_dim_draws + 4
    neurons = 2 + CAUSAL.n_controls  # the plain model in the same batches, top-k, controls
    assert len(counts) == shared + neurons
    for (family, *_), got in counts.items():
        assert got == (set(plan["eval_items"]) if family == "neurons" else set(items))
    assert {k[2] for k in counts if k[0] == "bypass"} == {"L0", "L1", "L2", "L3"}
    assert len(rows) == 16 * shared + len(plan["eval_items"]) * neurons


def test_halves_are_seeded_and_never_share_an_image() -> None:
    samples = study_samples(_config(Path("unused"))).where(lambda q: q.answer in ("yes", "no"))
    rank, evaluate = halves(samples, seed=3)
    assert (rank, evaluate) == halves(samples, seed=3) and rank != halves(samples, seed=4)[0]
    image_of = dict(zip(samples.indices, (q.image_name for q in samples.questions), strict=True))
    assert not {image_of[i] for i in rank} & {image_of[i] for i in evaluate}
    assert not set(rank) & set(evaluate) and len(rank) + len(evaluate) == len(samples)
    assert abs(len(rank) - len(evaluate)) <= 2 * max(
        sum(1 for j in samples.indices if image_of[j] == image_of[i]) for i in rank
    )  # about half: whole images move together


def test_the_stages_numbers_equal_the_library_calls(finished: Path, vlm) -> None:
    rows, plan = _rows(finished), _plan(finished)
    samples = study_samples(_config(finished)).where(lambda q: q.answer in ("yes", "no"))
    # the ranking: the circuits call on the ranking half
    ranking = rank_neurons(vlm, Samples(samples.dataset, plan["rank_items"]), layer=3, batch_size=8)
    assert list(ranking.ranking.top(CAUSAL.k)) == plan["neurons"]["targets"]
    # the second batch's outcomes: the circuits calls with the study's settings
    batch, items = samples[8:16], samples.indices[8:16]
    arms = [baseline_arm()]
    for level in ("token", "pixel"):
        arms += masking_arms(MaskingConfig(n_random=CAUSAL.n_masks, level=level, seed=3))
    arms += dims_arms(plan["dims"]["layer"], 128, CAUSAL.fractions, n_draws=3, seed=3)
    arms += bypass_arms(range(4))
    direct = condition_outcomes(vlm, batch, arms)
    stored = {
        (r["family"], r["condition"], r["level"], r["draw"], r["item"]): r["correct"] for r in rows
    }
    for arm, correct in zip(direct.arms, direct.correct, strict=True):
        got = [stored[(arm.family, arm.condition, arm.level, arm.draw, i)] for i in items]
        assert got == correct.tolist(), arm.key
    chosen = [i for i, item in enumerate(items) if item in plan["eval_items"]]
    neurons = neuron_arms(3, plan["neurons"]["targets"], plan["neurons"]["controls"])
    ablated = condition_outcomes(vlm, [batch[i] for i in chosen], neurons)
    got = [stored[("neurons", "top", "L3", 0, items[i])] for i in chosen]
    assert got == ablated.correct[0].tolist()


def test_the_stages_summaries_equal_the_circuits_summaries(finished: Path) -> None:
    """The summaries: the circuits summaries of the stored outcomes."""
    rows, plan, result = _rows(finished), _plan(finished), _result(finished)
    samples = study_samples(_config(finished)).where(lambda q: q.answer in ("yes", "no"))
    stored = {
        (r["family"], r["condition"], r["level"], r["draw"], r["item"]): r["correct"] for r in rows
    }

    def outcome(family: str, condition: str, level: str, draw: int, among: list[int]) -> np.ndarray:
        return np.array([stored[(family, condition, level, draw, i)] for i in among])

    every = sorted(samples.indices)
    base = outcome("baseline", "none", "", 0, every)
    randoms = [outcome("masking", "random", "pixel", d, every) for d in range(CAUSAL.n_masks)]
    study = summarise_study(base, outcome("masking", "top", "pixel", 0, every), randoms)
    pixel = result["masking"]["pixel"]["top"]
    assert pixel["change"]["estimate"] == study.target.estimate and pixel["n"] == 16
    assert pixel["p_vs_controls"]["estimate"] == study.p_vs_controls
    assert pixel["controls"]["mean"] == pytest.approx(study.control_mean)
    evaluate = sorted(plan["eval_items"])
    controls = [outcome("neurons", "random", "L3", d, evaluate) for d in range(CAUSAL.n_controls)]
    plain = outcome("neurons", "none", "L3", 0, evaluate)  # the baseline of the same batches
    assert plain.tolist() == outcome("baseline", "none", "", 0, evaluate).tolist()  # tiny: equal
    study = summarise_study(plain, outcome("neurons", "top", "L3", 0, evaluate), controls)
    assert result["neurons"]["change"] == dataclasses.asdict(study.target)
    assert result["neurons"]["n"] == len(evaluate) and result["neurons"]["n_rank"] == len(
        plan["rank_items"]
    )
    draws = [outcome("dims", "random", "0.5", d, every) for d in range(3)]
    point = summarise_dimension_point(base, draws, fraction=0.5, n_dims=64, seed=3)
    half = next(p for p in result["dims"]["points"] if p["fraction"] == 0.5)
    assert half["change"]["estimate"] == point.change.estimate and half["n_dims"] == 64
    assert half["accuracy"] == {**dataclasses.asdict(point.accuracy), "p_value": None}
    assert half["accuracy"]["n"] == len(every)  # questions, not draws x questions
    assert result["dims"]["points"][0]["accuracy"]["estimate"] == base.mean()
    # planted: every dimension after the last layer zeroed leaves logits 0, so every answer is
    # "no" and accuracy is the share of "no" questions
    share_no = np.mean([q.answer == "no" for q in samples.questions])
    assert result["dims"]["points"][-1]["accuracy"]["estimate"] == share_no


def test_resume_recomputes_the_missing_batch(finished: Path, tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "resumed"
    shutil.copytree(finished, out)
    (out / "parts" / "causal" / SLUG / "part-00001.parquet").unlink()
    (out / "results" / SLUG / "causal.json").unlink()
    for path in (out / "records").iterdir():
        path.unlink()

    def never(*args, **kwargs):
        raise AssertionError("a resumed run must read the ranking from plan.json")

    monkeypatch.setattr("vrp.study._causal.rank_neurons", never)
    assert run_study(_config(out)).resumed
    for name in ("causal.csv", "causal.parquet"):
        assert (out / "records" / name).read_bytes() == (finished / "records" / name).read_bytes()
    mine, theirs = _result(out), _result(finished)
    for key in ("masking", "neurons", "dims", "bypass", "baseline"):
        assert mine[key] == theirs[key], key


def test_dims_layer_is_the_probes_best_layer_when_probes_ran(tmp_path: Path, vlm) -> None:
    from vrp.study._causal import _dims_layer
    from vrp.study._stages import StageContext

    run = RunDir(tmp_path)
    ctx = StageContext(config=_config(tmp_path), run=run, model=MODEL, vlm=vlm,
                       samples=study_samples(_config(tmp_path)), advance=lambda n: None)  # fmt: skip
    assert _dims_layer(ctx, 3) == {
        "layer": 3,
        "chosen_by": "last layer (no probes stage in this run)",
    }
    run.write_result("probes", MODEL, {"best_layer": 1})
    assert _dims_layer(ctx, 3) == {"layer": 1, "chosen_by": "best probe layer (probes stage)"}


def test_default_config_runs_every_stage_in_order() -> None:
    assert ALL_STAGES[-2:] == (Stage.CAUSAL, Stage.CIRCUITS)
    assert StudyConfig().stages == ALL_STAGES
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(check_config(StudyConfig(models=("tiny/llava",), n=2))) == 2 * 5


def test_a_plan_made_with_other_settings_is_refused(finished: Path, tmp_path: Path) -> None:
    out = tmp_path / "other"
    shutil.copytree(finished, out)
    (out / "results" / SLUG / "causal.json").unlink()
    path = out / "parts" / "causal" / SLUG / "plan.json"
    plan = json.loads(path.read_text())
    plan["settings"]["n_controls"] = 3
    path.write_text(json.dumps(plan))
    with pytest.raises(ConfigError, match=r"planned with causal plan .* Rerun into a new"):
        run_study(_config(out))
    del plan["version"]  # a plan of vrp before the neurons' own baseline arm
    plan["settings"]["n_controls"] = CAUSAL.n_controls
    path.write_text(json.dumps(plan))
    with pytest.raises(ConfigError, match=r"'version': 1, .* uses \{'version': 2"):
        run_study(_config(out))
