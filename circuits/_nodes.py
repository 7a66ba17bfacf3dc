"""Circuit nodes and circuits: which component outputs, at which position group, carry an effect.

A node is one component's output (an attention output, one head's output, or an MLP output) at
one layer and one position group ("answer", "question" or "image", as in `patch_pairs`). A
circuit is a set of nodes kept out of a larger universe: running the clean prompt with every
other node of the universe patched from the corrupted prompt ("keep the circuit, ablate the
rest") tests whether the circuit alone carries the clean behaviour. Both serialise to JSON, and a
circuit becomes an intervention graph for any batch of one token layout.

`variant_metrics` is the engine shared by discovery and hypothesis tests: it runs the clean rows
once per variant, each with its own set of nodes patched from the corrupted rows, many variants
per trace.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from jaxtyping import Float
from torch import Tensor

from vrp import Component, ConfigError, Site, Tower
from vrp.interventions import Graph, GraphPool, Job, Patch, run_jobs
from vrp.models import VLM, VlmInputs

from ._pairs import POSITION_GROUPS, PositionGroup, _layout, _positions
from ._sweep import Metric

NODE_COMPONENTS = (Component.ATTN_OUT, Component.HEAD_OUT, Component.MLP_OUT)


@dataclass(frozen=True, kw_only=True)
class Node:
    """One component output at one layer and position group.

    Attributes:
      layer: the language layer.
      component: attention output, head output (with `head`) or MLP output.
      positions: the position group: "answer", "question" or "image".
      head: the head of a head-output node; None otherwise.

    Raises:
      ConfigError: another component, an unknown group, or a head that does not fit the
        component.
    """

    layer: int
    component: Component
    positions: PositionGroup
    head: int | None = None

    def __post_init__(self) -> None:
        if self.component not in NODE_COMPONENTS or self.positions not in POSITION_GROUPS:
            raise ConfigError(
                f"a circuit node is one of {[c.value for c in NODE_COMPONENTS]} at a group of "
                f"{POSITION_GROUPS}; got {self.component!r} at {self.positions!r}."
            )
        if (self.component is Component.HEAD_OUT) != (self.head is not None):
            raise ConfigError(
                f"a head-output node names its head and no other node does; got "
                f"{self.component.value} with head={self.head!r}."
            )

    def __str__(self) -> str:
        what = f"head{self.head}" if self.head is not None else self.component.value
        return f"L{self.layer}.{what}@{self.positions}"

    def site(self, layout: tuple[bool, ...]) -> Site | None:
        """The node's site for rows of `layout` (image flags of the real tokens); None when its
        group is empty there (a prompt without question tokens)."""
        positions = _positions(self.positions, layout)
        if positions is None:
            return None
        heads = None if self.head is None else (self.head,)
        return Site(layer=self.layer, component=self.component, heads=heads, positions=positions)

    def to_json(self) -> dict[str, Any]:
        return {"layer": self.layer, "component": self.component.value,
                "positions": self.positions, "head": self.head}  # fmt: skip

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> "Node":
        """A node from `to_json`'s dict.

        Raises:
          ConfigError: a missing or malformed field.
        """
        try:
            return cls(layer=int(value["layer"]), component=Component(value["component"]),
                       positions=value["positions"], head=value.get("head"))  # fmt: skip
        except (KeyError, TypeError, ValueError) as err:
            raise ConfigError(
                f"a circuit node needs layer, component, positions (and head for head outputs); "
                f"got {dict(value)!r} ({err})."
            ) from None


def universe(
    vlm: VLM,
    *,
    components: Sequence[Component] = (Component.ATTN_OUT, Component.MLP_OUT),
    groups: Sequence[PositionGroup] = POSITION_GROUPS,
) -> tuple[Node, ...]:
    """Every node of the language model for `components` (head outputs expand to one node per
    head) and `groups`, in layer order.

    Raises:
      ConfigError: a component that is not a node component, or an unknown group.
    """
    n_heads = vlm.adapter.shape(Tower.LANGUAGE).n_heads
    nodes = []
    for layer in range(vlm.adapter.n_layers):
        for component in components:
            heads: list[int | None] = (
                list(range(n_heads)) if component is Component.HEAD_OUT else [None]
            )
            for head in heads:
                nodes += [Node(layer=layer, component=component, positions=g, head=head)
                          for g in groups]  # fmt: skip
    return tuple(nodes)


@dataclass(frozen=True, kw_only=True)
class Circuit:
    """Nodes kept out of a universe: "keep the circuit, ablate the rest".

    Attributes:
      nodes: the kept nodes.
      universe: every candidate node (the rest are ablated by patching from the corrupted run).
      faithfulness: the share of the clean behaviour the circuit alone keeps, where measured.
    """

    nodes: tuple[Node, ...]
    universe: tuple[Node, ...]
    faithfulness: float | None = None

    def __post_init__(self) -> None:
        outside = [str(n) for n in self.nodes if n not in self.universe]
        if outside:
            raise ConfigError(f"circuit nodes {outside} are not in its universe.")

    @property
    def ablated(self) -> tuple[Node, ...]:
        """The universe's nodes outside the circuit."""
        kept = set(self.nodes)
        return tuple(n for n in self.universe if n not in kept)

    def graph(self, inputs: VlmInputs, *, run: str = "clean", source: str = "corrupt") -> Graph:
        """The intervention graph that keeps the circuit on rows of `inputs`' layout: every
        ablated node patched from run `source` into run `run`.

        Raises:
          ConfigError: the rows of `inputs` do not share one token layout.
        """
        layout = shared_layout(inputs)
        sites = [s for n in self.ablated if (s := n.site(layout)) is not None]
        nodes = tuple(Patch(site=s, source=source, run=run) for s in sites)
        return Graph(nodes=nodes, runs=(run, source))

    def to_json(self) -> dict[str, Any]:
        return {"format": "vrp-circuit", "version": 1, "faithfulness": self.faithfulness,
                "nodes": [n.to_json() for n in self.nodes],
                "universe": [n.to_json() for n in self.universe]}  # fmt: skip

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> "Circuit":
        """A circuit from `to_json`'s dict.

        Raises:
          ConfigError: not a circuit, or malformed nodes.
        """
        if not isinstance(value, Mapping) or value.get("format") != "vrp-circuit":
            raise ConfigError(
                "not a VRP circuit: expected a dict with format 'vrp-circuit' (Circuit.to_json)."
            )
        return cls(nodes=tuple(Node.from_json(n) for n in value["nodes"]),
                   universe=tuple(Node.from_json(n) for n in value["universe"]),
                   faithfulness=value.get("faithfulness"))  # fmt: skip


def shared_layout(inputs: VlmInputs) -> tuple[bool, ...]:
    """The token layout every row of `inputs` shares.

    Raises:
      ConfigError: rows differ in layout (group them first, as `patch_pairs` does).
    """
    layouts = {_layout(inputs, i) for i in range(inputs.batch_size)}
    if len(layouts) != 1:
        raise ConfigError(
            f"node patching needs rows of one token layout; these {inputs.batch_size} rows have "
            f"{len(layouts)}. Group the rows by layout (same prompt length and image position)."
        )
    return layouts.pop()


def variant_metrics(
    vlm: VLM,
    clean: VlmInputs,
    corrupt: VlmInputs,
    variants: Mapping[str, Sequence[Node]],
    metric: Metric,
    *,
    runs_per_trace: int = 16,
    pool: GraphPool | None = None,
) -> dict[str, Float[Tensor, " batch"]]:
    """The metric of the clean rows under each variant (its nodes patched from the corrupted
    rows), and of the plain "clean" and "corrupt" runs; `runs_per_trace` variants share a trace,
    and the traces run on `pool` (e.g. `RayGraphPool`) when one is given.

    Raises:
      ConfigError: rows of several layouts, or a variant named "clean" or "corrupt".
    """
    layout = shared_layout(clean)
    if {"clean", "corrupt"} & set(variants):
        raise ConfigError("variant names 'clean' and 'corrupt' are reserved for the plain runs.")
    names = list(variants)
    jobs: list[Job] = []
    for start in range(0, max(len(names), 1), runs_per_trace):
        chunk = names[start : start + runs_per_trace]
        nodes = [Patch(site=s, source="corrupt", run=name)
                 for name in chunk for n in variants[name]
                 if (s := n.site(layout)) is not None]  # fmt: skip
        graph = Graph(nodes=tuple(nodes), runs=("clean", "corrupt", *chunk))
        jobs.append((graph, {"clean": clean, "corrupt": corrupt, **dict.fromkeys(chunk, clean)}))
    out: dict[str, Tensor] = {}
    for result in run_jobs(vlm, jobs, pool):
        out.update({name: metric(v).detach() for name, v in result.answer_logits.items()})
    return out
