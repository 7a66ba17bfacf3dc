"""A short training run lowers the loss, writes a loadable checkpoint, and resumes bit for bit."""

import dataclasses
from pathlib import Path

import pytest
import torch

import vrp
from tests.organisms.conftest import tiny_recipe
from vrp.core import ConfigError
from vrp.organisms import (
    TRAIN_SEED_OFFSET,
    TrainingStream,
    card_markdown,
    evaluate_organism,
    evaluation_set,
    train,
)
from vrp.organisms._checkpoint import read_training
from vrp.organisms._data import TrainingStream as Stream
from vrp.organisms._train import _Run


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return vrp.load(folder / "model").hf.state_dict()


def test_short_run_lowers_the_loss_and_writes_a_loadable_model(tmp_path: Path) -> None:
    result = train(
        "llava", seed=1, out=tmp_path, recipe=tiny_recipe(steps=40), threads=1, progress=False
    )
    assert result.steps == 40 and len(result.qa_loss) == 40
    first = sum(result.caption_loss[:5]) + sum(result.qa_loss[:5])
    last = sum(result.caption_loss[-5:]) + sum(result.qa_loss[-5:])
    assert last < 0.85 * first
    vlm = vrp.load(result.model_dir)
    assert vlm.family == "llava" and (result.model_dir / "training.json").is_file()
    inputs = vlm.encode(
        [TrainingStream(tiny_recipe(), 0).step_batch(0).questions[0].image],
        ["Is there a red circle in the image?"],
    )
    assert len(vlm.generate(inputs, max_new_tokens=2)) == 1


@pytest.mark.parametrize("family", ["paligemma", "qwen2_vl"])
def test_every_family_trains(family: str, tmp_path: Path) -> None:
    result = train(
        family, seed=0, out=tmp_path, recipe=tiny_recipe(family, 6), threads=1, progress=False
    )
    assert result.qa_loss[-1] < result.qa_loss[0]
    assert vrp.load(result.model_dir).family == family


def test_interrupted_run_resumes_to_identical_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recipe = tiny_recipe(steps=20)
    train("llava", seed=3, out=tmp_path / "straight", recipe=recipe, threads=1, progress=False)
    original = Stream.step_batch

    def interrupt_at_12(self: Stream, step: int):  # noqa: ANN202  (the patched method's type)
        if step == 12:
            raise KeyboardInterrupt
        return original(self, step)

    monkeypatch.setattr(Stream, "step_batch", interrupt_at_12)
    with pytest.raises(KeyboardInterrupt):
        train("llava", seed=3, out=tmp_path / "resumed", recipe=recipe, threads=1, progress=False)
    monkeypatch.setattr(Stream, "step_batch", original)
    assert torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=True)["step"] == 10
    result = train(
        "llava",
        seed=3,
        out=tmp_path / "resumed",
        recipe=recipe,
        threads=1,
        progress=False,
        resume=True,
    )
    assert result.steps == 20
    straight, resumed = _weights(tmp_path / "straight"), _weights(tmp_path / "resumed")
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)


def test_training_data_are_a_function_of_seed_and_step() -> None:
    recipe = tiny_recipe()
    a, b = TrainingStream(recipe, 5), TrainingStream(recipe, 5)
    b.step_batch(9)  # a different shard in memory first
    for step in (0, 7, 3):
        x, y = a.step_batch(step), b.step_batch(step)
        assert [e.question for e in x.questions] == [e.question for e in y.questions]
        assert [e.target for e in x.captions] == [e.target for e in y.captions]
    assert TrainingStream(recipe, 6).step_batch(0).captions != a.step_batch(0).captions
    assert min(recipe.data_seed(0, 0), recipe.data_seed(9, 99_999)) >= TRAIN_SEED_OFFSET
    counts = dict.fromkeys(
        ("caption", "grounding", "pope", "counting", "spatial", "hallucinated"), 0
    )
    batch = a.step_batch(recipe.alignment_steps)  # the first step of stage 2
    for e in (*batch.captions, *batch.questions):
        counts[e.task] += 1
    assert counts == {
        "caption": 4,
        "grounding": 0,
        "pope": 8,
        "counting": 4,
        "spatial": 4,
        "hallucinated": 0,
    }


def test_run_folder_errors_are_explained(tmp_path: Path) -> None:
    recipe = tiny_recipe(steps=2)
    with pytest.raises(ConfigError, match=r"Cannot resume: .*checkpoint.pt does not exist"):
        train("llava", out=tmp_path, recipe=recipe, resume=True, progress=False, threads=1)
    train("llava", out=tmp_path, recipe=recipe, progress=False, threads=1)
    with pytest.raises(ConfigError, match=r"already holds a training checkpoint. Pass --resume"):
        train("llava", out=tmp_path, recipe=recipe, progress=False, threads=1)
    with pytest.raises(ConfigError, match=r"belongs to run .*'seed': 0.*not .*'seed': 4"):
        train("llava", seed=4, out=tmp_path, recipe=recipe, resume=True, progress=False, threads=1)
    with pytest.raises(ConfigError, match=r"No organism recipe for family 'nope'"):
        train("nope", out=tmp_path / "x", progress=False)


@pytest.mark.parametrize("family", ["llava", "paligemma"])
def test_vision_position_table_is_redrawn_at_the_recipe_scale(family: str) -> None:
    recipe = dataclasses.replace(tiny_recipe(family, 2), vision_position_std=0.5)
    first, again = (_Run(recipe, 3, Path("unused"), 1) for _ in range(2))
    table = first.vlm.adapter.vision_position_embedding(first.vlm.hf).weight.detach()
    assert 0.4 < float(table.std()) < 0.6
    torch.testing.assert_close(
        table, again.vlm.adapter.vision_position_embedding(again.vlm.hf).weight
    )
    default = _Run(tiny_recipe(family, 2), 3, Path("unused"), 1)
    assert (
        float(default.vlm.adapter.vision_position_embedding(default.vlm.hf).weight.detach().std())
        < 0.2
    )


def test_rotary_vision_positions_cannot_be_redrawn() -> None:
    recipe = dataclasses.replace(tiny_recipe("qwen2_vl", 2), vision_position_std=0.5)
    with pytest.raises(ConfigError, match="qwen2_vl has no learned vision position table"):
        _Run(recipe, 0, Path("unused"), 1)
    with pytest.raises(ConfigError, match="vision_position_std must be positive"):
        dataclasses.replace(recipe, vision_position_std=0.0)


def test_validation_is_recorded_and_rendered_in_the_card(tmp_path: Path) -> None:
    result = train(
        "llava",
        seed=0,
        out=tmp_path,
        recipe=tiny_recipe(steps=4),
        threads=1,
        progress=False,
        validate_every=2,
    )
    assert [v["step"] for v in result.validation] == [2, 4]
    assert all(0 <= v["random"] <= 1 for v in result.validation)
    vlm = vrp.load(result.model_dir)
    data = evaluation_set(n_per_split=4, n_counting=2, n_spatial=2, seed=5)
    report = evaluate_organism(vlm, data, method="logits", seed=5)
    card = card_markdown(vlm, report, read_training(result.model_dir))
    assert "| 4 | " in card and "Accuracy during training" in card
