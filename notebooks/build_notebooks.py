"""Builds the example notebooks in this folder with nbformat, without outputs.

Edit the cell sources below, then run ``python notebooks/build_notebooks.py`` from the repository
root; tests/docs/test_notebooks.py executes every notebook. The notebooks are examples: what they
use is explained in the guides under docs/.
"""

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

OUT = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent


def notebook(cells):
    made = [new_markdown_cell(c[3:]) if c.startswith("md:") else new_code_cell(c) for c in cells]
    for index, cell in enumerate(made):
        cell["id"] = f"cell-{index:02d}"  # stable ids: rebuilding changes nothing but edits
    nb = new_notebook(cells=made)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


QUICKSTART = [
    """md:# VRP quickstart: load, sites, capture, patch, plot

This notebook runs on `tiny/llava`, a random-weight LLaVA that VRP builds offline in milliseconds:
the numbers are meaningless, but every code path is the one a real checkpoint takes (pass a
checkpoint directory, a Hub id or `organism/llava` to `vrp.load` instead). It is an example; the
explanations live in the guides (*Getting started*, *Sites and adapters*, *Intervention graphs*).""",
    """import matplotlib.pyplot as plt
import torch
from PIL import Image

import vrp
from vrp import Component, ImageTokens, LastToken, Site, Tower
from vrp.interventions import AttentionKnockout, Capture, Patch, graph, run_graph

_ = torch.manual_seed(0)""",
    """md:## Load a model and encode a batch

`vrp.load` returns a `VLM` handle: the transformers model, its nnsight wrapper, the family's adapter
and its processor. `encode` applies the family's prompt template and left-pads the batch.""",
    """vlm = vrp.load("tiny/llava")
images = [Image.new("RGB", (32, 32), colour) for colour in ("red", "blue", "green")]
questions = ["is there a red circle ?", "is there a blue square ?", "is there a green cross ?"]
inputs = vlm.encode(images, questions)
print(vlm)
print(vlm.prompt(questions[0]))
print("batch", inputs.batch_size, "seq", inputs.seq_len, "image tokens", inputs.n_image_tokens,
      "grid", inputs.grids[0])""",
    """md:## Sites

A `Site` names a tower, a layer, a component and optional head, neuron and position selectors.
`vlm.sites()` lists every (layer, component) of a tower in forward order.""",
    """for tower in Tower:
    print(tower.value, len(vlm.sites(tower)), "sites")
for site in vlm.sites()[:7]:
    print(" ", site)""",
    """md:## Capture

Reads are `Capture` nodes of an intervention graph; `run_graph` runs them in one trace and returns
the values in canonical shapes.""",
    """layers = range(vlm.adapter.n_layers)
reads = graph(
    *(Capture(site=Site(layer=l, component=Component.RESID_POST, positions=LastToken()), name=f"resid{l}")
      for l in layers),
    *(Capture(site=Site(layer=l, component=Component.ATTN_PATTERN, positions=LastToken()), name=f"pattern{l}")
      for l in layers),
)
result = run_graph(vlm, reads, inputs)
for name, captured in result.captures.items():
    print(f"{name:9} {str(captured.site):45} {tuple(captured.value.shape)}")""",
    """md:## Plot the answer's attention to the image

The attention from the answer position (the last token) to the image tokens, averaged over heads,
reshaped onto the patch grid. `vrp.signals.image_attention` does the gathering.""",
    """from vrp import signals

patterns = [result[f"pattern{l}"] for l in layers]  # batch head 1 key
queries = torch.zeros(inputs.batch_size, dtype=torch.long)
maps = signals.average_heads(signals.image_attention(patterns, inputs.image_mask, queries, inputs.grids[0]))
entropy = signals.spatial_entropy(maps.per_layer)

fig, axes = plt.subplots(1, len(layers), figsize=(3 * len(layers), 3))
for l, ax in zip(layers, axes):
    ax.imshow(maps.per_layer[0, l].numpy(), cmap="viridis")
    ax.set_title(f"layer {l}: H_s = {entropy.normalised[0, l]:.2f}")
    ax.axis("off")
fig.suptitle(questions[0])
fig.tight_layout()
fig.savefig("attention_maps.png", dpi=80)  # also shown inline in Jupyter
plt.show()""",
    """md:## Patch clean into corrupted

Two runs in one graph: `Patch` copies the clean run's residual stream at the last token into the
corrupted run, one layer at a time. The yes/no margin of the corrupted run moves towards the clean
one as the patched layer gets later (on a real model; here the weights are random).""",
    """clean = vlm.encode(images[:1], ["is there a red circle ?"])
corrupt = vlm.encode(images[1:2], ["is there a red circle ?"])
margin = lambda result, run: vlm.yes_no_margin(result.answer_logits[run]).item()

margins = []
for l in layers:
    patch = graph(
        Patch(site=Site(layer=l, component=Component.RESID_POST, positions=LastToken()),
              source="clean", run="corrupt"),
        runs=("clean", "corrupt"),
    )
    patched = run_graph(vlm, patch, {"clean": clean, "corrupt": corrupt})
    margins.append(margin(patched, "corrupt"))
clean_margin = vlm.yes_no_margin(vlm.answer_logits(clean)).item()  # no intervention
corrupt_margin = vlm.yes_no_margin(vlm.answer_logits(corrupt)).item()
print("clean", clean_margin, "corrupt", corrupt_margin)
print("patched per layer", margins)

fig, ax = plt.subplots(figsize=(4, 3))
ax.plot(list(layers), margins, marker="o", label="corrupt, patched at layer")
ax.axhline(clean_margin, color="green", linestyle="--", label="clean")
ax.axhline(corrupt_margin, color="red", linestyle="--", label="corrupt")
ax.set_xlabel("layer"); ax.set_ylabel("yes - no logit"); ax.legend()
fig.savefig("patching.png", dpi=80)
plt.show()""",
    """md:## Knock out attention to the image, and save the graph

An `AttentionKnockout` blocks the answer position's attention to every image token at one layer.
Graphs are plain data: they save to JSON and load back exactly.""",
    """import tempfile
from pathlib import Path

knockout = graph(
    *(AttentionKnockout(layer=l, queries=LastToken(), keys=ImageTokens()) for l in layers),
    Capture(site=Site(layer=1, component=Component.ATTN_PATTERN, positions=LastToken()), name="pattern"),
)
blocked = run_graph(vlm, knockout, inputs)
to_image = blocked["pattern"][:, :, 0][..., inputs.image_mask[0]].sum(-1)
print("attention to the image after the knockout:", to_image.max().item())

path = knockout.save(Path(tempfile.mkdtemp()) / "knockout.json")
print(knockout.render())
assert vrp.interventions.Graph.load(path).to_json() == knockout.to_json()""",
]

SIGNALS = [
    """md:# Benchmark and signals: synthetic POPE through a model organism

Generate a synthetic POPE benchmark with `vrp.data`, answer it with the shipped LLaVA organism (a
small LLaVA trained by VRP, right on most questions and wrong on some: see its model card), compute
reliability signals from one capture trace per batch, and test whether they relate to correctness,
with intervals and held-out scores. The guides *Benchmarks and data* and *Signals, probes and
statistics* explain every step.""",
    """import matplotlib.pyplot as plt
import numpy as np
import torch

import vrp
from vrp import data, signals, stats

_ = torch.manual_seed(0)""",
    """md:## A synthetic POPE benchmark

Scenes of coloured shapes on a 4x4 grid; POPE questions about present and absent objects, with
random, popular and adversarial negatives.""",
    """config = data.SyntheticConfig(seed=1, n_per_split=120, n_counting=2, n_spatial=2)
dataset = data.generate(config)
pope = dataset.subset(split="adversarial")
print(dataset)
print(pope.questions[0])
for split in data.benchmark_stats(dataset).splits[:3]:
    print(f"{split.split:12} n={split.n} answers={split.answers} "
          f"negative co-occurrence={split.negative_cooccurrence:.3f}")

fig, axes = plt.subplots(1, 4, figsize=(8, 2.2))
for ax, sample in zip(axes, list(pope)[:4]):  # questions alternate yes / no
    ax.imshow(sample.image)
    ax.set_title(f"{sample.category}: {sample.answer}", fontsize=8)
    ax.axis("off")
fig.savefig("scenes.png", dpi=80)
plt.show()""",
    """md:## Answer it with the LLaVA organism

`vrp.load("organism/llava")` loads the shipped organism offline: the real LLaVA class and processor,
a word tokenizer over the benchmark's vocabulary, one 16 px patch per grid cell. The answer is read
from the yes/no logits; `evaluate` applies POPE's metrics with Wilson intervals.""",
    """from vrp.pipeline import SignalConfig, dataset_signals

vlm = vrp.load("organism/llava")
batches = dataset_signals(vlm, pope, SignalConfig(batch_size=12, samples=3, max_new_tokens=2))
records = [record for batch in batches for record in batch.samples]

report = data.evaluate(pope.questions, [r.answer for r in records])
metrics = report.splits["adversarial"]
for name in ("accuracy", "precision", "recall", "yes_ratio"):
    print(f"{name:10} {getattr(metrics, name)}")""",
    """md:## Signals against correctness

`dataset_signals` computed every signal of the three stages per question. Below, the point-biserial
correlation of each *label-free* signal with correctness, with a 95% interval and n.

Leave out the signals computed from the correct answer: the logit-lens `truth_margin` (correct
token against the best other) and `visual_attribution` (the same margin, image minus blank image)
describe how the answer forms, but they are positive exactly when the correct token wins, so they
"predict" correctness by construction.""",
    """correct = np.array([r.correct for r in records], dtype=int)
names = ["spatial_entropy", "clusters_components", "top_heads_entropy", "vocab_entropy",
         "logit_gap", "answer_logprob", "mlp_share", "self_consistency"]
table = np.column_stack([[getattr(r, name) for r in records] for name in names]).astype(float)
results = {}
for name, column in zip(names, table.T):
    if np.ptp(column) == 0:
        print(f"{name:20} constant on this set: no correlation to estimate")
        continue
    results[name] = stats.point_biserial(column, correct)
    print(f"{name:20} {results[name]}")

fig, ax = plt.subplots(figsize=(5, 3))
names_ok = list(results)
values = [results[n].estimate for n in names_ok]
errors = np.array([[results[n].estimate - results[n].ci_low, results[n].ci_high - results[n].estimate]
                   for n in names_ok]).T
ax.errorbar(values, range(len(names_ok)), xerr=errors, fmt="o")
ax.axvline(0, color="grey", linewidth=0.8)
ax.set_yticks(range(len(names_ok)), names_ok)
ax.set_xlabel("point-biserial r with correctness (95% CI)")
fig.tight_layout()
fig.savefig("signals.png", dpi=80)
plt.show()""",
    """md:## Held-out fusion and a probe

Signals fused by a z-scored logistic regression, and a logistic probe on the last layer's hidden
state: both scored on held-out folds only, the probe next to its shuffled-label control (which
should sit near 0.5). With 120 questions the intervals are wide: read them, not the points.""",
    """from vrp.probes import LogisticProbe, evaluate_probe

usable = [i for i, n in enumerate(names) if n in results]
fused = stats.fuse_signals(table[:, usable], correct, names=[names[i] for i in usable], n_splits=5)
print("fused signals   ", fused.auroc)

hidden = np.concatenate([batch.hidden for batch in batches])  # n layer d_model
probe = evaluate_probe(LogisticProbe(), hidden[:, -1], correct, n_splits=5)
print("probe           ", probe.auroc)
print("shuffled control", probe.control)""",
]

OUT.mkdir(parents=True, exist_ok=True)
nbformat.write(notebook(QUICKSTART), OUT / "01_quickstart.ipynb")
nbformat.write(notebook(SIGNALS), OUT / "02_benchmark_and_signals.ipynb")
for path in sorted(OUT.glob("*.ipynb")):
    nbformat.validate(nbformat.read(path, as_version=4))
    print("wrote", path)
