"""The synthetic benchmark: sizes, balance, ground truth, negative sampling, determinism, files."""

import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vrp.core import ConfigError
from vrp.data import (
    POPE_SPLITS,
    SPLITS,
    QuestionDataset,
    SyntheticConfig,
    benchmark_stats,
    generate,
    generate_scenes,
    load_config,
    read_benchmark,
    render_scene,
    scene_caption,
    split_words,
    vocabulary,
    write_benchmark,
)

_SPATIAL = re.compile(r"^Is the (\w+ \w+) (left of|right of|above|below) the (\w+ \w+)\?$")
_COUNTING = re.compile(r"^How many (\w+) (\w+) are there\?$")


def test_default_sizes_and_balance() -> None:
    ds = generate()
    for split in POPE_SPLITS:
        answers = Counter(q.answer for q in ds.questions if q.split == split)
        assert answers == {"yes": 1500, "no": 1500}
    assert Counter(q.split for q in ds.questions) == {
        "random": 3000,
        "popular": 3000,
        "adversarial": 3000,
        "counting": 1000,
        "spatial": 1000,
    }
    assert Counter(q.answer for q in ds.questions if q.split == "spatial") == {
        "yes": 500,
        "no": 500,
    }
    assert ds.splits == SPLITS
    assert len(SyntheticConfig().categories) >= 12


def test_question_ids_run_from_one_and_questions_do_not_repeat(
    small_dataset: QuestionDataset,
) -> None:
    for split in small_dataset.splits:
        qs = [q for q in small_dataset.questions if q.split == split]
        assert [q.question_id for q in qs] == list(range(1, len(qs) + 1))
        assert len({(q.image_name, q.question) for q in qs}) == len(qs)


def test_pope_splits_share_yes_questions_and_negatives_are_absent(
    small_dataset: QuestionDataset,
) -> None:
    yes_sets = []
    for split in POPE_SPLITS:
        qs = [q for q in small_dataset.questions if q.split == split]
        for q in qs:
            present = small_dataset.scenes[q.image_name].categories
            assert (q.category in present) == (q.answer == "yes"), q
            assert q.question == f"Is there a {q.category} in the image?"
        yes_sets.append([(q.image_name, q.category) for q in qs if q.answer == "yes"])
    assert yes_sets[0] == yes_sets[1] == yes_sets[2]


def test_negative_strategies_differ_as_designed() -> None:
    ds = generate(SyntheticConfig(seed=1, n_per_split=600, n_counting=0, n_spatial=0))
    stats = {s.split: s for s in benchmark_stats(ds).splits}
    rand, pop, adv = stats["random"], stats["popular"], stats["adversarial"]
    assert adv.negative_cooccurrence is not None and rand.negative_cooccurrence is not None
    assert adv.negative_cooccurrence > 1.3 * rand.negative_cooccurrence
    assert pop.negative_frequency is not None and rand.negative_frequency is not None
    assert pop.negative_frequency > 1.3 * rand.negative_frequency


def test_counting_answers_come_from_the_scene(small_dataset: QuestionDataset) -> None:
    singular = {
        "circles": "circle",
        "squares": "square",
        "triangles": "triangle",
        "crosses": "cross",
    }
    for q in small_dataset.questions:
        if q.split == "counting":
            match = _COUNTING.match(q.question)
            assert match is not None, q.question
            category = f"{match[1]} {singular[match[2]]}"
            scene = small_dataset.scenes[q.image_name]
            assert q.label == sum(o.category == category for o in scene.objects)


def test_spatial_answers_come_from_the_grid(small_dataset: QuestionDataset) -> None:
    for q in small_dataset.questions:
        if q.split != "spatial":
            continue
        match = _SPATIAL.match(q.question)
        assert match is not None, q.question
        scene = small_dataset.scenes[q.image_name]
        (a,) = [o for o in scene.objects if o.category == match[1]]  # named objects are unique
        (b,) = [o for o in scene.objects if o.category == match[3]]
        truth = {
            "left of": a.cell[1] < b.cell[1],
            "right of": a.cell[1] > b.cell[1],
            "above": a.cell[0] < b.cell[0],
            "below": a.cell[0] > b.cell[0],
        }[match[2]]
        assert q.answer == ("yes" if truth else "no")


def test_scenes_follow_the_config(small_config: SyntheticConfig) -> None:
    for scene in generate_scenes(small_config):
        cells = [o.cell for o in scene.objects]
        assert len(set(cells)) == len(cells)  # at most one object per cell
        assert small_config.min_objects <= len(scene.objects) <= small_config.max_objects
        assert len(scene.categories) >= small_config.positives_per_scene
        assert [o.size for o in scene.objects] == sorted(
            (o.size for o in scene.objects), reverse=True
        )


def test_every_token_is_in_the_vocabulary() -> None:
    config = SyntheticConfig(
        n_per_split=60,
        n_counting=20,
        n_spatial=20,
        colours=("orange", "cyan", "white"),
        shapes=("ring", "diamond", "cross", "square"),
        max_objects=5,
    )
    words = set(vocabulary(config))
    ds = generate(config)
    texts = [t for q in ds.questions for t in (q.question, q.answer)]
    texts += [scene_caption(s) for s in ds.scenes.values()]
    missing = {w for t in texts for w in split_words(t)} - words
    assert not missing
    assert "an" in words and "rings" in words
    assert set(vocabulary()) >= {"Is", "there", "?", "empty", ",", "yes", "no", "0"}


def test_caption_lists_cells_in_reading_order(small_dataset: QuestionDataset) -> None:
    scene = next(iter(small_dataset.scenes.values()))
    parts = scene_caption(scene).split(" , ")
    assert len(parts) == scene.grid * scene.grid
    for obj in scene.objects:
        assert parts[obj.cell[0] * scene.grid + obj.cell[1]] == obj.category
    assert parts.count("empty") == scene.grid * scene.grid - len(scene.objects)


def test_objects_are_drawn_where_the_scene_graph_says() -> None:
    config = SyntheticConfig(n_per_split=60, n_counting=4, n_spatial=4, noise_std=0.0)
    checked = 0
    for scene in generate_scenes(config):
        pixels = np.asarray(render_scene(scene, config), dtype=int)
        for obj in scene.objects:
            if not obj.occluded:
                x0, y0, x1, y1 = obj.bbox
                centre = pixels[(y0 + y1) // 2, (x0 + x1) // 2]
                assert np.abs(centre - np.array(obj.fill)).max() <= 1, obj
                checked += 1
    assert checked > 10


@pytest.mark.parametrize(("size", "grid"), [(224, 4), (336, 6), (48, 3)])
def test_other_image_sizes(size: int, grid: int) -> None:
    config = SyntheticConfig(
        image_size=size,
        grid=grid,
        n_per_split=6,
        n_counting=2,
        n_spatial=2,
        max_objects=min(6, grid * grid),
    )
    ds = generate(config)
    sample = ds[0]
    assert sample.image.size == (size, size) and sample.scene is not None
    for obj in sample.scene.objects:
        assert 0 <= obj.bbox[0] <= obj.bbox[2] < size and 0 <= obj.bbox[1] <= obj.bbox[3] < size


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    config = SyntheticConfig(seed=11, n_per_split=24, n_counting=8, n_spatial=8)
    first = _tree(write_benchmark(config, tmp_path / "a"))
    second = _tree(write_benchmark(config, tmp_path / "b"))
    assert first == second and len(first) > 5
    other = _tree(
        write_benchmark(
            SyntheticConfig(seed=12, n_per_split=24, n_counting=8, n_spatial=8), tmp_path / "c"
        )
    )
    assert other != first


def _tree(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def test_written_benchmark_reads_back_as_generated(
    small_folder: Path, small_dataset: QuestionDataset, small_config: SyntheticConfig
) -> None:
    ds = read_benchmark(small_folder)
    assert ds.questions == small_dataset.questions
    assert dict(ds.scenes) == dict(small_dataset.scenes)
    assert load_config(small_folder) == small_config
    for i in (0, len(ds) - 1):
        assert np.array_equal(np.asarray(ds[i].image), np.asarray(small_dataset[i].image))
    png = (small_folder / "images" / ds.questions[0].image_name).read_bytes()
    assert b"tIME" not in png and b"tEXt" not in png


def test_written_files_are_pope_format(small_folder: Path) -> None:
    line = (small_folder / "pope_adversarial.jsonl").read_text().splitlines()[0]
    assert re.fullmatch(
        r'\{"question_id": 1, "image": "scene_\d{6}\.png", "text": "Is there an? [a-z ]+ in the '
        r'image\?", "label": "(yes|no)"\}',
        line,
    )


def test_failed_write_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []

    def broken_render(*args: object) -> Image.Image:
        calls.append(1)
        if len(calls) > 2:
            raise OSError("disk full")
        return Image.new("RGB", (64, 64))

    monkeypatch.setattr("vrp.data._synthetic.render_scene", broken_render)
    with pytest.raises(
        ConfigError, match=r"cannot write the benchmark to .*x: disk full\. Nothing"
    ):
        write_benchmark(SyntheticConfig(n_per_split=24, n_counting=8, n_spatial=8), tmp_path / "x")
    assert list(tmp_path.iterdir()) == []


def test_failed_write_removes_the_parent_folders_it_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_render(*args: object) -> Image.Image:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("vrp.data._synthetic.render_scene", broken_render)
    with pytest.raises(ConfigError, match=r"a/b/c: No space left on device\. Nothing was written"):
        write_benchmark(
            SyntheticConfig(n_per_split=2, n_counting=0, n_spatial=0), tmp_path / "a/b/c"
        )
    assert list(tmp_path.iterdir()) == []


def test_overwrite_rules(tmp_path: Path) -> None:
    config = SyntheticConfig(n_per_split=12, n_counting=4, n_spatial=4)
    out = write_benchmark(config, tmp_path / "b")
    with pytest.raises(ConfigError, match=r"already holds a benchmark. Pass overwrite=True"):
        write_benchmark(config, out)
    write_benchmark(
        SyntheticConfig(seed=5, n_per_split=12, n_counting=4, n_spatial=4), out, overwrite=True
    )
    assert load_config(out).seed == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match=r"is not a benchmark folder; refusing"):
        write_benchmark(config, tmp_path / "home", overwrite=True)
    assert (tmp_path / "home" / "notes.txt").read_text() == "keep me"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_per_split": 7}, r"n_per_split must be even and >= 2"),
        (
            {"colours": ("red", "mauve")},
            r"colours must be distinct names from .*Unknown: \['mauve'\]",
        ),
        ({"shapes": ("circle", "circle")}, r"shapes must be distinct"),
        ({"image_size": 20, "grid": 4}, r"cells must be at least 8 px"),
        ({"max_objects": 17}, r"max_objects <= grid\*grid"),
        ({"colours": ("red",), "shapes": ("circle", "square", "cross")}, r"theme_size <= 3"),
        ({"size_range": (0.1, 1.0)}, r"size_range must satisfy"),
        ({"n_spatial": 3}, r"n_spatial must be even"),
    ],
)
def test_config_errors(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        SyntheticConfig(**kwargs)  # type: ignore[arg-type]


def test_too_many_spatial_questions_for_the_scenes() -> None:
    # one category per scene, repeated: no object can be named as "the X"
    config = SyntheticConfig(
        n_per_split=6,
        n_counting=0,
        n_spatial=20,
        positives_per_scene=1,
        min_objects=2,
        max_objects=2,
        repeat_prob=1.0,
    )
    with pytest.raises(ConfigError, match=r"the 10 scenes offer only 0 distinct spatial questions"):
        generate(config)


def test_same_bytes_across_interpreters(tmp_path: Path) -> None:
    """Set iteration order changes with PYTHONHASHSEED; the files must not."""
    config = "SyntheticConfig(seed=11, n_per_split=24, n_counting=8, n_spatial=8)"
    code = f"from vrp.data import SyntheticConfig, write_benchmark; write_benchmark({config}, {str(tmp_path / 'sub')!r})"
    env = {**os.environ, "PYTHONHASHSEED": "123", "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=120)
    here = write_benchmark(
        SyntheticConfig(seed=11, n_per_split=24, n_counting=8, n_spatial=8), tmp_path / "here"
    )
    assert _tree(tmp_path / "sub") == _tree(here)


def test_cached_images_are_copies(small_dataset: QuestionDataset) -> None:
    first = small_dataset[0].image
    first.paste((128, 128, 128), (0, 0, first.size[0], first.size[1]))
    assert small_dataset[0].image.getpixel((5, 5)) != (128, 128, 128)
