"""A statistic the run cannot define is reported as undefined, and the run goes on."""

import json
import warnings
from pathlib import Path

from vrp.study import Stage, StudyConfig, run_study


def test_probes_with_a_rare_class_are_undefined_and_later_stages_still_run(tmp_path: Path) -> None:
    stages = (Stage.ACCURACY, Stage.SIGNALS, Stage.PROBES, Stage.CAUSAL)
    config = StudyConfig(models=("tiny/llava",), n=4, batch_size=8, samples=0, probe_folds=9,
                         stages=stages, out=tmp_path / "run")  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = run_study(config).results["tiny/llava"]
    probes = result["probes"]
    assert "fewer than probe_folds=9" in probes["undefined"] and probes["n"] == 16
    causal = json.loads((tmp_path / "run" / "results" / "tiny--llava" / "causal.json").read_text())
    assert causal["n"] > 0  # the dimension ablation fell back to the last layer
    assert (tmp_path / "run" / "manifest.json").is_file()
