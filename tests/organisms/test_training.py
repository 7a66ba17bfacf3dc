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
    grid_position_table,
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
    recorded = read_training(result.model_dir)["final_qa_loss"]
    assert result.final_qa_loss == recorded == round(sum(result.qa_loss[-40:]) / 40, 4)
    longer = dataclasses.replace(result, qa_loss=(9.0,) * 10 + (1.0,) * 50)
    assert longer.final_qa_loss == 1.0  # the last 50 steps only
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
def test_grid_positions_replace_the_vision_table_and_stay_frozen(
    family: str, tmp_path: Path
) -> None:
    recipe = dataclasses.replace(tiny_recipe(family, 3), vision_grid_positions=0.5)
    run = _Run(recipe, 3, tmp_path, 1)
    table = run.vlm.adapter.vision_position_embedding(run.vlm.hf).weight
    rows, width = table.shape
    side = recipe.spec.image_size // recipe.spec.patch_size
    expected = grid_position_table(rows=rows, side=side, width=width, scale=0.5)
    torch.testing.assert_close(table.detach(), expected)
    assert rows - side * side == (1 if family == "llava" else 0)  # CLIP's class token row
    assert not table.requires_grad
    result = train(family, seed=3, out=tmp_path / "run", recipe=recipe, threads=1, progress=False)
    trained = vrp.load(result.model_dir)
    torch.testing.assert_close(
        trained.adapter.vision_position_embedding(trained.hf).weight.detach(), expected
    )


def test_grid_position_table_codes_row_and_column_apart() -> None:
    table = grid_position_table(rows=17, side=4, width=32, scale=2.0)
    assert torch.equal(table[0], torch.zeros(32))  # the class token keeps no position
    cells = table[1:].reshape(4, 4, 32)  # (row, column, width)
    row_half, col_half = cells[..., :16], cells[..., 16:]
    assert torch.equal(row_half, row_half[:, :1].expand_as(row_half))  # same row, same code
    assert torch.equal(col_half, col_half[:1].expand_as(col_half))  # same column, same code
    assert float(table.abs().max()) <= 2.0
    assert torch.cdist(row_half[:, 0], row_half[:, 0]).fill_diagonal_(1.0).min() > 0.5
    assert torch.cdist(col_half[0], col_half[0]).fill_diagonal_(1.0).min() > 0.5
    torch.testing.assert_close(table[1, 0], torch.tensor(0.0))  # sin(0)
    torch.testing.assert_close(
        table[1 + 1, 16], 2 * torch.sin(torch.tensor(1.0))
    )  # column 1, f = 1


def test_grid_position_errors_are_explained() -> None:
    recipe = dataclasses.replace(tiny_recipe("qwen2_vl", 2), vision_grid_positions=0.5)
    with pytest.raises(ConfigError, match="qwen2_vl has no learned vision position table"):
        _Run(recipe, 0, Path("unused"), 1)
    with pytest.raises(ConfigError, match="vision_grid_positions must be positive or None; got 0"):
        dataclasses.replace(recipe, vision_grid_positions=0.0)
    with pytest.raises(ConfigError, match=r"width divisible by 4 .* got width=30, rows=17"):
        grid_position_table(rows=17, side=4, width=30, scale=1.0)
    with pytest.raises(ConfigError, match=r"at least side\^2 = 16 rows; got width=32, rows=9"):
        grid_position_table(rows=9, side=4, width=32, scale=1.0)


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
