"""Bad-input cases: interventions, statistics, probes, the activation store and loading (see
_case.py).

Rows pass values of the right Python type and the wrong meaning (out of range, NaN, damaged files):
a value of the wrong type is refused under pytest by the jaxtyping hook before VRP's own check runs,
so those are checked in a plain interpreter (tests/*/test_wrong_types.py). Checkpoint rows damage a
copy of a tiny model saved once per session.
"""

import functools
import json
import math
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

import vrp
from tests.conftest import QUESTIONS, random_images
from vrp import (
    AdapterError,
    Component,
    ConfigError,
    DataError,
    GraphError,
    Indices,
    ModelNotFoundError,
    ShapeError,
    Site,
    Tower,
)
from vrp.interventions import (
    Add,
    AttentionKnockout,
    Capture,
    ExecutionConfig,
    Graph,
    ImagePatchMask,
    MeanAblate,
    Patch,
    ResampleAblate,
    Scale,
    Zero,
    graph,
    mean_ablation,
    run_graph,
)
from vrp.probes import (
    LayerConcat,
    LogisticProbe,
    MLPProbe,
    ProbeNotFittedError,
    SparseLogisticProbe,
    SweepConfig,
    evaluate_probe,
    probe_sweep,
    rank_by_mean_difference,
    rank_by_weight,
)
from vrp.stats import (
    auroc,
    benjamini_hochberg,
    fuse_signals,
    mcnemar_exact,
    permutation_test,
    point_biserial,
    proportion,
)
from vrp.store import ActivationStore

from ._case import Case

NAN = math.nan


# ----- helpers: tiny models, inputs, graphs, checkpoints, data ------------------------------------
@functools.cache
def _vlm(family: str = "llava") -> vrp.VLM:
    return vrp.load(f"tiny/{family}")


@functools.cache
def _inputs(family: str = "llava", rows: int = 2) -> vrp.models.VlmInputs:
    return _vlm(family).encode(random_images(rows), list(QUESTIONS[:rows]))


def _run(*nodes: Any, family: str = "llava", config: ExecutionConfig | None = None) -> Any:
    return run_graph(_vlm(family), graph(*nodes), _inputs(family), config)


def _site(component: Component = Component.RESID_POST, **fields: Any) -> Site:
    return Site(layer=fields.pop("layer", 0), component=component, **fields)


def _vision(component: Component = Component.RESID_POST, **fields: Any) -> Site:
    return _site(component, tower=Tower.VISION, **fields)


def _projector(component: Component = Component.RESID_POST, **fields: Any) -> Site:
    return _site(component, tower=Tower.PROJECTOR, **fields)


_GOOD_GRAPH = graph(
    Zero(site=Site(layer=0, component=Component.RESID_POST)),
    MeanAblate(site=Site(layer=1, component=Component.MLP_OUT), mean=torch.zeros(32)),
).to_dict()


def _graph_dict(**changes: Any) -> dict[str, Any]:
    return {**json.loads(json.dumps(_GOOD_GRAPH)), **changes}


def _with_node(index: int, **changes: Any) -> dict[str, Any]:
    data = _graph_dict()
    data["nodes"][index].update(changes)
    return data


def _tensor_field(**changes: Any) -> dict[str, Any]:
    return _with_node(
        1, mean={"$tensor": {**_GOOD_GRAPH["nodes"][1]["mean"]["$tensor"], **changes}}
    )


def _file(tmp: Path, name: str, content: str | bytes) -> Path:
    path = tmp / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


_SAVED = tempfile.TemporaryDirectory(prefix="vrp-catalogue-")  # removed when the session ends


@functools.cache
def _pristine(family: str) -> Path:
    """A tiny model of `family` saved once per session; rows damage copies of it.

    Saved from a model of its own: encoding with a model sets padding on its tokenizer, which
    `save` would then write into tokenizer.json, so a shared one would make rows order-dependent.
    """
    return vrp.models.save(vrp.load(f"tiny/{family}"), Path(_SAVED.name) / family)


def _damaged(tmp: Path, edit: Callable[[Path], Any], family: str = "llava") -> Path:
    folder = tmp / "checkpoint"
    shutil.copytree(_pristine(family), folder)
    edit(folder)
    return folder


def _load_damaged(edit: Callable[[Path], Any], family: str = "llava") -> Callable[[Path], Any]:
    return lambda tmp: vrp.load(_damaged(tmp, edit, family))


def _drop(name: str) -> Callable[[Path], None]:
    return lambda folder: (folder / name).unlink()


def _truncate_weights(folder: Path) -> None:
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])


def _edit_config(**changes: Any) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        config.update(changes)
        for key in [k for k, v in changes.items() if v is None]:
            config.pop(key)
        (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")

    return edit


def _features(n: int = 40, d: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)), np.tile([0, 1], n // 2)


def _with_nan(x: np.ndarray, value: float = NAN) -> np.ndarray:
    x = x.copy()
    x[0, 0] = value
    return x


def _store(tmp: Path, **kwargs: Any) -> ActivationStore:
    return ActivationStore.create(tmp / "store", **{"layers": [0, 1], "d": 4, **kwargs})


def _deleted_layer(tmp: Path) -> Any:
    store = _store(tmp, dtype="float32")
    store.append(np.zeros((2, 2, 4), dtype=np.float32))
    (tmp / "store" / "layer_001.bin").unlink()
    return store.layer(1)


def _damaged_manifest(tmp: Path, text: str) -> Any:
    _store(tmp)
    (tmp / "store" / "manifest.json").write_text(text, encoding="utf-8")
    return ActivationStore.open(tmp / "store")


# ----- interventions: selectors on every tower ------------------------------------------------------
_INDICES = [
    Case(
        id=f"iv-{family}-{tower.value}-{component.value}-index-{index}",
        call=lambda tmp, f=family, s=site: _run(Capture(site=s, name="x"), family=f),
        error=GraphError,
        says=(
            rf"positions \[{index}\] are outside the {tower.value} tower's \d+ tokens",
            r"valid: -\d+\.\.\d+",
            r"Pass indices in that range",
        ),
    )
    for family, tower, component, index in [
        ("llava", Tower.VISION, Component.RESID_POST, 500),
        ("llava", Tower.VISION, Component.HEAD_OUT, -500),
        ("llava", Tower.VISION, Component.ATTN_PATTERN, 17),
        ("llava", Tower.PROJECTOR, Component.RESID_POST, 16),
        ("llava", Tower.PROJECTOR, Component.RESID_PRE, -17),
        ("paligemma", Tower.VISION, Component.MLP_NEURONS, 16),
        ("paligemma", Tower.PROJECTOR, Component.RESID_POST, -17),
        ("qwen2_vl", Tower.VISION, Component.RESID_PRE, 64),
        ("qwen2_vl", Tower.PROJECTOR, Component.RESID_POST, 16),
    ]
    for site in [_site(component, tower=tower, positions=Indices((index,)))]
]

INTERVENTIONS: tuple[Case, ...] = (
    *_INDICES,
    Case(
        id="iv-vision-index-named-twice",
        call=lambda tmp: _run(Zero(site=_vision(positions=Indices((0, -17))))),
        error=GraphError,
        says=(r"positions \[0, -17\] name one token twice among 17", r"List each token once"),
    ),
    Case(
        id="iv-language-index-out-of-range",
        call=lambda tmp: _run(Zero(site=_site(positions=Indices((500,))))),
        error=GraphError,
        says=(r"node 0 \(zero", r"Position 500 is outside row 0, which has \d+ tokens"),
    ),
    Case(
        id="iv-vision-head-out-of-range",
        call=lambda tmp: _run(Capture(site=_vision(Component.HEAD_OUT, heads=(99,)), name="x")),
        error=GraphError,
        says=(r"heads \[99\] out of range", r"has 4 heads per layer \(0\.\.3\)", r"vlm\.info"),
    ),
    Case(
        id="iv-negative-neuron",
        call=lambda tmp: _run(Zero(site=_vision(Component.MLP_NEURONS, neurons=(-1,)))),
        error=GraphError,
        says=(r"neurons \[-1\] out of range", r"64 neurons per layer \(0\.\.63\)", r"vlm\.info"),
    ),
    Case(
        id="iv-projector-dim-out-of-range",
        call=lambda tmp: _run(Zero(site=_projector(dims=(32,)))),
        error=GraphError,
        says=(r"dims \[32\] out of range", r"32 dims per layer \(0\.\.31\)", r"vlm\.info"),
    ),
    Case(
        id="iv-vision-layer-out-of-range",
        call=lambda tmp: _run(Zero(site=_vision(layer=5))),
        error=GraphError,
        says=(r"vision\.L5", r"has 2 vision layers \(0\.\.1\)", r"Pass a layer in range"),
    ),
    Case(
        id="iv-knockout-negative-head",
        call=lambda tmp: _run(AttentionKnockout(layer=0, heads=(-1,))),
        error=GraphError,
        says=(r"heads \[-1\] out of range", r"4 heads per layer \(0\.\.3\)", r"vlm\.info"),
    ),
    Case(
        id="iv-scale-nan",
        call=lambda tmp: Scale(site=_site(), factor=NAN),
        error=GraphError,
        says=(r"field 'factor' must be a finite number", r"got nan", r"Pass e\.g\. factor="),
    ),
    Case(
        id="iv-add-nan-direction",
        call=lambda tmp: Add(site=_site(), direction=torch.full((32,), NAN)),
        error=GraphError,
        says=(r"field 'direction' must be a floating-point tensor of finite values", r"NaN or inf"),
    ),
    Case(
        id="iv-add-wrong-width",
        call=lambda tmp: _run(Add(site=_site(), direction=torch.ones(5))),
        error=ShapeError,
        says=(r"direction shape \(5,\)", r"trailing axes \(32,\)", r"Pass a direction of shape"),
    ),
    Case(
        id="iv-resample-empty-pool",
        call=lambda tmp: ResampleAblate(site=_site(), pool=torch.zeros(0, 1, 32)),
        error=GraphError,
        says=(
            r"field 'pool' must be at least one entry",
            r"shape \(0, 1, 32\)",
            r"resample_ablation",
        ),
    ),
    Case(
        id="iv-mean-of-another-site",
        call=lambda tmp: _run(
            MeanAblate(site=_site(positions=vrp.LastToken()), mean=torch.zeros(7))
        ),
        error=ShapeError,
        says=(r"stored mean has shape \(7,\)", r"selection has shape \(1, 32\)", r"mean_ablation"),
    ),
    Case(
        id="iv-patch-mask-index-past-the-grid",
        call=lambda tmp: _run(ImagePatchMask(patches=(16,))),
        error=GraphError,
        says=(
            r"index 16 is outside the image's 16 tokens \(0\.\.15\)",
            r"Pass patch indices below",
        ),
    ),
    Case(
        id="iv-patch-mask-rows-mismatch",
        call=lambda tmp: _run(ImagePatchMask(patches=((1,), (2,), (3,)))),
        error=GraphError,
        says=(r"patches for 3 rows, the run has 2 rows", r"one patch tuple per row"),
    ),
    Case(
        id="iv-patch-from-own-run",
        call=lambda tmp: _run(Patch(site=_site(), source="main")),
        error=GraphError,
        says=(r"needs a source run other than its own run; both are 'main'", r"Set source="),
    ),
    Case(
        id="iv-node-on-unknown-run",
        call=lambda tmp: _run(Zero(site=_site(), run="clean")),
        error=GraphError,
        says=(r"run 'clean' is not one of the graph's runs \['main'\]", r"Add it to graph"),
    ),
    Case(
        id="iv-duplicate-capture-names",
        call=lambda tmp: _run(Capture(site=_site(), name="x"), Capture(site=_site(), name="x")),
        error=GraphError,
        says=(r"Capture names must be unique; repeated: \['x'\]", r"its own name"),
    ),
    Case(
        id="iv-run-without-inputs",
        call=lambda tmp: run_graph(
            _vlm(), graph(Zero(site=_site(), run="b"), runs=("a", "b")), {"a": _inputs()}
        ),
        error=GraphError,
        says=(r"no inputs for runs \['b'\]", r"got inputs for \['a'\]", r"for every run"),
    ),
    Case(
        id="iv-runs-of-different-sizes",
        call=lambda tmp: run_graph(
            _vlm(),
            graph(Patch(site=_site(), source="a", run="b"), runs=("a", "b")),
            {"a": _inputs(), "b": _inputs(rows=3)},
        ),
        error=GraphError,
        says=(r"equal batch sizes", r"\{'a': 2, 'b': 3\}", r"as many rows for every run"),
    ),
    Case(
        id="iv-negative-memory-budget",
        call=lambda tmp: ExecutionConfig(memory_budget_mb=-1.0),
        error=ConfigError,
        says=(
            r"memory_budget_mb must be None \(one trace\) or a finite number",
            r"got -1\.0",
            r"2048",
        ),
    ),
    Case(
        id="iv-unknown-backend",
        call=lambda tmp: _run(Zero(site=_site()), config=ExecutionConfig(backend="ndif")),
        error=ConfigError,
        says=(r"Unknown backend 'ndif'", r"expected 'local', 'serialise' or a host URL"),
    ),
    Case(
        id="iv-unknown-capture-name",
        call=lambda tmp: _run(Capture(site=_site(), name="resid"))["resi"],
        error=GraphError,
        says=(r"no capture named 'resi'", r"holds captures \['resid'\]", r"Use a name given"),
    ),
    Case(
        id="iv-empty-reference-dataset",
        call=lambda tmp: mean_ablation(_vlm(), _site(), []),
        error=GraphError,
        says=(r"needs at least one batch; got none", r"Pass a list of batches"),
    ),
)


# ----- graph JSON: structure, fields, tensors, files ------------------------------------------------
def _from(data: Any) -> Callable[[Path], Any]:
    return lambda tmp: Graph.from_dict(data)


GRAPH_JSON: tuple[Case, ...] = (
    Case(
        id="graph-json-top-level-list",
        call=lambda tmp: Graph.from_json("[1, 2]"),
        error=GraphError,
        says=(r"expected a JSON object with format, version, runs and nodes", r"got a list"),
    ),
    Case(
        id="graph-json-not-json",
        call=lambda tmp: Graph.from_json("{nope"),
        error=GraphError,
        says=(r"Graph JSON does not parse", r"line 1 column 2", r"Graph\.to_json"),
    ),
    Case(
        id="graph-json-other-format",
        call=_from({"format": "other"}),
        error=GraphError,
        says=(r"expected format 'vrp\.graph', got 'other'",),
    ),
    Case(
        id="graph-json-newer-version",
        call=_from(_graph_dict(version=2)),
        error=GraphError,
        says=(r"version 2 is not supported", r"reads version 1", r"Re-save"),
    ),
    Case(
        id="graph-json-nodes-not-a-list",
        call=_from(_graph_dict(nodes={"kind": "zero"})),
        error=GraphError,
        says=(r"'nodes' must be a list of node objects", r"got \{'kind': 'zero'\}"),
    ),
    Case(
        id="graph-json-runs-a-string",
        call=_from(_graph_dict(runs="main")),
        error=GraphError,
        says=(r"'runs' must be a list of run names", r"got 'main'", r'E\.g\. \["main"\]'),
    ),
    Case(
        id="graph-json-node-not-an-object",
        call=_from(_graph_dict(nodes=["zero"])),
        error=GraphError,
        says=(r"node 0: a node must be a JSON object with a 'kind'", r"got 'zero'"),
    ),
    Case(
        id="graph-json-unknown-kind",
        call=_from(_graph_dict(nodes=[{"kind": "melt"}])),
        error=GraphError,
        says=(r"node 0: Unknown node kind 'melt'", r"known kinds: capture, zero"),
    ),
    Case(
        id="graph-json-unknown-field",
        call=_from(_with_node(0, colour="red")),
        error=GraphError,
        says=(r"node 0: .*unknown fields \['colour'\]", r"has fields \['run', 'site'\]"),
    ),
    Case(
        id="graph-json-missing-field",
        call=_from(_graph_dict(nodes=[{"kind": "zero"}])),
        error=GraphError,
        says=(r"node 0: .*missing fields \['site'\]", r"required: \['site'\]"),
    ),
    Case(
        id="graph-json-site-layer-a-string",
        call=_from(
            _with_node(
                0, site={"$site": {**_GOOD_GRAPH["nodes"][0]["site"]["$site"], "layer": "0"}}
            )
        ),
        error=GraphError,
        says=(
            r"node 0: zero node: field 'site' is malformed",
            r"layer must be an int, got '0'",
            r'"\$site"',
        ),
    ),
    Case(
        id="graph-json-site-a-list",
        call=_from(_with_node(0, site={"$site": [0, "resid_post"]})),
        error=GraphError,
        says=(
            r"node 0: zero node: field 'site'",
            r"\$site holds \[0, 'resid_post'\], not an object",
        ),
    ),
    Case(
        id="graph-json-unknown-positions",
        call=_from(
            _with_node(
                0,
                site={
                    "$site": {
                        **_GOOD_GRAPH["nodes"][0]["site"]["$site"],
                        "positions": {"kind": "middle"},
                    }
                },
            )
        ),
        error=GraphError,
        says=(r"node 0: .*Unknown position selector kind 'middle'", r"expected one of \['all'"),
    ),
    Case(
        id="graph-json-factor-nan",
        call=_from(
            _graph_dict(
                nodes=[{"kind": "scale", "site": _GOOD_GRAPH["nodes"][0]["site"], "factor": NAN}]
            )
        ),
        error=GraphError,
        says=(r"node 0: scale node: field 'factor' must be a finite number", r"got nan"),
    ),
    Case(
        id="graph-json-run-empty",
        call=_from(_with_node(0, run="")),
        error=GraphError,
        says=(
            r"node 0: zero node: field 'run' must be a non-empty run name",
            r"got ''",
            r"run='main'",
        ),
    ),
    Case(
        id="graph-json-tensor-unknown-dtype",
        call=_from(_tensor_field(dtype="float33")),
        error=GraphError,
        says=(
            r"node 1: mean node: field 'mean'",
            r"dtype 'float33' is not a torch dtype",
            r"re-save",
        ),
    ),
    Case(
        id="graph-json-tensor-short-data",
        call=_from(_tensor_field(shape=[64])),
        error=GraphError,
        says=(r"node 1: .*shape \[64\] and dtype float32 needs 256 bytes, its data holds 128",),
    ),
    Case(
        id="graph-json-tensor-negative-shape",
        call=_from(_tensor_field(shape=[-1])),
        error=GraphError,
        says=(r"node 1: .*shape \[-1\] is not a list of sizes >= 0",),
    ),
    Case(
        id="graph-json-tensor-not-base64",
        call=_from(_tensor_field(data="!!!")),
        error=GraphError,
        says=(r"node 1: .*Cannot decode a stored tensor", r"base64"),
    ),
    Case(
        id="graph-json-tensor-missing-keys",
        call=_from(_with_node(1, mean={"$tensor": {"dtype": "float32"}})),
        error=GraphError,
        says=(
            r"node 1: .*Cannot decode a stored tensor from \['dtype'\]",
            r"\{dtype, shape, base64 data\}",
        ),
    ),
    Case(
        id="graph-load-missing-file",
        call=lambda tmp: Graph.load(tmp / "nope.json"),
        error=GraphError,
        says=(r"graph file .*nope\.json does not exist", r"Check the path"),
    ),
    Case(
        id="graph-load-a-folder",
        call=lambda tmp: Graph.load(tmp),
        error=GraphError,
        says=(r"is a folder; expected a graph JSON file", r"Graph\.save"),
    ),
    Case(
        id="graph-load-not-utf8",
        call=lambda tmp: Graph.load(_file(tmp, "g.json", b"\xff\xfe{}")),
        error=GraphError,
        says=(r"expected UTF-8 JSON written by Graph\.save", r"can't decode byte 0xff"),
    ),
    Case(
        id="graph-load-not-json",
        call=lambda tmp: Graph.load(_file(tmp, "g.json", "nodes: []")),
        error=GraphError,
        says=(r"Graph JSON does not parse", r"Expecting value"),
    ),
    Case(
        id="graph-save-to-a-folder",
        call=lambda tmp: Graph.from_dict(_GOOD_GRAPH).save(tmp),
        error=ConfigError,
        says=(r"cannot save the graph to .*: it is a folder", r"Pass a file path"),
    ),
    Case(
        id="graph-save-into-missing-folder",
        call=lambda tmp: Graph.from_dict(_GOOD_GRAPH).save(tmp / "out" / "g.json"),
        error=ConfigError,
        says=(r"the folder .*out does not exist", r"existing folder you can write to"),
        leaves=("out", "out/g.json"),
    ),
)


# ----- statistics -------------------------------------------------------------------------------------
STATS: tuple[Case, ...] = (
    Case(
        id="stats-auroc-empty",
        call=lambda tmp: auroc([], []),
        error=DataError,
        says=(r"labels is empty", r"at least one sample of each class", r"Pass one label"),
    ),
    Case(
        id="stats-auroc-length-mismatch",
        call=lambda tmp: auroc([0.1, 0.2, 0.3], [0, 1]),
        error=ShapeError,
        says=(r"one entry per sample each", r"lengths 3 and 2", r"Pass inputs of equal length"),
    ),
    Case(
        id="stats-auroc-one-class",
        call=lambda tmp: auroc([0.1, 0.2, 0.3], [1, 1, 1]),
        error=DataError,
        says=(r"only the class 1 across 3 samples", r"both classes are needed", r"Add samples"),
    ),
    Case(
        id="stats-auroc-nan-score",
        call=lambda tmp: auroc([0.1, NAN, 0.3, 0.4], [0, 1, 0, 1]),
        error=DataError,
        says=(r"scores holds 1 NaN or infinite values", r"drop or impute"),
    ),
    Case(
        id="stats-auroc-three-labels",
        call=lambda tmp: auroc([0.1, 0.2, 0.3], [0, 1, 2]),
        error=DataError,
        says=(r"must be binary \(0/1", r"got values \[0, 1, 2\]", r"Map your labels to 0/1"),
    ),
    Case(
        id="stats-auroc-text-scores",
        call=lambda tmp: auroc(["high", "low"], [0, 1]),
        error=DataError,
        says=(r"scores must be numbers", r"could not convert string to float", r"Pass a list"),
    ),
    Case(
        id="stats-auroc-zero-resamples",
        call=lambda tmp: auroc([0.1, 0.2, 0.3, 0.4], [0, 1, 0, 1], ci="bootstrap", n_resamples=0),
        error=ConfigError,
        says=(r"n_resamples must be a whole number >= 1", r"got 0", r"Pass e\.g\."),
    ),
    Case(
        id="stats-auroc-negative-seed",
        call=lambda tmp: auroc([0.1, 0.2, 0.3, 0.4], [0, 1, 0, 1], ci="bootstrap", seed=-1),
        error=ConfigError,
        says=(r"seed must be a whole number >= 0", r"got -1"),
    ),
    Case(
        id="stats-auroc-confidence-in-percent",
        call=lambda tmp: auroc([0.1, 0.2], [0, 1], confidence=95.0),
        error=ConfigError,
        says=(r"strictly between 0 and 1", r"0\.95 for a 95% CI", r"got 95\.0"),
    ),
    Case(
        id="stats-point-biserial-constant",
        call=lambda tmp: point_biserial([1.0] * 6, [0, 1] * 3),
        error=DataError,
        says=(r"values are constant \(1 for all 6 samples\)", r"Pass a signal that varies"),
    ),
    Case(
        id="stats-point-biserial-too-few",
        call=lambda tmp: point_biserial([0.1, 0.2, 0.3], [0, 1, 0]),
        error=DataError,
        says=(r"needs at least 4 samples for a CI; got 3", r"Pass more samples"),
    ),
    Case(
        id="stats-point-biserial-rare-class-bootstrap",
        call=lambda tmp: point_biserial(
            np.arange(60.0), [1, 1] + [0] * 58, ci="bootstrap", n_resamples=200
        ),
        error=DataError,
        says=(
            r"undefined \(NaN or infinite\) in [\d,]+ of 200",
            r"rarer class has 2 of 60",
            r"ci='fisher'",
        ),
    ),
    Case(
        id="stats-point-biserial-zero-resamples",
        call=lambda tmp: point_biserial(np.arange(8.0), [0, 1] * 4, ci="bootstrap", n_resamples=0),
        error=ConfigError,
        says=(r"n_resamples must be a whole number >= 1; got 0",),
    ),
    Case(
        id="stats-proportion-negative-trials",
        call=lambda tmp: proportion(0, -2),
        error=DataError,
        says=(r"got successes=0, n=-2", r"number of trials"),
    ),
    Case(
        id="stats-proportion-more-successes-than-trials",
        call=lambda tmp: proportion(5, 4),
        error=DataError,
        says=(r"0 <= successes <= n", r"got successes=5, n=4", r"Pass the count of successes"),
    ),
    Case(
        id="stats-mcnemar-empty",
        call=lambda tmp: mcnemar_exact([], []),
        error=DataError,
        says=(r"needs at least one paired item; got none", r"Pass the correctness"),
    ),
    Case(
        id="stats-mcnemar-nan",
        call=lambda tmp: mcnemar_exact([0.0, NAN], [0, 1]),
        error=DataError,
        says=(r"must be a 1-D 0/1 or boolean vector", r"values \[0\.0, nan\]", r"Map each item"),
    ),
    Case(
        id="stats-mcnemar-length-mismatch",
        call=lambda tmp: mcnemar_exact([0, 1, 1], [0, 1]),
        error=ShapeError,
        says=(r"lengths 3 and 2", r"Pass inputs of equal length"),
    ),
    Case(
        id="stats-permutation-one-value",
        call=lambda tmp: permutation_test([1.0], [1.0, 2.0]),
        error=DataError,
        says=(r"each sample needs at least 2 values; got 1 and 2", r"Pass more values"),
    ),
    Case(
        id="stats-permutation-statistic-without-axis",
        call=lambda tmp: permutation_test(
            [1.0, 2.0, 3.0], [2.0, 3.0], statistic=lambda x, y: np.mean(x) - np.mean(y)
        ),
        error=ConfigError,
        says=(
            r"statistic failed on a \(2, 3\) test input with axis=-1",
            r"vectorised f\(x, y, axis\)",
        ),
    ),
    Case(
        id="stats-permutation-paired-mismatch",
        call=lambda tmp: permutation_test([1.0, 2.0, 3.0], [1.0, 2.0], paired=True),
        error=ShapeError,
        says=(r"paired x and y", r"lengths 3 and 2"),
    ),
    Case(
        id="stats-fdr-no-p-values",
        call=lambda tmp: benjamini_hochberg([]),
        error=DataError,
        says=(r"got no p-values", r"pass at least one"),
    ),
    Case(
        id="stats-fdr-nan",
        call=lambda tmp: benjamini_hochberg([0.01, NAN]),
        error=DataError,
        says=(r"must lie in \[0, 1\]; 1 do not \(first: nan\)", r"Drop untested cells"),
    ),
    Case(
        id="stats-fdr-text",
        call=lambda tmp: benjamini_hochberg(["0.01", "low"]),
        error=DataError,
        says=(r"p-values must be numbers in \[0, 1\]", r"could not convert", r"Pass an array"),
    ),
    Case(
        id="stats-fdr-alpha",
        call=lambda tmp: benjamini_hochberg([0.01], alpha=5.0),
        error=ConfigError,
        says=(r"alpha must lie strictly between 0 and 1; got 5\.0", r"alpha=0\.05"),
    ),
    Case(
        id="stats-fusion-no-columns",
        call=lambda tmp: fuse_signals(np.zeros((10, 0)), [0, 1] * 5),
        error=ShapeError,
        says=(r"signals has shape \(10, 0\): no signal columns", r"at least one column"),
    ),
    Case(
        id="stats-fusion-negative-C",
        call=lambda tmp: fuse_signals(np.random.default_rng(0).random((10, 2)), [0, 1] * 5, C=-1.0),
        error=ConfigError,
        says=(r"need C > 0, a finite number; got -1\.0", r"C=1\.0"),
    ),
    Case(
        id="stats-fusion-nan",
        call=lambda tmp: fuse_signals([[0.1], [NAN]], [0, 1]),
        error=DataError,
        says=(r"signals hold NaN or infinite values", r"drop or impute"),
    ),
    Case(
        id="stats-fusion-rare-class",
        call=lambda tmp: fuse_signals(np.random.default_rng(0).random((6, 2)), [0, 1, 1, 1, 1, 1]),
        error=DataError,
        says=(r"rarer class has 1 samples, fewer than n_splits=5", r"lower n_splits or add"),
    ),
)


# ----- probes -----------------------------------------------------------------------------------------
X, Y = _features()
PROBES: tuple[Case, ...] = (
    *(
        Case(
            id=f"probe-{cls.__name__}-nan-features",
            call=lambda tmp, c=cls: c().fit(_with_nan(X), Y),
            error=DataError,
            says=(rf"{cls.__name__}: Input X contains NaN", r"Drop or impute"),
        )
        for cls in (LogisticProbe, SparseLogisticProbe, MLPProbe)
    ),
    Case(
        id="probe-infinite-features",
        call=lambda tmp: LogisticProbe().fit(_with_nan(X, math.inf), Y),
        error=DataError,
        says=(r"Input X contains infinity", r"Drop or impute"),
    ),
    Case(
        id="probe-nan-in-predict",
        call=lambda tmp: LogisticProbe().fit(X, Y).predict(_with_nan(X)),
        error=DataError,
        says=(r"Input X contains NaN", r"Drop or impute"),
    ),
    Case(
        id="probe-predict-before-fit",
        call=lambda tmp: LogisticProbe().predict(X),
        error=ProbeNotFittedError,
        says=(r"This LogisticProbe instance is not fitted yet", r"Call 'fit'"),
    ),
    Case(
        id="probe-layer-concat-before-fit",
        call=lambda tmp: LayerConcat().transform(X[:, None, :]),
        error=ProbeNotFittedError,
        says=(r"LayerConcat instance is not fitted yet", r"Call 'fit'"),
    ),
    Case(
        id="probe-other-feature-count",
        call=lambda tmp: LogisticProbe().fit(X, Y).decision_function(X[:, :2]),
        error=ShapeError,
        says=(r"X has 2 features, but LogisticProbe is expecting 4", r"Pass the same features"),
    ),
    Case(
        id="probe-one-dimensional-features",
        call=lambda tmp: LogisticProbe().fit(X[:, 0], Y),
        error=ShapeError,
        says=(r"Expected 2D array, got 1D array", r"reshape"),
    ),
    Case(
        id="probe-labels-rows-mismatch",
        call=lambda tmp: LogisticProbe().fit(X, Y[:10]),
        error=ShapeError,
        says=(r"inconsistent numbers of samples: \[40, 10\]", r"Pass X as a finite numeric"),
    ),
    Case(
        id="probe-continuous-labels",
        call=lambda tmp: LogisticProbe().fit(X, np.linspace(0, 1, 40)),
        error=DataError,
        says=(r"Unknown label type: continuous", r"Pass class labels"),
    ),
    Case(
        id="probe-one-class",
        call=lambda tmp: MLPProbe().fit(X, np.ones(40)),
        error=DataError,
        says=(r"Only binary classification is supported", r"1 class\(es\)", r"exactly two classes"),
    ),
    Case(
        id="probe-no-samples",
        call=lambda tmp: LogisticProbe().fit(np.zeros((0, 4)), np.zeros(0)),
        error=DataError,
        says=(r"Found array with 0 sample\(s\)", r"Pass at least one sample"),
    ),
    Case(
        id="probe-negative-sample-weight",
        call=lambda tmp: LogisticProbe().fit(X, Y, sample_weight=-np.ones(40)),
        error=DataError,
        says=(r"sample_weight must be finite, non-negative", r"got e\.g\. -1\.0", r"weight 0"),
    ),
    Case(
        id="probe-negative-C",
        call=lambda tmp: LogisticProbe(C=-1.0).fit(X, Y),
        error=ConfigError,
        says=(r"LogisticProbe\(C=\.\.\.\) must be a positive number; got -1\.0", r"value > 0"),
    ),
    Case(
        id="probe-sparse-one-fold",
        call=lambda tmp: SparseLogisticProbe(cv=1).fit(X, Y),
        error=ConfigError,
        says=(r"SparseLogisticProbe\(cv=\.\.\.\) must be a whole number >= 2; got 1",),
    ),
    Case(
        id="probe-sparse-negative-C-grid",
        call=lambda tmp: SparseLogisticProbe(Cs=[-1.0, 1.0]).fit(X, Y),
        error=ConfigError,
        says=(r"Cs=\.\.\.\) must be a number of C values", r"got \[-1\.0, 1\.0\]", r"Cs=10"),
    ),
    Case(
        id="probe-layer-concat-layer-out-of-range",
        call=lambda tmp: LayerConcat(layers=(0, 9)).fit(np.zeros((4, 3, 2))),
        error=ConfigError,
        says=(r"layers \[9\] are out of range for activations with 3 layers", r"valid: -3\.\.2"),
    ),
    Case(
        id="probe-sweep-nan-activations",
        call=lambda tmp: probe_sweep(
            np.where(np.arange(40)[:, None, None] == 0, NAN, 1.0) * np.ones((40, 2, 4)), Y
        ),
        error=DataError,
        says=(r"activations of layers \[0, 1\] hold NaN or infinite values",),
    ),
    Case(
        id="probe-sweep-nan-C",
        call=lambda tmp: SweepConfig(C=NAN),
        error=ConfigError,
        says=(r"need C > 0, a finite number; got nan", r"C=1\.0"),
    ),
    Case(
        id="probe-sweep-zero-iterations",
        call=lambda tmp: SweepConfig(max_iter=0),
        error=ConfigError,
        says=(r"max_iter must be a whole number >= 1; got 0",),
    ),
    Case(
        id="probe-sweep-missing-layer",
        call=lambda tmp: probe_sweep(np.zeros((40, 2, 4)), Y, layers=[5]),
        error=ConfigError,
        says=(r"layers \[5\] are not available; available layers: \[0, 1\]", r"or None for all"),
    ),
    Case(
        id="probe-sweep-two-dimensional",
        call=lambda tmp: probe_sweep(X, Y),
        error=ShapeError,
        says=(
            r"must be an \(n, layer, d\) array or an ActivationStore; got \(40, 4\)",
            r"np\.stack",
        ),
    ),
    Case(
        id="probe-evaluate-rows-mismatch",
        call=lambda tmp: evaluate_probe(LogisticProbe(), X[:10], Y),
        error=ShapeError,
        says=(r"x has 10 rows", r"there are 40 labels", r"one row of features per label"),
    ),
    Case(
        id="probe-evaluate-one-fold",
        call=lambda tmp: evaluate_probe(LogisticProbe(), X, Y, n_splits=1),
        error=ConfigError,
        says=(r"n_splits must be at least 2 for held-out scores; got 1", r"n_splits=5"),
    ),
    Case(
        id="probe-rank-nan-weights",
        call=lambda tmp: rank_by_weight([0.5, NAN, 1.0]),
        error=DataError,
        says=(r"coef holds 1 NaN or infinite values", r"Drop or impute"),
    ),
    Case(
        id="probe-rank-no-weights",
        call=lambda tmp: rank_by_weight([]),
        error=ShapeError,
        says=(r"coef is empty \(shape \(0,\)\)", r"one value per neuron"),
    ),
    Case(
        id="probe-rank-top-zero",
        call=lambda tmp: rank_by_weight([0.5, 1.0], top_k=0),
        error=ConfigError,
        says=(r"top_k must be a whole number >= 1", r"got 0", r"or None for all"),
    ),
    Case(
        id="probe-layer-concat-layer-names",
        call=lambda tmp: LayerConcat(layers=("last",)).fit(np.zeros((4, 3, 2))),  # type: ignore[arg-type]
        error=ConfigError,
        says=(
            r"LayerConcat\(layers=\.\.\.\) must be a tuple of int positions",
            r"got \('last',\)",
            r"layers=\(-2, -1\)",
        ),
    ),
    Case(
        id="probe-sweep-negative-seed",
        call=lambda tmp: SweepConfig(seed=-1),
        error=ConfigError,
        says=(r"seed must be a whole number >= 0; got -1",),
    ),
    Case(
        id="probe-ranking-top-negative",
        call=lambda tmp: rank_by_weight([0.5, 1.0]).top(-1),
        error=ConfigError,
        says=(r"k must be a whole number >= 1 \(how many neurons to keep\); got -1", r"k=10"),
    ),
    Case(
        id="probe-rank-nan-activations",
        call=lambda tmp: rank_by_mean_difference(_with_nan(X), Y),
        error=DataError,
        says=(r"acts holds 1 NaN or infinite values", r"Drop or impute"),
    ),
)


# ----- the activation store ---------------------------------------------------------------------------
STORE: tuple[Case, ...] = (
    Case(
        id="store-create-on-a-file",
        call=lambda tmp: ActivationStore.create(_file(tmp, "taken", "x"), layers=[0], d=4),
        error=ConfigError,
        says=(r"cannot create an activation store at .*taken", r"File exists", r"not a file"),
    ),
    Case(
        id="store-create-under-a-file",
        call=lambda tmp: ActivationStore.create(_file(tmp, "taken", "x") / "s", layers=[0], d=4),
        error=ConfigError,
        says=(r"cannot create an activation store at .*taken/s", r"Not a directory"),
    ),
    Case(
        id="store-create-bfloat16",
        call=lambda tmp: _store(tmp, dtype="bfloat16"),
        error=ConfigError,
        says=(r"dtype must be one of \('float16', 'float32'\)", r"got 'bfloat16'"),
        leaves=("store",),
    ),
    Case(
        id="store-create-negative-layer",
        call=lambda tmp: _store(tmp, layers=[-1, 0]),
        error=ConfigError,
        says=(r"layers=\[-1, 0\]", r"whole numbers >= 0", r"layers=range\(32\)"),
        leaves=("store",),
    ),
    Case(
        id="store-create-zero-width",
        call=lambda tmp: _store(tmp, d=0),
        error=ConfigError,
        says=(r"need d >= 1, a whole number", r"got d=0"),
        leaves=("store",),
    ),
    Case(
        id="store-open-missing",
        call=lambda tmp: ActivationStore.open(tmp / "nowhere"),
        error=DataError,
        says=(
            r"is not an activation store: manifest\.json is missing",
            r"does not exist",
            r"ActivationStore\.create",
        ),
    ),
    Case(
        id="store-open-manifest-not-json",
        call=lambda tmp: _damaged_manifest(tmp, "{broken"),
        error=DataError,
        says=(r"manifest\.json cannot be read as JSON", r"re-extract|Re-extract"),
    ),
    Case(
        id="store-open-manifest-missing-field",
        call=lambda tmp: _damaged_manifest(
            tmp, json.dumps({"format": "vrp-activation-store", "version": 1})
        ),
        error=DataError,
        says=(r"field 'dtype' must be one of", r"got None", r"re-extract"),
    ),
    Case(
        id="store-open-manifest-a-list",
        call=lambda tmp: _damaged_manifest(tmp, "[1, 2]"),
        error=DataError,
        says=(
            r"is not a vrp-activation-store manifest \(a JSON list, not an object\)",
            r"ActivationStore\.create",
        ),
    ),
    Case(
        id="store-append-wrong-shape",
        call=lambda tmp: _store(tmp).append(np.zeros((3, 3, 4), dtype=np.float32)),
        error=ShapeError,
        says=(r"\(batch, 2, 4\) for this store; got \(3, 3, 4\)", r"Stack the stored layers"),
    ),
    Case(
        id="store-append-ids-of-another-count",
        call=lambda tmp: _store(tmp).append(np.zeros((2, 2, 4), dtype=np.float32), ["a"]),
        error=ShapeError,
        says=(r"got 1 sample_ids for 2 rows", r"one id per row"),
    ),
    Case(
        id="store-append-integer-activations",
        call=lambda tmp: _store(tmp).append(np.zeros((1, 2, 4), dtype=np.int64)),
        error=DataError,
        says=(r"must be floating point \(stored as float16\); got int64",),
    ),
    Case(
        id="store-append-read-only",
        call=lambda tmp: ActivationStore.open(_store(tmp).path).append(np.zeros((1, 2, 4))),
        error=ConfigError,
        says=(r"opened read-only", r"writable=True"),
    ),
    Case(
        id="store-read-missing-layer",
        call=lambda tmp: _store(tmp).layer(7),
        error=ConfigError,
        says=(r"layer 7 is not in this store; stored layers: \(0, 1\)", r"Pass one of them"),
    ),
    Case(
        id="store-read-deleted-layer-file",
        call=_deleted_layer,
        error=DataError,
        says=(r"layer_001\.bin is missing", r"Re-extract into a new store"),
    ),
)


# ----- loading models -----------------------------------------------------------------------------
LOAD: tuple[Case, ...] = (
    Case(
        id="load-dtype-float33",
        call=lambda tmp: vrp.load("tiny/llava", dtype="float33"),
        error=ConfigError,
        says=(
            r"dtype must be a floating torch dtype or its name; got 'float33'",
            r"torch\.bfloat16",
        ),
    ),
    Case(
        id="load-integer-dtype",
        call=lambda tmp: vrp.load("tiny/llava", dtype=torch.int32),
        error=ConfigError,
        says=(r"floating torch dtype", r"got torch\.int32", r"None to keep"),
    ),
    Case(
        id="load-unknown-attention",
        call=lambda tmp: vrp.load("tiny/llava", attn_implementation="foo"),
        error=ConfigError,
        says=(
            r"attn_implementation must be one of \('eager', 'sdpa'",
            r"got 'foo'",
            r"Use 'sdpa' for speed or 'eager'",
        ),
    ),
    Case(
        id="load-flash-attention-on-cpu",
        call=lambda tmp: vrp.load("tiny/llava", attn_implementation="flash_attention_2"),
        error=ConfigError,
        says=(r"needs the flash-attn package and a CUDA device", r"device is cpu", r"use 'sdpa'"),
    ),
    Case(
        id="load-unknown-device",
        call=lambda tmp: vrp.load("tiny/llava", device="gpu"),
        error=ConfigError,
        says=(r"device 'gpu' is not a device torch knows", r"Pass 'cpu', 'cuda'"),
    ),
    Case(
        id="load-absent-cuda-device",
        call=lambda tmp: vrp.load("tiny/llava", device="cuda:99"),
        error=ConfigError,
        says=(r"device 'cuda:99' is not available", r"CUDA device\(s\)", r"Pass 'cpu'"),
    ),
    Case(
        id="load-empty-name",
        call=lambda tmp: vrp.load(""),
        error=ModelNotFoundError,
        says=(r"Unknown model ''", r"Expected a built-in name \(tiny/llava"),
    ),
    Case(
        id="load-missing-weights",
        call=_load_damaged(_drop("model.safetensors")),
        error=ModelNotFoundError,
        says=(
            r"holds config\.json but no weights",
            r"expected model\.safetensors",
            r"Copy the weight files",
        ),
    ),
    Case(
        id="load-truncated-weights",
        call=_load_damaged(_truncate_weights),
        error=AdapterError,
        says=(
            r"model\.safetensors is truncated or damaged",
            r"declares [\d,]+ bytes of tensors, it holds [\d,]+",
            r"Restore it",
        ),
    ),
    Case(
        id="load-weights-not-safetensors",
        call=_load_damaged(lambda f: (f / "model.safetensors").write_bytes(b"hello")),
        error=AdapterError,
        says=(r"model\.safetensors is truncated or damaged: its header does not fit its 5 bytes",),
    ),
    Case(
        id="load-config-not-json",
        call=_load_damaged(lambda f: (f / "config.json").write_text("{not json", encoding="utf-8")),
        error=AdapterError,
        says=(
            r"config\.json is damaged: expected a UTF-8 JSON file",
            r"Expecting property name",
            r"Restore it",
        ),
    ),
    Case(
        id="load-config-not-utf8",
        call=_load_damaged(lambda f: (f / "config.json").write_bytes(b"\xff\xfe{}")),
        error=AdapterError,
        says=(r"config\.json is damaged", r"can't decode byte 0xff"),
    ),
    Case(
        id="load-config-a-list",
        call=_load_damaged(lambda f: (f / "config.json").write_text("[1, 2]", encoding="utf-8")),
        error=AdapterError,
        says=(
            r"config\.json must be a JSON object with a model_type",
            r"holds a JSON list",
            r"Re-save",
        ),
    ),
    Case(
        id="load-config-without-model-type",
        call=_load_damaged(_edit_config(model_type=None)),
        error=AdapterError,
        says=(r"config\.json must be a JSON object with a model_type", r"holds no model_type"),
    ),
    Case(
        id="load-config-unknown-model-type",
        call=_load_damaged(_edit_config(model_type="blip_2")),
        error=AdapterError,
        says=(
            r"Unknown model family 'blip_2'",
            r"Registered families: llava",
            r"vrp\.models\.register",
        ),
    ),
    Case(
        id="load-config-without-text-config",
        call=_load_damaged(_edit_config(text_config=None)),
        error=AdapterError,
        says=(
            r"describes a llava model of [\d,]+ parameters, but the weight files hold [\d,]+",
            r"Restore config\.json",
        ),
    ),
    Case(
        id="load-config-of-another-family",
        call=_load_damaged(_edit_config(model_type="paligemma")),
        error=AdapterError,
        says=(
            r"does not describe a paligemma model transformers can build",
            r"Restore config\.json",
        ),
    ),
    Case(
        id="load-missing-tokenizer",
        call=_load_damaged(_drop("tokenizer.json")),
        error=AdapterError,
        says=(
            r"do not build a working llava processor",
            r"Missing there: tokenizer\.json",
            r"vrp\.save",
        ),
    ),
    Case(
        id="load-missing-tokenizer-config",
        call=_load_damaged(_drop("tokenizer_config.json")),
        error=AdapterError,
        says=(r"do not build a working llava processor", r"Missing there: tokenizer_config\.json"),
    ),
    Case(
        id="load-missing-processor-config",
        call=_load_damaged(_drop("processor_config.json")),
        error=AdapterError,
        says=(r"do not build a working llava processor", r"Missing there: processor_config\.json"),
    ),
    Case(
        id="load-qwen2-vl-missing-image-processor",
        call=_load_damaged(_drop("preprocessor_config.json"), "qwen2_vl"),
        error=AdapterError,
        says=(r"working qwen2_vl processor", r"Missing there: preprocessor_config\.json"),
    ),
    Case(
        id="load-qwen2-vl-missing-tokenizer-config",
        call=_load_damaged(_drop("tokenizer_config.json"), "qwen2_vl"),
        error=AdapterError,
        says=(
            r"working qwen2_vl processor",
            r"no token beginning the answer 'yes'",
            r"Missing there: tokenizer_config\.json",
        ),
    ),
    Case(
        id="load-tokenizer-not-json",
        call=_load_damaged(lambda f: (f / "tokenizer.json").write_text("{", encoding="utf-8")),
        error=AdapterError,
        says=(r"tokenizer\.json is damaged: expected a UTF-8 JSON file",),
    ),
    Case(
        id="save-model-onto-a-file",
        call=lambda tmp: vrp.models.save(_vlm(), _file(tmp, "model.bin", "x")),
        error=ConfigError,
        says=(r"cannot save a model to .*model\.bin: it is a file", r"Pass a folder path"),
    ),
)

CASES: tuple[Case, ...] = (*INTERVENTIONS, *GRAPH_JSON, *STATS, *PROBES, *STORE, *LOAD)
