"""The circuits stage on the LLaVA organism (16 yes/no questions, 2 batches): one row per used pair
per cell and one per unusable pair, planted patching scores, numbers equal to the circuits calls,
and a resume that recomputes only the missing batch."""

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from circuits import corrupt_pairs, localise, patch_pairs
from vrp.stats import ratio_of_means
from vrp.study import Stage, StudyConfig, run_study
from vrp.study._circuits import KINDS, NOISE_STD, RESAMPLES
from vrp.study._samples import study_samples

MODEL = "organism/llava"
SETTINGS = {"models": (MODEL,), "n": 4, "batch_size": 8, "samples": 0, "seed": 3,
            "stages": (Stage.CIRCUITS,)}  # fmt: skip
SLUG = "organism--llava"
CELLS = 3 * 3 * 4  # components x position groups x layers


def _config(out: Path) -> StudyConfig:
    return StudyConfig(out=out, **SETTINGS)


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("circuits") / "run"
    run_study(_config(out))
    return out


def _rows(out: Path) -> list[dict]:
    return pq.read_table(out / "records" / "circuits.parquet").to_pylist()


def _result(out: Path) -> dict:
    return json.loads((out / "results" / SLUG / "circuits.json").read_text())


def test_every_pair_is_counted_and_used_pairs_have_every_cell(finished: Path) -> None:
    rows, result = _rows(finished), _result(finished)
    per_pair: dict[tuple, list[dict]] = {}
    for r in rows:
        per_pair.setdefault((r["corruption"], r["item"]), []).append(r)
    splits = {
        kind: {r[0]["split"] for (k, _), r in per_pair.items() if k == kind} for kind in KINDS
    }
    assert splits["object"] == {"random", "popular", "adversarial"}  # spatial names no object
    assert splits["noise"] == {"random", "popular", "adversarial", "spatial"}
    for group in per_pair.values():
        valid = group[0]["valid"]
        assert len(group) == (CELLS if valid else 1)
        assert valid == (group[0]["clean_correct"] and group[0]["flipped"] and group[0]["aligned"])
    for kind in KINDS:
        summary = result["corruptions"][kind]
        assert summary["pairs"] == sum(k == kind for k, _ in per_pair)
        assert summary["valid"] == sum(g[0]["valid"] for (k, _), g in per_pair.items() if k == kind)
    assert result["corruptions"]["object"]["valid"] >= 4


def test_planted_scores(finished: Path) -> None:
    """A full patch of the last layer's residual at the answer position restores the clean margin
    exactly; LLaVA's image tokens precede the question, so an object swap leaves them unchanged."""
    rows = [r for r in _rows(finished) if r["valid"] and r["corruption"] == "object"]
    last = [
        r["score"]
        for r in rows
        if (r["component"], r["positions"], r["layer"]) == ("resid_post", "answer", 3)
    ]
    np.testing.assert_allclose(last, 1.0, atol=1e-4)
    image = [r["score"] for r in rows if r["positions"] == "image"]
    np.testing.assert_allclose(image, 0.0, atol=1e-5)


def test_the_stages_numbers_equal_the_library_calls(finished: Path, load_model) -> None:
    vlm = load_model(MODEL)
    config = _config(finished)
    everything = study_samples(config)
    samples = everything.where(lambda q: q.answer in ("yes", "no"))
    stored = {(r["corruption"], r["item"], r["component"], r["positions"], r["layer"]): r
              for r in _rows(finished)}  # fmt: skip
    batch, items = samples[0:8], samples.indices[0:8]
    item_of = {(s.split, s.question_id): item for s, item in zip(batch, items, strict=True)}
    for kind in KINDS:
        pairs = corrupt_pairs(
            batch, kind=kind, seed=3, pool=everything.questions, noise_std=NOISE_STD
        )
        for mine in patch_pairs(vlm, pairs).to_records(include_invalid=True):
            item = item_of[(mine["split"], mine["question_id"])]
            theirs = stored[(kind, item, mine["component"], mine["positions"], mine["layer"])]
            for key in ("valid", "change", "clean_metric", "corrupt_metric", "metric", "score"):
                assert theirs[key] == mine[key], key
    result = _result(finished)["corruptions"]["object"]["cells"]["mlp_out"]["answer"]
    restored: dict[int, list[float]] = {}
    gap: dict[int, float] = {}
    for r in _rows(finished):
        if (
            r["valid"]
            and r["corruption"] == "object"
            and r["component"] == "mlp_out"
            and r["positions"] == "answer"
        ):
            sign = np.sign(r["clean_metric"] - r["corrupt_metric"])
            restored.setdefault(r["item"], [0.0] * 4)[r["layer"]] = sign * (
                r["metric"] - r["corrupt_metric"]
            )
            gap[r["item"]] = abs(r["clean_metric"] - r["corrupt_metric"])
    profile = np.array([restored[i] for i in sorted(restored)])
    gaps = np.array([gap[i] for i in sorted(gap)])
    assert result["n"] == len(profile)
    for layer, stats in enumerate(result["per_layer"]):
        expected = ratio_of_means(profile[:, layer], gaps, n_resamples=RESAMPLES, seed=3)
        assert stats["estimate"] == expected.estimate and stats["ci_low"] == expected.ci_low
        assert stats["p_value"] == expected.p_value
    where = localise(profile / gaps.mean(), seed=3)
    assert result["localisation"]["verdict"] == where.verdict
    assert result["localisation"]["concentration"] == where.concentration


def test_resume_recomputes_the_missing_batch(finished: Path, tmp_path: Path) -> None:
    out = tmp_path / "resumed"
    shutil.copytree(finished, out)
    (out / "parts" / "circuits" / SLUG / "part-00000.parquet").unlink()
    (out / "results" / SLUG / "circuits.json").unlink()
    for path in (out / "records").iterdir():
        path.unlink()
    assert run_study(_config(out)).resumed
    for name in ("circuits.csv", "circuits.parquet"):
        assert (out / "records" / name).read_bytes() == (finished / "records" / name).read_bytes()
    mine, theirs = _result(out), _result(finished)
    assert mine["corruptions"] == theirs["corruptions"] and mine["headline"] == theirs["headline"]


def test_q_values_are_benjamini_hochberg_over_every_cell(finished: Path) -> None:
    from scipy import stats

    for kind, summary in _result(finished)["corruptions"].items():
        entries = [e for groups in summary.get("cells", {}).values() for cell in groups.values()
                   for e in cell.get("per_layer", []) if e.get("p_value") is not None]  # fmt: skip
        if not entries:
            continue
        expected = stats.false_discovery_control([e["p_value"] for e in entries], method="bh")
        np.testing.assert_allclose([e["q_value"] for e in entries], expected)
        assert summary["fdr"]["n"] == len(entries), kind
        assert summary["fdr"]["discoveries"] == sum(e["discovery"] for e in entries)
