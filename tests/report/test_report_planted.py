"""Reports of hand-written runs whose answers are known: absent stages say why, the method
table ranks planted AUROCs, the published comparison judges planted effects (by the recorded
family, else the name's), the margin by layer averages planted curves, and the warnings name
planted problems."""

import json
from pathlib import Path

from vrp.report import build_report, family_of, published_family, read_run

from .markdown import tables
from .planted import accuracy_result, estimate, planted_run


def _signals(aurocs: dict[str, float], n: int = 200) -> dict:
    out = {"n": n, "accuracy": 0.7, "fusion": {"undefined": "planted: no fusion"}, "signals": {}}
    for name, auc in aurocs.items():
        out["signals"][name] = {"point_biserial": estimate(0.0, -0.1, 0.1, n, 0.9),
                                "auroc": estimate(auc, auc - 0.05, auc + 0.05, n, 0.01)}  # fmt: skip
    out["signals"]["clusters_dbscan"] = {"undefined": "planted: the grid is too small", "n": n}
    return out


def test_a_run_with_some_stages_names_the_absent_sections_and_why(tmp_path: Path) -> None:
    run = planted_run(
        tmp_path / "run", {"m/llava": {"accuracy": accuracy_result({"random": 0.9}, 40)}}
    )
    files = build_report(run)
    text = files.markdown.read_text()
    for title in ("Method comparison", "Hidden-state probes per layer", "Attention-guided masking",
                  "Activation patching and localisation"):  # fmt: skip
        section = text.split(f"## {title}")[1].split("\n## ")[0]
        assert "> **Absent:** The run did not include the" in section
        assert "Rerun `vrp run` with --stages including" in section
    assert "0.900 [0.800, 1.000]" in text  # the planted accuracy and its CI
    html = files.html.read_text()
    assert html.count('class="absent"') == 8 and "(absent)" in html
    assert [f.name for f in files.figures] == ["accuracy.png"]


def test_methods_are_ranked_by_distance_from_chance(tmp_path: Path) -> None:
    aurocs = {"answer_logprob": 0.62, "vocab_entropy": 0.21, "self_consistency": 0.75,
              "spatial_entropy": 0.5}  # fmt: skip
    run = planted_run(tmp_path / "run", {"m/llava": {"signals": _signals(aurocs)}})
    rows = tables(build_report(run).markdown)["Signals against correctness, best first per model"]
    assert [r["signal"] for r in rows] == ["vocab_entropy", "self_consistency", "answer_logprob",
                                           "spatial_entropy", "clusters_dbscan", "fused"]  # fmt: skip
    by_name = {r["signal"]: r for r in rows}
    assert by_name["self_consistency"]["passes / question"] == "4"  # K from the config
    assert by_name["clusters_dbscan"]["caveat or why undefined"] == "planted: the grid is too small"
    assert by_name["fused"]["caveat or why undefined"] == "planted: no fusion"


def _causal(top: float, p: float, n: int = 200) -> dict:
    study = {"n": n, "baseline": estimate(0.7, 0.6, 0.8, n),
             "change": estimate(top, top - 0.04, top + 0.04, n, p), "by_split": {},
             "controls": {"n": 19, "mean": -0.01, "ci_low": -0.03, "ci_high": 0.01,
                          "changes": [estimate(-0.01, -0.05, 0.03, n, 0.8)] * 19},
             "p_vs_controls": {"estimate": 0.05, "n": 19}}  # fmt: skip
    return {"n": n, "masking": {"token": {"top": study, "bottom": study}},
            "neurons": {"undefined": "planted: ranking failed", "layer": 3, "k": 5},
            "dims": {"layer": 3, "points": []}, "bypass": {}}  # fmt: skip


def test_published_findings_are_judged_in_kind(tmp_path: Path) -> None:
    run = planted_run(tmp_path / "run", {
        "org/llava": {"causal": _causal(-0.10, 0.001)},
        "org/paligemma": {"causal": _causal(+0.02, 0.6)},
    })  # fmt: skip
    rows = tables(build_report(run).markdown)["Published study vs this run"]
    masking = {r["model"]: r for r in rows if r["finding"].startswith("masking the top-30%")}
    assert masking["org/llava"]["in kind"] == "holds"
    assert masking["org/llava"]["published"] == "-8.2 pp, p < 0.001"
    assert masking["org/llava"]["this run"] == "-10.0 pp [-14.0, -6.0], p = 0.001"
    assert masking["org/paligemma"]["in kind"] == "does not hold"
    assert masking["org/paligemma"]["published"] == "-11.3 pp, p < 0.001"


def test_family_of_reads_the_three_families_from_names() -> None:
    assert family_of("organism/qwen2_vl") == "qwen2_vl"
    assert family_of("Qwen/Qwen2-VL-7B-Instruct") == "qwen2_vl"
    assert family_of("llava-hf/llava-1.5-7b-hf") == "llava"
    assert family_of("google/paligemma-3b-mix-224") == "paligemma"
    assert family_of("my/model") is None


def _record_families(run: Path, families: dict[str, str]) -> None:
    """Writes `families` into the planted run's manifest, as `vrp run` records them."""
    path = run / "manifest.json"
    manifest = json.loads(path.read_text())
    for model, family in families.items():
        manifest["models"][model]["family"] = family
    path.write_text(json.dumps(manifest))


def test_the_published_family_is_the_recorded_adapter_family(tmp_path: Path) -> None:
    run = planted_run(tmp_path / "run", {
        "org/llava": {"causal": _causal(-0.10, 0.001)},  # named llava, recorded paligemma
        "my/model": {"causal": _causal(-0.10, 0.001)},  # a name that guesses nothing
        "org/qwen2.5": {"causal": _causal(-0.10, 0.001)},  # a family the study did not publish
    })  # fmt: skip
    _record_families(run, {"org/llava": "paligemma", "my/model": "llava",
                           "org/qwen2.5": "qwen2_5_vl"})  # fmt: skip
    data = read_run(run)
    assert [published_family(data, m) for m in data.models] == ["paligemma", "llava", None]
    files = build_report(run)
    rows = tables(files.markdown)["Published study vs this run"]
    masking = {r["model"]: r["published"] for r in rows if r["finding"].startswith("masking")}
    assert masking == {"org/llava": "-11.3 pp, p < 0.001", "my/model": "-8.2 pp, p < 0.001",
                       "org/qwen2.5": "not reported for this family"}  # fmt: skip
    text = files.markdown.read_text()
    assert "No published family for org/qwen2.5 (its recorded adapter family" in text
    assert "guessed from the model's name" not in text


def test_an_older_run_without_families_guesses_them_from_names(tmp_path: Path) -> None:
    run = planted_run(tmp_path / "run", {"org/paligemma": {"causal": _causal(-0.10, 0.001)}})
    assert published_family(read_run(run), "org/paligemma") == "paligemma"
    text = build_report(run).markdown.read_text()
    assert "-11.3 pp, p < 0.001" in text
    assert "does not record the adapter family of org/paligemma" in text


def _lens_record(model: str, correct: bool, curve: list[float] | None) -> dict:
    row = {"model": model, "item": 0, "correct": correct, "truth_margin": 0.0,
           "truth_peak_layer": 1.0, "visual_peak_layer": 1.0, "mlp_share": 0.5}  # fmt: skip
    return row if curve is None else {**row, "truth_margin_by_layer": curve}


def test_the_margin_by_layer_is_the_mean_per_layer_of_each_group(tmp_path: Path) -> None:
    records = [_lens_record("m/llava", True, [0.0, 1.0, 3.0]),
               _lens_record("m/llava", True, [0.0, 3.0, 5.0]),
               _lens_record("m/llava", False, [1.0, -1.0, -2.0])]  # fmt: skip
    run = planted_run(tmp_path / "run", {"m/llava": {"signals": _signals({})}},
                      {"signals": records})  # fmt: skip
    files = build_report(run)
    rows = tables(files.markdown)["Logit-lens truth margin by layer, correct vs wrong answers"]
    assert [(r["layer"], r["correct answers: mean margin [95% CI]"], r["n correct"],
             r["wrong answers: mean margin [95% CI]"], r["n wrong"]) for r in rows] == [
        ("L0", "0.000", "2", "1.000", "1"),  # no spread, one wrong answer: no interval
        ("L1", "2.000 [-10.706, 14.706]", "2", "-1.000", "1"),
        ("L2", "4.000 [-8.706, 16.706]", "2", "-2.000", "1"),
    ]  # fmt: skip
    assert "lens_by_layer.png" in {f.name for f in files.figures}
    assert "no per-layer truth margin" not in files.markdown.read_text()


def test_records_without_the_margin_by_layer_say_so(tmp_path: Path) -> None:
    records = [_lens_record("m/llava", True, None), _lens_record("m/llava", False, None)]
    run = planted_run(tmp_path / "run", {"m/llava": {"signals": _signals({})}},
                      {"signals": records})  # fmt: skip
    files = build_report(run)
    assert "Logit-lens truth margin by layer, correct vs wrong answers" not in tables(
        files.markdown
    )
    assert "records have no per-layer truth margin" in files.markdown.read_text()
    assert "lens_by_layer.png" not in {f.name for f in files.figures}


def test_warnings_name_undefined_small_n_and_off_chance_controls(tmp_path: Path) -> None:
    probes = {"n": 12, "best_layer": 1,
              "per_layer": {"0": estimate(0.6, 0.4, 0.8, 12), "1": estimate(0.9, 0.7, 1.0, 12)},
              "control": {"0": estimate(0.5, 0.3, 0.7, 12), "1": estimate(0.85, 0.6, 0.95, 12)}}  # fmt: skip
    run = planted_run(tmp_path / "run", {"m/llava": {"signals": _signals({"answer_logprob": 0.6}),
                                                     "probes": probes}})  # fmt: skip
    rows = tables(build_report(run).markdown)["Warnings"]
    kinds = {(r["kind"], r["where"]) for r in rows}
    assert ("undefined", "signals: signals.clusters_dbscan") in kinds
    assert ("undefined", "signals: fusion") in kinds
    assert ("control", "probes: shuffled-label control, L1") in kinds
    assert ("control", "probes: shuffled-label control, L0") not in kinds  # contains 0.5
    (small,) = [r for r in rows if r["kind"] == "small n"]
    assert small["where"] == "probes" and "4 estimates rest on fewer than 30" in small["detail"]
    assert "smallest: n = 12" in small["detail"]


def test_patching_shows_every_per_layer_score_a_cell_records(tmp_path: Path) -> None:
    def layers(values: list[float]) -> list[dict]:
        return [estimate(v, v - 0.1, v + 0.1, 40, 0.01) for v in values]

    cell = {"n": 40, "per_layer": layers([0.1, 0.8]), "pooled": layers([0.2, 0.7]),
            "localisation": {"verdict": "late bottleneck", "concentration": 0.6,
                             "concentration_ci": [0.5, 0.7], "late_share": 0.8,
                             "late_share_ci": [0.7, 0.9], "peak": 1}}  # fmt: skip
    circuits = {"layers": 2, "corruptions": {"object": {"pairs": 50, "valid": 40,
                                                        "cells": {"mlp_out": {"answer": cell}}}},
                "headline": {"corruption": "object", "component": "mlp_out",
                             "positions": "answer", "localisation": cell["localisation"]}}  # fmt: skip
    files = build_report(planted_run(tmp_path / "run", {"m/llava": {"circuits": circuits}}))
    found = tables(files.markdown)
    rows = found["Normalised patching score per layer, pooled over pairs"]
    assert [(r["layer"], r["score [95% CI]"], r["pooled [95% CI]"]) for r in rows] == [
        ("L0", "0.100 [0.000, 0.200]", "0.200 [0.100, 0.300]"),
        ("L1", "0.800 [0.700, 0.900]", "0.700 [0.600, 0.800]"),
    ]
    (verdict,) = found["Localisation verdict per profile"]
    assert verdict["verdict"] == "late bottleneck"
    assert verdict["late share [95% CI]"] == "0.800 [0.700, 0.900]"
    assert {f.name for f in files.figures} == {"patching_object.png", "localisation.png"}
