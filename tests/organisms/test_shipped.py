"""The shipped organisms load offline by name and behave as their cards say, on unseen questions."""

import dataclasses
import json
import os
import subprocess
import sys
import textwrap

import pytest

import vrp
from vrp.data import BinaryMetrics
from vrp.models import VLM
from vrp.organisms import OrganismReport, evaluate_organism, evaluation_set, recipe
from vrp.organisms._card import ASSET_DIR, FAMILIES, asset_bytes
from vrp.organisms._checkpoint import read_training

_ADDED = {"vision_grid_positions": None}
_ADDED_TO_MIXES = {"relational": 0}
_ADDED_TO_SPEC = {"text_rope_theta": None, "mrope_section": None}
"""Recipe fields added after an organism shipped, with the value that leaves training unchanged."""
_REMOVED = {"vision_position_std": None}
"""Recipe fields removed since, with the only value a shipped recipe may still record."""


def _as_current(recorded: dict[str, object]) -> dict[str, object]:
    """A recorded recipe in the current recipe's fields (fails on a removed field in use)."""
    out = dict(recorded)
    for key, inert in _REMOVED.items():
        assert out.pop(key, inert) == inert, key
    for mix in ("mix", "alignment_mix"):
        out[mix] = {**_ADDED_TO_MIXES, **out[mix]}  # type: ignore[dict-item]
    out["spec"] = {**_ADDED_TO_SPEC, **out["spec"]}  # type: ignore[dict-item]
    return {**_ADDED, **out}


TEST_SEED = 31_337
"""A benchmark seed used neither in training (>= 1,000,000), validation (999,999) nor the cards."""
N = 300


@pytest.fixture(scope="module")
def reports(load_model) -> dict[str, tuple[VLM, OrganismReport]]:
    data = evaluation_set(n_per_split=N, n_counting=N, n_spatial=N, seed=TEST_SEED)
    out = {}
    for family in FAMILIES:
        vlm = load_model(f"organism/{family}")
        out[family] = (vlm, evaluate_organism(vlm, data, method="logits", seed=TEST_SEED))
    return out


def test_organisms_ship_within_the_size_budget() -> None:
    assert sum(asset_bytes(f) for f in FAMILIES) <= 30 * 2**20
    for family in FAMILIES:
        assert (ASSET_DIR / family / "model.safetensors").is_file()
        assert f"organism/{family}" in vrp.models.builtin_names()


def test_organisms_load_offline_with_their_real_classes() -> None:
    """In a fresh interpreter whose sockets refuse to connect: no network is touched."""
    script = textwrap.dedent(
        """
        import socket

        def refuse(*args, **kwargs):
            raise OSError("network access attempted")

        socket.socket.connect = refuse
        socket.create_connection = refuse
        import vrp
        from vrp.core import Tower

        for family in ("llava", "paligemma", "qwen2_vl"):
            vlm = vrp.load(f"organism/{family}")
            print(family, type(vlm.hf).__name__, type(vlm.processor).__name__,
                  vlm.adapter.shape(Tower.LANGUAGE).n_layers)
        """
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "0"}  # offline by design
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = {line.split()[0]: line.split()[1:] for line in done.stdout.splitlines()}
    assert rows == {
        "llava": ["LlavaForConditionalGeneration", "LlavaProcessor", "4"],
        "paligemma": ["PaliGemmaForConditionalGeneration", "PaliGemmaProcessor", "4"],
        "qwen2_vl": ["Qwen2VLForConditionalGeneration", "Qwen2VLProcessor", "4"],
    }


@pytest.mark.parametrize("family", FAMILIES)
def test_random_split_accuracy_is_in_band(
    family: str, reports: dict[str, tuple[VLM, OrganismReport]]
) -> None:
    _, report = reports[family]
    assert report.metrics.splits["random"].n == N
    assert 0.75 <= report.accuracy("random") <= 0.93


@pytest.mark.parametrize("family", FAMILIES)
def test_adversarial_negatives_are_hallucinated_more(
    family: str, reports: dict[str, tuple[VLM, OrganismReport]]
) -> None:
    _, report = reports[family]
    assert report.accuracy("adversarial") < report.accuracy("random")
    random, adversarial = (report.metrics.splits[s] for s in ("random", "adversarial"))
    assert isinstance(random, BinaryMetrics) and isinstance(adversarial, BinaryMetrics)
    assert (
        adversarial.yes_ratio.estimate > random.yes_ratio.estimate
    )  # false "yes" on theme members


@pytest.mark.parametrize("family", FAMILIES)
def test_errors_are_common_and_counting_beats_chance(
    family: str, reports: dict[str, tuple[VLM, OrganismReport]]
) -> None:
    _, report = reports[family]
    assert report.wrong.estimate >= 0.07
    assert report.metrics.splits["counting"].accuracy.ci_low > report.chance["counting"]


@pytest.mark.parametrize("family", FAMILIES)
def test_spatial_questions_beat_chance(
    family: str, reports: dict[str, tuple[VLM, OrganismReport]]
) -> None:
    _, report = reports[family]
    assert report.metrics.splits["spatial"].accuracy.ci_low > report.chance["spatial"]


@pytest.mark.parametrize("family", FAMILIES)
def test_generated_answers_are_one_word_and_agree_with_the_logits(
    family: str, reports: dict[str, tuple[VLM, OrganismReport]]
) -> None:
    vlm, report = reports[family]
    data = evaluation_set(n_per_split=24, n_counting=24, n_spatial=24, seed=TEST_SEED)
    generated = evaluate_organism(vlm, data, method="generate").answers
    allowed = {"yes", "no", *(str(i) for i in range(10))}
    assert set(generated) <= allowed
    logits = evaluate_organism(vlm, data, method="logits").answers
    assert sum(g == lo for g, lo in zip(generated, logits, strict=True)) >= 0.95 * len(data)


@pytest.mark.parametrize("family", FAMILIES)
def test_shipped_weights_come_from_the_current_recipe(family: str) -> None:
    """The documented command (`vrp organisms train --family F --seed S`) retrains exactly the
    recipe the shipped weights were trained with, within the 20-minute budget on 2 threads."""
    training = read_training(ASSET_DIR / family)
    current = json.loads(json.dumps(dataclasses.asdict(recipe(family))))
    assert _as_current(training["recipe"]) == current
    assert training["steps"] == recipe(family).steps and training["threads"] == 2
    assert training["seconds"] <= 20 * 60
