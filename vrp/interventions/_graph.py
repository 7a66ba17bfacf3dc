"""The intervention graph: nodes over one or more named runs, validated, serialisable, printable."""

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core import AllTokens, Component, GraphError, Indices, SiteError, Tower, VrpError
from ..models import VLM, VlmInputs
from ._nodes import (
    AttentionKnockout,
    Capture,
    ImagePatchMask,
    Node,
    Patch,
    SiteNode,
    node_from_dict,
)

FORMAT_VERSION = 1


@dataclass(frozen=True, kw_only=True)
class Graph:
    """A composition of intervention nodes over named runs (input batches).

    Attributes:
      nodes: the nodes, applied in this order where they share a site; across sites the executor
        follows the model's forward order.
      runs: names of the input batches the nodes refer to ("main" by default; e.g. "clean" and
        "corrupt" for activation patching).
    """

    nodes: tuple[Node, ...]
    runs: tuple[str, ...] = ("main",)

    def __post_init__(self) -> None:
        object.__setattr__(self, "nodes", tuple(self.nodes))
        object.__setattr__(self, "runs", tuple(self.runs))

    # ----- validation --------------------------------------------------------------------------
    def validate(self, vlm: VLM, inputs: Mapping[str, VlmInputs] | None = None) -> None:
        """Checks the graph against a model (and, when given, the inputs of each run).

        Raises:
          GraphError: a site, head, neuron, component, position or run does not exist, or nodes
            conflict; the message names the node.
        """
        if len(set(self.runs)) != len(self.runs) or not self.runs:
            raise GraphError(f"Graph runs must be unique and non-empty, got {list(self.runs)}.")
        names = [n.name for n in self.nodes if isinstance(n, Capture)]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise GraphError(f"Capture names must be unique; repeated: {duplicates}.")
        for index, node in enumerate(self.nodes):
            try:
                self._validate_node(vlm, node)
            except VrpError as err:
                raise GraphError(f"node {index} ({_describe(node)}): {err}") from err
        if inputs is not None:
            self._validate_inputs(vlm, inputs)

    def _validate_node(self, vlm: VLM, node: Node) -> None:
        runs = [node.run] + ([node.source] if isinstance(node, Patch) else [])
        missing = [r for r in runs if r not in self.runs]
        if missing:
            raise GraphError(f"run {missing[0]!r} is not one of the graph's runs {list(self.runs)}")
        if isinstance(node, Patch) and node.source == node.run:
            raise GraphError("a patch needs a source run other than its own run")
        for site in node.sites:
            vlm.validate(site)
        if isinstance(node, AttentionKnockout) and not vlm.adapter.eager:
            raise GraphError(
                "attention knockouts need eager attention (attn_implementation='eager')"
            )
        if isinstance(node, SiteNode):
            if node.site.component is Component.ATTN_PATTERN and node.writes:
                raise GraphError(
                    "attention patterns are read-only: use a knockout to block attention"
                )
            on_tokens = isinstance(node.site.positions, AllTokens | Indices)
            if node.site.tower is not Tower.LANGUAGE and not on_tokens:
                raise GraphError(
                    f"{node.site}: image/text/last-token positions refer to the language model's "
                    "sequence; on vision and projector sites use AllTokens or Indices"
                )

    def _validate_inputs(self, vlm: VLM, inputs: Mapping[str, VlmInputs]) -> None:
        absent = [r for r in self.runs if r not in inputs]
        if absent:
            raise GraphError(f"no inputs for runs {absent}; got inputs for {sorted(inputs)}")
        sizes = {r: inputs[r].batch_size for r in self.runs}
        largest = max(sizes.values())
        if any(s not in (1, largest) for s in sizes.values()):
            raise GraphError(
                f"runs must have equal batch sizes (or one row, broadcast): got {sizes}"
            )
        for index, node in enumerate(self.nodes):
            if isinstance(node, ImagePatchMask):
                run = inputs[node.run]
                try:
                    node.check(run.batch_size, run.n_image_tokens)
                except GraphError as err:
                    raise GraphError(f"node {index} ({_describe(node)}): {err}") from err
        checked: set[tuple[str, object]] = set()
        for index, node in enumerate(self.nodes):
            for site in node.sites:
                if site.tower is not Tower.LANGUAGE or (node.run, site.positions) in checked:
                    continue
                checked.add((node.run, site.positions))
                run = inputs[node.run]
                try:
                    site.positions.resolve(run.image_mask, run.attention_mask)
                except SiteError as err:
                    raise GraphError(f"node {index} ({_describe(node)}): {err}") from err

    # ----- text and JSON -----------------------------------------------------------------------
    def render(self) -> str:
        """A readable listing: one line per node, grouped by run."""
        lines = [f"Graph over runs {', '.join(self.runs)} ({len(self.nodes)} nodes)"]
        for index, node in enumerate(self.nodes):
            lines.append(f"  {index:>3}  {node.run:<10} {_describe(node)}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": "vrp.graph",
            "version": FORMAT_VERSION,
            "runs": list(self.runs),
            "nodes": [n.to_dict() for n in self.nodes],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Graph":
        """Inverts `to_dict`.

        Raises:
          GraphError: not a VRP graph, a newer format, or malformed nodes.
        """
        if data.get("format") != "vrp.graph":
            raise GraphError(
                f"Not a VRP graph: expected format 'vrp.graph', got {data.get('format')!r}."
            )
        if data.get("version") != FORMAT_VERSION:
            raise GraphError(
                f"Graph format version {data.get('version')!r} is not supported "
                f"(this VRP reads version {FORMAT_VERSION})."
            )
        nodes = tuple(node_from_dict(n) for n in data.get("nodes", ()))
        return cls(nodes=nodes, runs=tuple(data.get("runs", ("main",))))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    @classmethod
    def from_json(cls, text: str) -> "Graph":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise GraphError(f"Graph JSON does not parse: {err}.") from err
        return cls.from_dict(data)

    def save(self, path: str | Path) -> Path:
        """Writes the graph as JSON (atomically: a failed write leaves no partial file)."""
        path = Path(path)
        text = self.to_json()
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Graph":
        return cls.from_json(Path(path).read_text())


def _describe(node: Node) -> str:
    describe = getattr(node, "describe", None)
    return describe() if describe else node.kind


def graph(*nodes: Node, runs: Sequence[str] = ("main",)) -> Graph:
    """Shorthand: ``graph(Zero(site=...), Capture(site=..., name="x"))``."""
    return Graph(nodes=tuple(nodes), runs=tuple(runs))
