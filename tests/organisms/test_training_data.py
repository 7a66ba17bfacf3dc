"""The training data's deliberate imperfections: missed hard objects and hallucinated co-occurrences."""

import dataclasses

import numpy as np
import pytest

from tests.organisms.conftest import tiny_recipe
from vrp.core import ConfigError, DataError
from vrp.data import SyntheticConfig, generate, scene_caption
from vrp.organisms import BatchMix, TrainingStream
from vrp.organisms._data import (
    annotated_scene,
    counted_category,
    relational_question,
    spatial_subject,
)


def _scenes():
    return list(
        generate(
            SyntheticConfig(seed=3, n_per_split=60, n_counting=20, n_spatial=20)
        ).scenes.values()
    )


def test_annotation_misses_only_small_or_occluded_objects() -> None:
    scenes = _scenes()
    rng = np.random.default_rng(0)
    missed = kept = 0
    for scene in scenes:
        seen = annotated_scene(scene, 1.0, rng)
        assert all(not (o.small or o.occluded) for o in seen.objects)
        assert all(o in scene.objects for o in seen.objects)
        missed += len(scene.objects) - len(seen.objects)
        kept += len(seen.objects)
        assert annotated_scene(scene, 0.0, rng) == scene
    assert missed > 0 and kept > missed


def test_targets_follow_the_annotation() -> None:
    recipe = dataclasses.replace(
        tiny_recipe(),
        miss_prob=1.0,
        alignment_steps=0,
        mix=BatchMix(caption=4, pope=16, counting=8, spatial=0, hallucinated=4),
    )
    stream = TrainingStream(recipe, 0)
    shard = stream._shard(0)
    batch = stream.step_batch(0)
    for example in batch.captions:
        assert example.target in {scene_caption(s) for s in shard.annotated.values()}
    for example in batch.questions:
        if example.task == "hallucinated":
            assert example.target == "yes" and example.question.startswith("Is there")
    categories = shard.config.categories
    for i in shard.pools["counting"][:20]:
        q = shard.dataset.questions[i]
        scene = shard.annotated[q.image_name]
        count = scene.count(counted_category(q.question, categories))
        assert count <= int(q.answer)


def test_hallucinated_questions_ask_about_absent_co_occurring_objects() -> None:
    recipe = dataclasses.replace(
        tiny_recipe(), mix=BatchMix(caption=1, pope=1, counting=0, spatial=0, hallucinated=6)
    )
    stream = TrainingStream(recipe, 0)
    shard = stream._shard(0)
    for i in shard.pools["hallucinated"][:30]:
        q = shard.dataset.questions[i]
        assert q.split == "adversarial" and q.answer == "no"  # truly absent
        assert q.category not in shard.dataset.scenes[q.image_name].categories


def test_stage_one_is_clean_and_stage_two_careless() -> None:
    recipe = dataclasses.replace(
        tiny_recipe(steps=20), miss_prob=1.0, steps_per_shard=10, alignment_steps=5
    )
    stream = TrainingStream(recipe, 1)
    stages = [recipe.stage(s) for s in (0, 4, 5, 19)]
    assert [(s.index, s.clean) for s in stages] == [(1, True), (1, True), (2, False), (2, False)]
    assert stages[0].mix == recipe.alignment_mix and stages[2].mix == recipe.mix
    shard = stream._shard(0)
    truth = {scene_caption(s) for s in shard.dataset.scenes.values()}
    careless = {scene_caption(s) for s in shard.annotated.values()}
    assert {e.target for e in stream.step_batch(0).captions} <= truth
    assert {e.target for e in stream.step_batch(5).captions} <= careless
    assert recipe.with_steps(40).alignment_steps == 10


def test_counted_category_and_recipe_errors() -> None:
    cats = SyntheticConfig().categories
    assert counted_category("How many red crosses are there?", cats) == "red cross"
    assert counted_category("How many blue circles are there?", cats) == "blue circle"
    with pytest.raises(DataError, match=r"is not a counting question"):
        counted_category("Is there a red cross?", cats)
    with pytest.raises(ConfigError, match=r"miss_prob must lie in \[0, 1\]"):
        dataclasses.replace(tiny_recipe(), miss_prob=1.5)
    with pytest.raises(ConfigError, match=r"alignment_steps must lie in 0..steps \(20\)"):
        dataclasses.replace(tiny_recipe(), alignment_steps=21)
    with pytest.raises(ConfigError, match=r"a batch needs at least one question"):
        dataclasses.replace(tiny_recipe(), mix=BatchMix(caption=4, pope=0, counting=0, spatial=0))


def _instruction_stream(**mix: int) -> TrainingStream:
    """Seed 2's stream of a tiny recipe that is all instruction tuning with this question mix."""
    batch = BatchMix(caption=1, pope=1, counting=0, spatial=0, **mix)
    return TrainingStream(dataclasses.replace(tiny_recipe(), alignment_steps=0, mix=batch), 2)


def test_grounding_targets_list_the_annotated_cells_of_the_object() -> None:
    stream = _instruction_stream(grounding=10)
    shard = stream._shard(0)
    pairs = shard.grounding_pairs[:10]
    for (name, category), example in zip(pairs, stream.step_batch(0).questions, strict=False):
        assert example.question == f"Where is the {category}?"
        cells = [tuple(int(v) for v in cell.split()) for cell in example.target.split(" , ")]
        scene = shard.annotated[name]
        assert cells == sorted(o.cell for o in scene.objects if o.category == category)


_RELATIONS = {"left of": (1, 1), "right of": (1, -1), "above": (0, 1), "below": (0, -1)}


def test_relational_grounding_locates_the_subject_of_a_true_spatial_question() -> None:
    stream = _instruction_stream(relational=12)
    shard = stream._shard(0)
    examples = [e for e in stream.step_batch(0).questions if e.task == "relational"]
    samples = [shard.dataset[i] for i in shard.pools["relational"][:12]]
    assert len(examples) == len(samples) == 12
    for example, sample in zip(examples, samples, strict=True):
        assert example.question == "Where is" + sample.question.removeprefix("Is")
        body = sample.question.removeprefix("Is the ").removesuffix("?")
        relation = next(r for r in _RELATIONS if f" {r} the " in body)
        subject, reference = body.split(f" {relation} the ")
        cells = {o.category: o.cell for o in shard.dataset.scenes[sample.image_name].objects}
        assert example.target == f"{cells[subject][0]} {cells[subject][1]}"
        axis, sign = _RELATIONS[relation]
        assert sign * (cells[reference][axis] - cells[subject][axis]) > 0  # the clause is true


def test_relational_question_and_subject_parsing() -> None:
    spatial = "Is the red cross left of the blue circle?"
    assert relational_question(spatial) == "Where is the red cross left of the blue circle?"
    categories = ("red cross", "blue circle")
    assert spatial_subject(spatial, categories) == "red cross"
    with pytest.raises(DataError, match=r"'How many red crosses are there\?' is not a spatial"):
        relational_question("How many red crosses are there?")
    with pytest.raises(DataError, match=r"not a spatial question about one of 2 categories"):
        spatial_subject("Is the green cross left of the blue circle?", categories)
