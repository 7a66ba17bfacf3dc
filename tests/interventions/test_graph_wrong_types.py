"""Wrongly typed nodes, graphs, inputs and JSON fields raise VRP errors for users, who run without
the jaxtyping hook that rejects them first under pytest: checked in a plain interpreter."""

from tests.plain import check_plain_errors

_SCRIPT = """
import torch
from PIL import Image
import vrp
from vrp import Component, Site, VrpError
from vrp.interventions import (AttentionKnockout, Add, Assign, Capture, ExecutionConfig, Graph,
                               ImagePatchMask, Resume, Scale, Zero, graph, reference_pool,
                               run_gradients, run_graph)

site = Site(layer=0, component=Component.RESID_POST)
vlm = vrp.load("tiny/llava")
inputs = vlm.encode([Image.new("RGB", (32, 32))], ["is there a cat ?"])
tagged = Graph(nodes=(Zero(site=site),)).to_dict()["nodes"][0]["site"]
def json_node(**node):
    return Graph.from_dict({"format": "vrp.graph", "version": 1, "nodes": [node]})
calls = {
    "scale-string": lambda: Scale(site=site, factor="2"),
    "add-int-direction": lambda: Add(site=site, direction=torch.ones(32, dtype=torch.int64)),
    "fill-noise": lambda: ImagePatchMask(patches=(1,), fill="noise"),
    "patches-floats": lambda: ImagePatchMask(patches=(1.5,)),
    "patches-string": lambda: ImagePatchMask(patches="12"),
    "capture-name-int": lambda: Capture(site=site, name=3),
    "site-string": lambda: Zero(site="L0"),
    "knockout-layer-string": lambda: AttentionKnockout(layer="0"),
    "graph-of-a-string": lambda: graph("zero"),
    "inputs-string": lambda: run_graph(vlm, graph(Zero(site=site)), "inputs"),
    "graph-a-list": lambda: run_graph(vlm, [Zero(site=site)], inputs),
    "model-a-string": lambda: run_graph("tiny/llava", graph(Zero(site=site)), inputs),
    "config-a-dict": lambda: run_graph(vlm, graph(Zero(site=site)), inputs, {"backend": "local"}),
    "keep-logits-all": lambda: ExecutionConfig(keep_logits="all"),
    "plan-sometimes": lambda: ExecutionConfig(plan="sometimes"),
    "budget-string": lambda: ExecutionConfig(memory_budget_mb="1GB"),
    "backend-int": lambda: ExecutionConfig(backend=8080),
    "json-site-untagged": lambda: json_node(kind="zero", site={"layer": 0}),
    "json-factor-string": lambda: json_node(kind="scale", site=tagged, factor="2"),
    "json-name-null": lambda: json_node(kind="capture", site=tagged, name=None),
    "json-fill-noise": lambda: json_node(kind="patch_mask", patches=[1], fill="noise"),
    "from-json-int": lambda: Graph.from_json(5),
    "reference-not-batches": lambda: reference_pool(vlm, site, [inputs, "x"]),
    "assign-a-list": lambda: Assign(site=site, value=[1.0, 2.0]),
    "resume-hidden-list": lambda: run_graph(vlm, graph(Capture(site=site, name="x")), inputs,
                                            resume=Resume(layer=1, hidden=[0.0])),
    "resume-an-int": lambda: run_graph(vlm, graph(Capture(site=site, name="x")), inputs, resume=1),
    "prefix-a-string": lambda: run_gradients(vlm, inputs, [site], vlm.yes_no_margin,
                                             prefix="cache"),
}
for name, call in calls.items():
    try:
        call()
        print(name, "no error")
    except VrpError as error:
        print(name, type(error).__name__, " ".join(str(error).split()))
"""

EXPECTED = {
    "resume-an-int": "GraphError resume must be a vrp.interventions.Resume or None; got 1",
    "prefix-a-string": "ConfigError prefix must be a Prefix (CachedRun.prefix) or None; got 'cache'",
    "assign-a-list": "GraphError assign node: field 'value' must be a floating-point tensor",
    "resume-hidden-list": "GraphError resume.hidden must be the residual stream entering layer 1",
    "scale-string": "GraphError scale node: field 'factor' must be a finite number; got '2'",
    "add-int-direction": "GraphError add node: field 'direction' must be a floating-point tensor",
    "fill-noise": "GraphError patch_mask node: field 'fill' must be 'zero' or 'mean'; got 'noise'",
    "patches-floats": "GraphError patch_mask node: field 'patches' must be a sequence of int",
    "patches-string": "GraphError patch_mask node: field 'patches' must be a sequence of int",
    "capture-name-int": "GraphError capture node: field 'name' must be a non-empty string; got 3",
    "site-string": "GraphError zero node: field 'site' must be a vrp.Site; got 'L0'",
    "knockout-layer-string": "GraphError knockout node: field 'layer' must be an int",
    "graph-of-a-string": "GraphError node 0 is str 'zero', not an intervention node",
    "inputs-string": "GraphError run_graph needs VlmInputs (from vlm.encode)",
    "graph-a-list": "GraphError run_graph needs a Graph; got list",
    "model-a-string": "ConfigError run_graph needs a vrp.VLM as its model; got str",
    "config-a-dict": "ConfigError config must be an ExecutionConfig or None",
    "keep-logits-all": "ConfigError keep_logits must be 'answer' or 'none'; got 'all'",
    "plan-sometimes": "ConfigError plan must be 'auto' or 'off'; got 'sometimes'",
    "budget-string": "ConfigError memory_budget_mb must be None (one trace) or a finite number",
    "backend-int": "ConfigError Unknown backend 8080: expected 'local', 'serialise' or a host URL",
    "json-site-untagged": "GraphError node 0: zero node: field 'site' must be a vrp.Site",
    "json-factor-string": "GraphError node 0: scale node: field 'factor' must be a finite number",
    "json-name-null": "GraphError node 0: capture node: field 'name' must be a non-empty string",
    "json-fill-noise": "GraphError node 0: patch_mask node: field 'fill' must be 'zero' or 'mean'",
    "from-json-int": "GraphError Graph.from_json needs the JSON text; got int",
    "reference-not-batches": "GraphError reference batch 1 is str, not VlmInputs",
}


def test_wrong_types_raise_vrp_errors_in_a_plain_interpreter() -> None:
    check_plain_errors(_SCRIPT, EXPECTED)
