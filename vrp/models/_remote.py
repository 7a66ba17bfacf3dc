"""How a VRP model names itself to a remote server: by the name it was loaded under.

nnsight identifies the model of a remote trace by a key, ``"<wrapper class>:<json>"`` whose JSON
holds the Hub ``repo_id`` (canonicalised through the Hub). VRP's built-in models (``tiny/llava``,
``organism/llava``) and local checkpoints have no Hub id, so `NamedTransformersModel` puts the
name `vrp.load` was given in ``repo_id`` instead, which is how `vrp serve` knows the models it
hosts. Hub ids keep nnsight's own key, so the same model also reaches NDIF. The key names the
plain ``TransformersModel`` class: to a server, a VRP model is an ordinary nnsight model.
"""

import json
from typing import Any

from nnsight.modeling.transformers import TransformersModel

_BUILTIN_PREFIXES = ("tiny/", "organism/")


def is_hub_id(name: str) -> bool:
    """Whether `name` reads as a Hub repo id ('owner/name') rather than a built-in name or path."""
    return (
        name.count("/") == 1
        and not name.startswith(_BUILTIN_PREFIXES)
        and not name.startswith(("/", ".", "~"))
    )


class NamedTransformersModel(TransformersModel):
    """nnsight's `TransformersModel`, keyed for remote execution by its VRP name.

    Args:
      model: the transformers model.
      name: the name `vrp.load` was given (a built-in name, a directory or a Hub id).
      **kwargs: passed to `TransformersModel`.
    """

    def __init__(self, model: Any, *, name: str, **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        self.vrp_name = name

    def _remoteable_class(self) -> type:
        return TransformersModel

    def _remoteable_model_key(self) -> str:
        if is_hub_id(self.vrp_name):
            return super()._remoteable_model_key()
        from transformers.pipelines import TASK_ALIASES

        from .. import __version__

        task = TASK_ALIASES.get(self.task, self.task)
        data = {"repo_id": self.vrp_name, "revision": None, "task": task, "vrp": __version__}
        return json.dumps(data)
