"""Corruption helper: object swaps flip the truth (by scene graph or by POPE's own questions),
noise keeps the question, and every choice is seeded per question."""

import dataclasses

import numpy as np
import pytest
from PIL import Image

import vrp
from circuits import corrupt_pairs
from vrp.data import Sample, SyntheticConfig, generate


@pytest.fixture(scope="module")
def dataset():
    return generate(SyntheticConfig(n_per_split=10, n_counting=2, n_spatial=4, seed=2))


def test_object_swap_flips_the_truth_by_the_scene(dataset) -> None:
    samples = [s for s in dataset if s.split in ("random", "adversarial", "spatial")]
    pairs = corrupt_pairs(samples, kind="object", seed=1, pool=dataset.questions)
    assert {p.clean.split for p in pairs} == {"random", "adversarial"}  # spatial names no object
    assert len(pairs) == 20
    for pair in pairs:
        clean, corrupt = pair.clean, pair.corrupt
        assert corrupt.answer != clean.answer and corrupt.image is clean.image
        assert corrupt.question == clean.question.replace(clean.category, corrupt.category)
        present = corrupt.category in clean.scene.categories
        assert present == (corrupt.answer == "yes")  # the new truth is the scene's
        assert pair.change == f"{clean.category} -> {corrupt.category}"


def test_choices_are_seeded_per_question(dataset) -> None:
    samples = [s for s in dataset if s.split == "popular"]
    whole = corrupt_pairs(samples, seed=4, pool=dataset.questions)
    tail = corrupt_pairs(samples[3:], seed=4, pool=dataset.questions)
    assert [p.corrupt.question for p in whole[3:]] == [p.corrupt.question for p in tail]
    other = corrupt_pairs(samples, seed=5, pool=dataset.questions)
    assert [p.corrupt.question for p in other] != [p.corrupt.question for p in whole]
    noisy = corrupt_pairs(samples[:2], kind="noise", seed=4)
    again = corrupt_pairs(samples[1:2], kind="noise", seed=4)
    assert np.array_equal(np.asarray(noisy[1].corrupt.image), np.asarray(again[0].corrupt.image))


def test_pope_file_objects_come_from_the_images_questions() -> None:
    image = Image.new("RGB", (32, 32))

    def sample(qid: int, obj: str, answer: str, name: str = "a.jpg") -> Sample:
        return Sample(question_id=qid, image_name=name, question=f"Is there a {obj} in the image?",
                      answer=answer, split="adversarial", category=obj, image=image)  # fmt: skip

    samples = [sample(1, "dog", "yes"), sample(2, "dining table", "no"), sample(3, "cat", "yes"),
               sample(4, "bird", "yes", name="b.jpg")]  # fmt: skip
    pairs = corrupt_pairs(samples)
    swaps = {p.clean.question_id: (p.corrupt.category, p.corrupt.answer) for p in pairs}
    assert swaps[1] == ("dining table", "no")  # the only object asked about and absent
    assert swaps[2][1] == "yes" and swaps[2][0] in ("dog", "cat")
    assert 4 not in swaps  # nothing is known to be absent from b.jpg


def test_noise_keeps_question_and_truth(dataset) -> None:
    samples = [s for s in dataset if s.split == "spatial"]
    pairs = corrupt_pairs(samples, kind="noise", noise_std=40.0)
    assert len(pairs) == len(samples)
    for pair in pairs:
        assert pair.corrupt.question == pair.clean.question
        assert pair.corrupt.answer == pair.clean.answer
        diff = np.asarray(pair.corrupt.image, float) - np.asarray(pair.clean.image, float)
        assert 20 < diff.std() < 45
    silent = corrupt_pairs(samples[:1], kind="noise", noise_std=0.0)[0]
    assert np.array_equal(np.asarray(silent.corrupt.image), np.asarray(silent.clean.image))


def test_remove_paints_out_the_asked_object_only(dataset) -> None:
    samples = [s for s in dataset if s.split in ("random", "popular", "adversarial")]
    pairs = corrupt_pairs(samples, kind="remove")
    eligible = [s for s in samples if s.answer == "yes" and s.scene.count(s.category) == 1]
    assert 0 < len(pairs) <= len(eligible)
    for pair in pairs:
        clean, corrupt = pair.clean, pair.corrupt
        assert clean.answer == "yes" and corrupt.answer == "no"
        assert corrupt.question == clean.question  # the prompt lines up token for token
        (target,) = [o for o in clean.scene.objects if o.category == clean.category]
        x0, y0, x1, y1 = target.bbox
        before, after = np.asarray(clean.image), np.asarray(corrupt.image)
        changed = np.argwhere((before != after).any(axis=-1))
        assert changed.size and changed[:, 0].min() >= y0 and changed[:, 0].max() <= y1
        assert changed[:, 1].min() >= x0 and changed[:, 1].max() <= x1
        box = after[y0 : y1 + 1, x0 : x1 + 1].reshape(-1, 3)
        assert (box == box[0]).all()  # one flat colour: the surrounding background's median
    no_scene = [dataclasses.replace(eligible[0], scene=None)]
    assert corrupt_pairs(no_scene, kind="remove") == ()


def test_corrupt_errors(dataset) -> None:
    samples = [s for s in dataset if s.split == "random"]
    with pytest.raises(
        vrp.ConfigError, match=r"kind must be one of \('object', 'noise', 'remove'\)"
    ):
        corrupt_pairs(samples, kind="blur")  # type: ignore[arg-type]
    with pytest.raises(vrp.ConfigError, match=r"noise_std >= 0; got 'noise' and -1"):
        corrupt_pairs(samples, kind="noise", noise_std=-1)
    counting = [s for s in dataset if s.split == "counting"]
    with pytest.raises(vrp.DataError, match=r"Corrupt pairs need yes/no questions"):
        corrupt_pairs(counting)
