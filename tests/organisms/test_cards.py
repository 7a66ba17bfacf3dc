"""Model cards are rendered from real evaluations and shipped in the package and the docs."""

from pathlib import Path

import pytest

import vrp
from vrp.core import Tower
from vrp.models import VLM
from vrp.organisms import (
    EVAL_SEED,
    card_markdown,
    evaluate_organism,
    evaluation_set,
    shipped_card,
    train,
)
from vrp.organisms._card import ASSET_DIR, FAMILIES, _versus_chance, card_path
from vrp.organisms._checkpoint import read_training
from vrp.stats import proportion

DOCS = Path(__file__).resolve().parents[2] / "docs" / "organisms"


@pytest.mark.parametrize("family", FAMILIES)
def test_each_organism_ships_a_card_with_metrics_and_recipe(family: str) -> None:
    card = shipped_card(family)
    assert card_path(family).is_file()
    for section in ("## Architecture", "## Training", "## Evaluation", "| adversarial | 3000 |"):
        assert section in card
    for text in (
        "precision (n)",
        "yes-ratio",
        "Reproduce: `vrp organisms train",
        f"seed {EVAL_SEED:,}",
    ):
        assert text in card
    if DOCS.is_dir():  # a source checkout: the docs hold the same card
        assert (DOCS / f"{family}.md").read_text(encoding="utf-8") == card


def test_card_renders_a_report_of_any_model(word_vlms: dict[str, VLM]) -> None:
    vlm = word_vlms["qwen2_vl"]
    data = evaluation_set(n_per_split=8, n_counting=4, n_spatial=4, seed=5)
    report = evaluate_organism(vlm, data, method="logits", seed=5)
    card = card_markdown(vlm, report, {})
    assert "No training record" in card and "| random | 8 |" in card
    assert "2x2 patch merger" in card and "| counting | 4 |" in card


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_retraining_with_the_documented_command_reproduces_the_shipped_accuracy(
    family: str, tmp_path: Path
) -> None:
    """About 20 minutes per family on 2 cores (`-m slow -k qwen2_vl` for one): retrains the organism
    with its card's command and compares every split on the card's questions."""
    shipped = vrp.load(f"organism/{family}")
    data = evaluation_set(n_per_split=3000, n_counting=1000, n_spatial=1000)
    seed = read_training(ASSET_DIR / family)["seed"]  # the card's command
    result = train(family, seed=seed, out=tmp_path, threads=2, progress=False)
    again = evaluate_organism(vrp.load(result.model_dir), data, method="logits")
    before = evaluate_organism(shipped, data, method="logits")
    for split in ("random", "adversarial", "counting", "spatial"):
        assert abs(again.accuracy(split) - before.accuracy(split)) <= 0.02, split


@pytest.mark.parametrize(
    ("successes", "verdict"),
    [(70, "is above"), (50, "is not distinguishable from"), (30, "is below")],
)
def test_card_says_whether_a_split_beats_its_majority_baseline(
    successes: int, verdict: str
) -> None:
    line = _versus_chance("spatial", proportion(successes, 100), 0.5)
    assert f"Spatial accuracy {successes / 100:.3f} [" in line
    assert f"{verdict} the majority-answer baseline 0.500" in line


def test_card_names_the_machine_and_grid_positions(word_vlms: dict[str, VLM]) -> None:
    vlm = word_vlms["llava"]
    data = evaluation_set(n_per_split=4, n_counting=2, n_spatial=2, seed=5)
    report = evaluate_organism(vlm, data, method="logits", seed=5)
    training = read_training(ASSET_DIR / "llava")
    training["recipe"]["vision_grid_positions"] = 4.0
    training["recipe"]["mix"] = {**training["recipe"]["mix"], "relational": 12}
    card = card_markdown(vlm, report, {**training, "cpu": "x86_64", "cpu_count": 8})
    assert "on an x86_64 machine with 8 CPUs (torch" in card
    assert "fixed 2-D sin-cos codes of amplitude 4 and frozen" in card
    assert "12 relational grounding" in card
    assert 'Relational grounding ("Where is the red circle left of the blue cross?"' in card
    assert "--n 4 --n-counting 2 --n-spatial 2 --seed 5`" in card
    training["recipe"]["vision_grid_positions"] = None
    training["recipe"]["mix"]["relational"] = 0
    card = card_markdown(vlm, report, {**training, "cpu": "arm64", "cpu_count": None})
    assert (
        "sin-cos" not in card and "elational" not in card and "on an arm64 machine (torch" in card
    )


def test_card_names_the_decoder_rotary_positions(word_vlms: dict[str, VLM]) -> None:
    data = evaluation_set(n_per_split=2, n_counting=2, n_spatial=2, seed=5)
    cards = {}
    for family in ("llava", "qwen2_vl"):
        report = evaluate_organism(word_vlms[family], data, method="logits", seed=5)
        training = read_training(ASSET_DIR / family)
        cards[family] = card_markdown(word_vlms[family], report, training)
    assert "- Decoder rotary positions: base 10,000.\n" in cards["llava"]
    d_head = word_vlms["qwen2_vl"].adapter.shape(Tower.LANGUAGE).d_head
    split = word_vlms["qwen2_vl"].hf.config.text_config.rope_parameters["mrope_section"]
    assert (
        f"- Decoder rotary positions: base 1,000,000; M-RoPE gives (time, height, width) {split} of "
        f"each head's {d_head // 2} frequency pairs, highest frequencies first.\n"
    ) in cards["qwen2_vl"]


def test_card_rotary_line_survives_a_config_without_a_base() -> None:
    from types import SimpleNamespace

    from vrp.organisms._card import _rotary

    assert _rotary(SimpleNamespace(), 16) == "- Decoder rotary positions: base not recorded."
    line = _rotary(SimpleNamespace(rope_parameters={"mrope_section": [0, 1, 7]}), 16)
    assert line.startswith("- Decoder rotary positions: base not recorded; M-RoPE gives")
