"""Reference statistics for ablations: means and resample pools computed on a reference dataset."""

from collections.abc import Iterable

import torch
from jaxtyping import Float
from torch import Tensor

from ..core import GraphError, Site
from ..models import VLM, VlmInputs
from ._execute import ExecutionConfig, run_graph
from ._graph import graph
from ._nodes import Capture, MeanAblate, ResampleAblate


def reference_pool(
    vlm: VLM, site: Site, batches: Iterable[VlmInputs], config: ExecutionConfig | None = None
) -> Float[Tensor, "n ..."]:
    """The site's selected value on every row of `batches`, stacked (one capture graph per batch).

    Raises:
      GraphError: `batches` is empty or holds something other than `VlmInputs`, or the site does
        not fit the model.
    """
    capture = graph(Capture(site=site, name="value"))
    if isinstance(batches, VlmInputs):
        batches = [batches]  # one batch is a reference dataset of one batch
    values = []
    for index, batch in enumerate(batches):
        if not isinstance(batch, VlmInputs):
            raise GraphError(
                f"reference batch {index} is {type(batch).__name__}, not VlmInputs. Pass batches "
                "encoded with vlm.encode(images, questions)."
            )
        values.append(run_graph(vlm, capture, batch, config)["value"])
    if not values:
        raise GraphError(
            "A reference dataset needs at least one batch; got none. Pass a list of batches "
            "encoded with vlm.encode."
        )
    return torch.cat(values)


def mean_ablation(
    vlm: VLM, site: Site, batches: Iterable[VlmInputs], *, run: str = "main"
) -> MeanAblate:
    """A `MeanAblate` node whose mean is the site's average over the reference `batches`."""
    pool = reference_pool(vlm, site, batches)
    return MeanAblate(site=site, mean=pool.mean(dim=0), run=run)


def resample_ablation(
    vlm: VLM, site: Site, batches: Iterable[VlmInputs], *, seed: int = 0, run: str = "main"
) -> ResampleAblate:
    """A `ResampleAblate` node drawing from the site's values on the reference `batches`."""
    return ResampleAblate(site=site, pool=reference_pool(vlm, site, batches), seed=seed, run=run)
