"""The intervention graph: nodes over one or more named runs, validated, serialisable, printable."""

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core import (
    AllTokens,
    Component,
    ConfigError,
    GraphError,
    Indices,
    SiteError,
    Tower,
    VrpError,
)
from ..models import VLM, VlmInputs
from ._json import node_from_dict
from ._nodes import (
    Assign,
    AttentionKnockout,
    Capture,
    EdgePatch,
    ImagePatchMask,
    Node,
    Patch,
    SiteNode,
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
        for name in ("nodes", "runs"):
            if isinstance(getattr(self, name), str | bytes | Node):
                object.__setattr__(self, name, [getattr(self, name)])  # checked below
        object.__setattr__(self, "nodes", tuple(self.nodes))
        object.__setattr__(self, "runs", tuple(self.runs))
        for index, node in enumerate(self.nodes):
            if not isinstance(node, Node):
                raise GraphError(
                    f"node {index} is {type(node).__name__} {node!r:.60}, not an intervention "
                    "node. Build graphs from vrp.interventions nodes, e.g. graph(Zero(site=...))."
                )
        if not all(isinstance(run, str) and run for run in self.runs):
            raise GraphError(
                f"Graph runs must be non-empty strings; got {list(self.runs)!r}. Pass e.g. "
                "runs=('clean', 'corrupt')."
            )

    # ----- validation --------------------------------------------------------------------------
    def validate(self, vlm: VLM, inputs: Mapping[str, VlmInputs] | None = None) -> None:
        """Checks the graph against a model (and, when given, the inputs of each run).

        Raises:
          GraphError: a site, head, neuron, component, position or run does not exist, or nodes
            conflict; the message names the node.
        """
        if len(set(self.runs)) != len(self.runs) or not self.runs:
            raise GraphError(
                f"Graph runs must be unique and non-empty, got {list(self.runs)}. Pass distinct "
                "run names, e.g. runs=('clean', 'corrupt')."
            )
        names = [n.name for n in self.nodes if isinstance(n, Capture)]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise GraphError(
                f"Capture names must be unique; repeated: {duplicates}. Give each Capture its "
                "own name."
            )
        for index, node in enumerate(self.nodes):
            try:
                self._validate_node(vlm, node)
            except SiteError as err:
                raise GraphError(
                    f"node {index} ({_describe(node)}): {err} vlm.info(inputs) lists the layers, "
                    "heads and widths of each tower."
                ) from err
            except VrpError as err:
                raise GraphError(f"node {index} ({_describe(node)}): {err}") from err
        if inputs is not None:
            self._validate_inputs(vlm, inputs)

    def _validate_node(self, vlm: VLM, node: Node) -> None:
        runs = [node.run] + ([node.source] if isinstance(node, Patch | EdgePatch) else [])
        missing = [r for r in runs if r not in self.runs]
        if missing:
            raise GraphError(
                f"run {missing[0]!r} is not one of the graph's runs {list(self.runs)}. Add it to "
                "graph(..., runs=[...]), or name one of those runs in the node."
            )
        if isinstance(node, EdgePatch):
            self._validate_edges(vlm, node)
        if isinstance(node, Patch | EdgePatch) and node.source == node.run:
            raise GraphError(
                f"a patch needs a source run other than its own run; both are {node.run!r}. Set "
                "source= to the run to copy from (e.g. 'clean')."
            )
        for site in node.sites:
            vlm.validate(site)
        if isinstance(node, AttentionKnockout) and "flash" in vlm.attn_implementation:
            raise GraphError(
                f"attention knockouts edit the attention mask, which {vlm.attn_implementation} "
                "does not take (it gets only padding lengths). Load the model with "
                "attn_implementation='sdpa' (or 'eager') to run knockouts."
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

    @staticmethod
    def _validate_edges(vlm: VLM, node: EdgePatch) -> None:
        last = vlm.adapter.n_layers - 1
        for sender, receiver in node.edges:
            if receiver.component is Component.RESID_POST and receiver.layer != last:
                raise GraphError(
                    f"edge {sender} -> {receiver}: RESID_POST receives only at the last layer "
                    f"({last}: the logits); earlier layers' outputs are read through ATTN_IN and "
                    "MLP_IN of the layers after them."
                )

    @staticmethod
    def _validate_aligned(index: int, node: EdgePatch, inputs: Mapping[str, VlmInputs]) -> None:
        """Edge patches add values position by position: both runs' rows must be as long."""
        rows, source_rows = inputs[node.run].batch_size, inputs[node.source].batch_size
        if source_rows not in (1, rows):
            raise GraphError(
                f"node {index} ({_describe(node)}): run {node.source!r} has {source_rows} rows "
                f"and run {node.run!r} {rows}; an edge patch takes one source row for every "
                "row, or one per row. Encode as many rows for both runs."
            )
        run, source = (inputs[node.run].attention_mask, inputs[node.source].attention_mask)
        lengths, source_lengths = run.sum(dim=-1), source.sum(dim=-1)
        if not bool((lengths == source_lengths.to(lengths.device)).all()):
            raise GraphError(
                f"node {index} ({_describe(node)}): runs {node.run!r} and {node.source!r} are not "
                f"aligned position by position (tokens per row {lengths.tolist()} vs "
                f"{source_lengths.tolist()}). Encode both with prompts of the same token length "
                "(e.g. swap a word for a word of one token)."
            )

    def _validate_node_inputs(
        self, index: int, node: Node, inputs: Mapping[str, VlmInputs]
    ) -> None:
        if isinstance(node, EdgePatch):
            self._validate_aligned(index, node, inputs)
        if isinstance(node, ImagePatchMask | Assign):
            run = inputs[node.run]
            try:
                node.check(run.batch_size, run.n_image_tokens)
            except GraphError as err:
                raise GraphError(f"node {index} ({_describe(node)}): {err}") from err

    def _validate_inputs(self, vlm: VLM, inputs: Mapping[str, VlmInputs]) -> None:
        absent = [r for r in self.runs if r not in inputs]
        if absent:
            raise GraphError(
                f"no inputs for runs {absent}; got inputs for {sorted(inputs)}. Pass "
                "{run: vlm.encode(...)} for every run of the graph."
            )
        sizes = {r: inputs[r].batch_size for r in self.runs}
        largest = max(sizes.values())
        if any(s not in (1, largest) for s in sizes.values()):
            raise GraphError(
                f"runs must have equal batch sizes (or one row, broadcast): got {sizes}. Encode "
                "as many rows for every run, or a single row to use with every row."
            )
        for index, node in enumerate(self.nodes):
            self._validate_node_inputs(index, node, inputs)
        checked: set[tuple[str, object]] = set()
        for index, node in enumerate(self.nodes):
            for site in node.sites:
                if site.tower is not Tower.LANGUAGE or (node.run, site.positions) in checked:
                    continue
                checked.add((node.run, site.positions))
                run = inputs[node.run]
                try:
                    site.positions.resolve_cached(run.image_mask, run.attention_mask)
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
    def from_dict(cls, data: Any) -> "Graph":
        """Inverts `to_dict`.

        Raises:
          GraphError: not a VRP graph, a newer format, or malformed runs or nodes (the message
            names the node index and field).
        """
        if not isinstance(data, Mapping):
            raise GraphError(
                f"Not a VRP graph: expected a JSON object with format, version, runs and nodes; "
                f"got a {type(data).__name__}. Load a file written by Graph.save."
            )
        if data.get("format") != "vrp.graph":
            raise GraphError(
                f"Not a VRP graph: expected format 'vrp.graph', got {data.get('format')!r}."
            )
        version = data.get("version")
        if version != FORMAT_VERSION or isinstance(version, bool):
            raise GraphError(
                f"Graph format version {version!r} is not supported "
                f"(this VRP reads version {FORMAT_VERSION}). Re-save the graph with this VRP's "
                "Graph.save."
            )
        nodes, runs = data.get("nodes", []), data.get("runs", ["main"])
        if not isinstance(nodes, list):
            raise GraphError(f"Graph 'nodes' must be a list of node objects; got {nodes!r:.60}.")
        if not isinstance(runs, list) or not all(isinstance(r, str) and r for r in runs):
            raise GraphError(
                f"Graph 'runs' must be a list of run names; got {runs!r:.60}. E.g. [\"main\"]."
            )
        return cls(nodes=tuple(_node_at(i, node) for i, node in enumerate(nodes)), runs=tuple(runs))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    @classmethod
    def from_json(cls, text: str) -> "Graph":
        """Parses a graph written by `to_json`.

        Raises:
          GraphError: the text is not JSON, or not a valid graph (see `from_dict`).
        """
        if not isinstance(text, str | bytes):
            raise GraphError(
                f"Graph.from_json needs the JSON text; got {type(text).__name__}. For a file, "
                "use Graph.load(path)."
            )
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise GraphError(
                f"Graph JSON does not parse: {err}. Pass the text Graph.to_json wrote."
            ) from err
        return cls.from_dict(data)

    def save(self, path: str | Path) -> Path:
        """Writes the graph as JSON, atomically: a failed write leaves no file, partial or old.

        Raises:
          ConfigError: `path` is a folder, its folder does not exist, or it cannot be written.
        """
        path = Path(path)
        fix = "Pass a file path in an existing folder you can write to, e.g. out/graph.json."
        if path.is_dir():
            raise ConfigError(f"cannot save the graph to {path}: it is a folder. {fix}")
        if not path.parent.is_dir():
            raise ConfigError(
                f"cannot save the graph to {path}: the folder {path.parent} does not exist. {fix}"
            )
        text = self.to_json()
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, path)
        except OSError as err:
            tmp.unlink(missing_ok=True)
            raise ConfigError(
                f"cannot save the graph to {path}: {err.strerror or err}. {fix}"
            ) from None
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Graph":
        """Reads a graph written by `save`.

        Raises:
          GraphError: the file is missing, is a folder, cannot be read, is not UTF-8 JSON, or is
            not a valid graph.
        """
        path = Path(path)
        if path.is_dir():
            raise GraphError(
                f"{path} is a folder; expected a graph JSON file written by Graph.save."
            )
        if not path.is_file():
            raise GraphError(
                f"graph file {path} does not exist. Check the path (Graph.save writes one)."
            )
        try:
            text = path.read_bytes().decode("utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise GraphError(
                f"cannot read {path} as a graph: expected UTF-8 JSON written by Graph.save ({err})."
            ) from None
        return cls.from_json(text)


def _node_at(index: int, data: Any) -> Node:
    try:
        return node_from_dict(data)
    except GraphError as err:
        raise GraphError(f"node {index}: {err}") from None


def _describe(node: Node) -> str:
    describe = getattr(node, "describe", None)
    return describe() if describe else node.kind


def graph(*nodes: Node, runs: Sequence[str] = ("main",)) -> Graph:
    """Shorthand: ``graph(Zero(site=...), Capture(site=..., name="x"))``."""
    return Graph(nodes=tuple(nodes), runs=tuple(runs))
