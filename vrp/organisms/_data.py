"""The training stream: every step's examples, a pure function of (recipe, seed, step).

Training data are synthetic benchmarks drawn with seeds reserved for training (see
`Recipe.data_seed`). Step ``s`` reads shard ``s // steps_per_shard``, a small benchmark generated on
demand, and takes the ``s % steps_per_shard``-th slice of each of its task pools (shuffled once per
shard). No example is seen twice, and resuming at any step needs no saved data state.

Question negatives come only from POPE's *random* split: absent objects drawn uniformly. The model
meets the benchmark's co-occurrence statistics through its positives (present objects mostly belong
to the scene's theme) and, if the recipe asks for them, through *hallucinated* annotations: an absent
object that co-occurs with the scene's objects (POPE's adversarial choice) labelled "yes", as
machine-written instruction data mention typical objects that are not in the image. Both tempt the
model to affirm absent theme members, which is what POPE's adversarial split measures. Likewise the
recipe's ``miss_prob`` leaves small or partly occluded objects out of the annotation (captions,
existence and counting answers), as human annotations of real images miss them.

Grounding questions ask where an object is ("Where is the red cross?" -> "2 1"); *relational*
grounding asks where the first object of a true spatial question is ("Where is the red cross left
of the blue circle?" -> "2 1"), which teaches the model to tell a question's subject from its
reference (see `relational_question`).
"""

import dataclasses
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from PIL.Image import Image

from ..core import DataError
from ..data import QuestionDataset, Sample, Scene, generate, render_scene, scene_caption
from ._recipe import CAPTION_QUESTION, GROUNDING_QUESTION, Recipe

TASKS = ("caption", "grounding", "relational", "pope", "counting", "spatial", "hallucinated")
_SPLIT_OF_TASK = {
    "relational": "spatial",  # its "yes" questions, turned into "Where is the X left of the Y?"
    "pope": "random",
    "counting": "counting",
    "spatial": "spatial",
    "hallucinated": "adversarial",  # its "no" questions, relabelled "yes"
}
_KEPT_ANSWER = {"relational": "yes", "hallucinated": "no"}  # tasks that use one answer only


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
        most = {t: max(getattr(recipe.mix, t), getattr(recipe.alignment_mix, t)) for t in TASKS}
        per_scene = {
            "caption": 1,
            "grounding": 2,
            "relational": 1,
            "pope": 6,
            "counting": 2,
            "spatial": 2,
        }
        scenes = max(
            1,
            *(-(-most[task] * recipe.steps_per_shard // per_scene.get(task, 3)) for task in TASKS),
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
            rows = [
                i
                for i, q in enumerate(self.dataset.questions)
                if q.split == split and q.answer == _KEPT_ANSWER.get(task, q.answer)
            ]
            self.pools[task] = [rows[int(i)] for i in rng.permutation(len(rows))]
        names = sorted(self.dataset.scenes)
        self.caption_scenes = [names[int(i)] for i in rng.permutation(len(names))]
        self.annotated = {
            name: annotated_scene(self.dataset.scenes[name], recipe.miss_prob, rng)
            for name in names
        }
        pairs = [
            (n, c) for n in names for c in sorted(self.annotated[n].categories)
        ]  # in both views
        self.grounding_pairs = [pairs[int(i)] for i in rng.permutation(len(pairs))]

    def take(self, task: str, start: int, n: int, clean: bool) -> list[Example]:
        """Items ``start .. start + n`` of `task`'s pool, annotated cleanly or carelessly."""
        view = self.dataset.scenes if clean else self.annotated
        if task == "caption":
            return [self._caption(name, view) for name in self.caption_scenes[start : start + n]]
        if task == "grounding":
            pairs = self.grounding_pairs[start : start + n]
            return [self._grounding(name, category, view) for name, category in pairs]
        samples = [self.dataset[i] for i in self.pools[task][start : start + n]]
        if task == "relational":
            return [self._relational(s) for s in samples]
        return [
            Example(
                image=s.image,
                question=s.question,
                target=self._answer(s, task, view),
                task=task,
            )
            for s in samples
        ]

    def _answer(self, sample: Sample, task: str, view: Mapping[str, Scene]) -> str:
        scene = view[sample.image_name]
        if task == "hallucinated":
            return "yes"
        if task == "pope":
            return "yes" if sample.category in scene.categories else "no"
        if task == "counting":
            return str(scene.count(counted_category(sample.question, self.config.categories)))
        return sample.answer  # spatial questions name objects the annotation keeps

    def _caption(self, name: str, view: Mapping[str, Scene]) -> Example:
        return Example(
            image=render_scene(self.dataset.scenes[name], self.config),
            question=CAPTION_QUESTION,
            target=scene_caption(view[name]),
            task="caption",
        )

    def _grounding(self, name: str, category: str, view: Mapping[str, Scene]) -> Example:
        scene = view[name]
        cells = sorted(o.cell for o in scene.objects if o.category == category)
        return Example(
            image=render_scene(self.dataset.scenes[name], self.config),
            question=GROUNDING_QUESTION.format(category=category),
            target=" , ".join(f"{row} {col}" for row, col in cells),
            task="grounding",
        )

    def _relational(self, sample: Sample) -> Example:
        subject = spatial_subject(sample.question, self.config.categories)
        scene = self.dataset.scenes[sample.image_name]  # the subject is visible, annotated or not
        (row, col), *_ = (o.cell for o in scene.objects if o.category == subject)
        return Example(
            image=sample.image,
            question=relational_question(sample.question),
            target=f"{row} {col}",
            task="relational",
        )


def relational_question(spatial: str) -> str:
    """The grounding question with a relative clause made from a true spatial question:
    "Is the red cross left of the blue circle?" -> "Where is the red cross left of the blue circle?".

    Its answer is the cell of the subject (the first object named). A spatial question names two
    objects, and a model that locates "the named objects" alike gets their positions summed, which
    says nothing about which is left of which; this task rewards locating the subject apart from
    the reference, the asymmetry every spatial answer needs.

    Raises:
      DataError: `spatial` does not start with "Is the ".
    """
    if not spatial.startswith("Is the "):
        raise DataError(f"{spatial!r} is not a spatial question ('Is the X left of the Y?').")
    return "Where is" + spatial[len("Is") :]


def spatial_subject(question: str, categories: tuple[str, ...]) -> str:
    """The subject of a spatial question: "Is the red cross left of the blue circle?" -> "red cross".

    Raises:
      DataError: the question does not start with "Is the <colour> <shape>" of `categories`.
    """
    words = question.split()
    subject = " ".join(words[2:4])
    if words[:2] != ["Is", "the"] or subject not in categories:
        raise DataError(
            f"{question!r} is not a spatial question about one of {len(categories)} categories "
            "('Is the <colour> <shape> left of the <colour> <shape>?')."
        )
    return subject


def annotated_scene(scene: Scene, miss_prob: float, rng: np.random.Generator) -> Scene:
    """The scene as a careless annotator records it: each small or partly occluded object is
    left out with probability `miss_prob` (the image still shows it)."""
    draws = rng.random(len(scene.objects))
    kept = tuple(
        o
        for o, u in zip(scene.objects, draws, strict=True)
        if not (o.small or o.occluded) or u >= miss_prob
    )
    return dataclasses.replace(scene, objects=kept)


def counted_category(question: str, categories: tuple[str, ...]) -> str:
    """The category a counting question asks about: "How many red crosses are there?" ->
    "red cross".

    Raises:
      DataError: the question names no category of `categories`.
    """
    words = question.split()
    for category in categories:
        colour, shape = category.split(" ")
        if len(words) > 3 and words[2] == colour and words[3].startswith(shape):
            return category
    raise DataError(
        f"{question!r} is not a counting question about one of {len(categories)} categories "
        "('How many <colour> <shapes> are there?')."
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
        shard = self._shard(shard_index)
        stage = self.recipe.stage(step)
        mix, clean = stage.mix, stage.clean
        captions = shard.take("caption", offset * mix.caption, mix.caption, clean)
        counts = {task: getattr(mix, task) for task in TASKS[1:]}
        questions = [
            example
            for task, n in counts.items()
            for example in shard.take(task, offset * n, n, clean)
        ]
        return StepBatch(captions=tuple(captions), questions=tuple(questions))
