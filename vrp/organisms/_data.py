"""The training stream: every step's examples, a pure function of (recipe, seed, step).

Training data are synthetic benchmarks drawn with seeds reserved for training (see
`Recipe.data_seed`). Step ``s`` reads shard ``s // steps_per_shard``, a small benchmark generated on
demand, and takes the ``s % steps_per_shard``-th slice of each of its task pools (shuffled once per
shard). No example is seen twice, and resuming at any step needs no saved data state.

Question negatives come only from POPE's *random* split: absent objects drawn uniformly. The model
therefore meets the benchmark's co-occurrence statistics only through its positives (present objects
mostly belong to the scene's theme), which is what tempts it to hallucinate theme members on POPE's
adversarial split, as real VLMs do.
"""

import dataclasses
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
from PIL.Image import Image

from ..data import QuestionDataset, generate, render_scene, scene_caption
from ._recipe import CAPTION_QUESTION, Recipe

TASKS = ("caption", "pope", "counting", "spatial")
_SPLIT_OF_TASK = {"pope": "random", "counting": "counting", "spatial": "spatial"}


@dataclass(frozen=True, kw_only=True)
class Example:
    """One training example: an image, a question and the exact text the model must answer."""

    image: Image
    question: str
    target: str  # the answer ("yes", "no", a digit) or the caption
    task: str  # one of TASKS


@dataclass(frozen=True, kw_only=True)
class StepBatch:
    """The examples of one training step, split into the two sub-batches the model runs."""

    captions: tuple[Example, ...]
    questions: tuple[Example, ...]


class _Shard:
    """One generated benchmark and, per task, a fixed shuffle of its usable items."""

    def __init__(self, recipe: Recipe, seed: int, shard: int) -> None:
        scenes = recipe.mix.caption * recipe.steps_per_shard
        scenes = max(
            scenes,
            -(-recipe.mix.pope * recipe.steps_per_shard // 6),
            -(-recipe.mix.counting * recipe.steps_per_shard // 2),
            -(-recipe.mix.spatial * recipe.steps_per_shard // 2),
            1,
        )
        config = dataclasses.replace(
            recipe.data,
            seed=recipe.data_seed(seed, shard),
            n_per_split=6 * scenes,  # 3 present + 3 absent objects asked per scene
            n_counting=2 * scenes,
            n_spatial=2 * scenes,
        )
        self.config = config
        self.dataset: QuestionDataset = generate(config, cache_size=scenes)
        rng = np.random.default_rng([seed, shard])
        self.pools: dict[str, list[int]] = {}
        for task, split in _SPLIT_OF_TASK.items():
            rows = [i for i, q in enumerate(self.dataset.questions) if q.split == split]
            self.pools[task] = [rows[int(i)] for i in rng.permutation(len(rows))]
        names = sorted(self.dataset.scenes)
        self.caption_scenes = [names[int(i)] for i in rng.permutation(len(names))]

    def take(self, task: str, start: int, n: int) -> list[Example]:
        if task == "caption":
            return [self._caption(name) for name in self.caption_scenes[start : start + n]]
        samples = [self.dataset[i] for i in self.pools[task][start : start + n]]
        return [
            Example(image=s.image, question=s.question, target=s.answer, task=task) for s in samples
        ]

    def _caption(self, name: str) -> Example:
        scene = self.dataset.scenes[name]
        return Example(
            image=render_scene(scene, self.config),
            question=CAPTION_QUESTION,
            target=scene_caption(scene),
            task="caption",
        )


class TrainingStream:
    """Serves `step_batch(step)` for one (recipe, seed), keeping the current shard in memory.

    Args:
      recipe: the recipe (its mix, shard length and scene design are used).
      seed: the training seed; shard seeds derive from it.
    """

    def __init__(self, recipe: Recipe, seed: int) -> None:
        self.recipe = recipe
        self.seed = seed
        self._shards: OrderedDict[int, _Shard] = OrderedDict()

    def _shard(self, index: int) -> _Shard:
        if index not in self._shards:
            self._shards[index] = _Shard(self.recipe, self.seed, index)
            if len(self._shards) > 1:
                self._shards.popitem(last=False)
        return self._shards[index]

    def step_batch(self, step: int) -> StepBatch:
        """The examples of training step `step` (0-based)."""
        shard_index, offset = divmod(step, self.recipe.steps_per_shard)
        shard, mix = self._shard(shard_index), self.recipe.mix
        captions = shard.take("caption", offset * mix.caption, mix.caption)
        questions = [
            example
            for task, n in (
                ("pope", mix.pope),
                ("counting", mix.counting),
                ("spatial", mix.spatial),
            )
            for example in shard.take(task, offset * n, n)
        ]
        return StepBatch(captions=tuple(captions), questions=tuple(questions))
