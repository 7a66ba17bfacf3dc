"""Intervention-graph speed, measured side by side in one run.

Run: ``OMP_NUM_THREADS=1 python benchmarks/bench_graph.py [--model organism/llava] [--repeats 30]``

(a) A graph (4 residual captures + a zero-ablation of two MLP neurons at the last token) against the
    same work written as plain PyTorch forward hooks, at batch 8. Target: ratio <= 1.3.
(b) 32 single-site activation patches (clean -> corrupt, layer x position cells) as one graph with
    33 runs, against 32 separate graph runs. Target: speed-up >= 8. The graph runs planned (its
    patched copies of one input resumed from each patch's layer and, on causal families,
    position; `ExecutionConfig.plan`) and, for comparison, as written in one trace.
Prints medians over interleaved repeats and the ratios.
"""

import argparse
import statistics
import time
from collections.abc import Callable

import torch

import vrp
from vrp.core import Component, Indices, LastToken, Site
from vrp.interventions import Capture, ExecutionConfig, Patch, Zero, graph, run_graph
from vrp.models import VLM, ModelSpec, VlmInputs, build_vlm

ORGANISM_LIKE = ModelSpec(
    image_size=64, patch_size=16, vision_width=64, vision_mlp=128, vision_heads=4,
    text_layers=4, text_width=128, text_heads=8, text_kv_heads=8, text_mlp=256,
)  # fmt: skip
"""Used when no organism is shipped yet: the organisms' size class."""


def _images(n: int, seed: int) -> list:
    from PIL import Image

    g = torch.Generator().manual_seed(seed)
    arrays = (torch.rand(n, 64, 64, 3, generator=g) * 255).to(torch.uint8).numpy()
    return [Image.fromarray(a) for a in arrays]


def _model(name: str | None) -> VLM:
    if name:
        return vrp.load(name)
    if "organism/llava" in vrp.models.builtin_names():
        return vrp.load("organism/llava")
    return build_vlm("llava", ORGANISM_LIKE, name="organism-sized llava (random weights)")


def _median_ms(fn: Callable[[], object], repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return times


def _hooks_version(vlm: VLM, inputs: VlmInputs, layers: list[int]) -> Callable[[], object]:
    lm = vlm.hf.model.language_model.layers  # the reference names HF paths on purpose

    def run() -> object:
        saved: list[torch.Tensor] = []
        handles = [lm[i].register_forward_hook(lambda m, a, o: saved.append(o[:, -1:].clone()))
                   for i in layers]  # fmt: skip

        def zero(_m: object, args: tuple) -> tuple:
            x = args[0].clone()
            x[:, -1, [3, 7]] = 0
            return (x,)

        handles.append(lm[1].mlp.down_proj.register_forward_pre_hook(zero))
        try:
            with torch.no_grad():
                logits = vlm.hf(**inputs.data, logits_to_keep=1).logits[:, -1]
        finally:
            for h in handles:
                h.remove()
        return saved, logits

    return run


def bench_overhead(vlm: VLM, repeats: int) -> float:
    inputs = vlm.encode(_images(8, 0), ["is there a red circle ?"] * 8)
    layers = list(range(min(4, vlm.adapter.n_layers)))
    nodes = [Capture(site=Site(layer=i, component=Component.RESID_POST, positions=LastToken()),
                     name=f"r{i}") for i in layers]  # fmt: skip
    nodes.append(Zero(site=Site(layer=1, component=Component.MLP_NEURONS, neurons=(3, 7),
                                positions=LastToken())))  # fmt: skip
    g = graph(*nodes)
    hooks = _hooks_version(vlm, inputs, layers)
    with_graph = lambda: run_graph(vlm, g, inputs)  # noqa: E731
    hooks(), with_graph()  # warm up
    a, b = [], []
    for _ in range(repeats):  # interleave so that machine noise hits both alike
        a += _median_ms(hooks, 1)
        b += _median_ms(with_graph, 1)
    ha, gb = statistics.median(a), statistics.median(b)
    print(
        f"(a) batch 8: plain hooks {ha:.2f} ms, graph {gb:.2f} ms, ratio {gb / ha:.2f} (target <= 1.3)"
    )
    return gb / ha


def bench_patch_batching(vlm: VLM, repeats: int, pairs: int = 1) -> float:
    clean = vlm.encode(_images(pairs, 1), ["is there a red circle ?"] * pairs)
    corrupt = vlm.encode(_images(pairs, 2), ["is there a blue square ?"] * pairs)
    layers = vlm.adapter.n_layers
    cells = [(layer, pos) for layer in range(layers) for pos in range(-(32 // layers), 0)][:32]
    sites = [
        Site(layer=i, component=Component.RESID_POST, positions=Indices((p,))) for i, p in cells
    ]
    names = [f"p{i}" for i in range(len(sites))]
    one = graph(*(Patch(site=s, source="clean", run=n) for s, n in zip(sites, names, strict=True)),
                runs=("clean", *names))  # fmt: skip
    one_inputs = {"clean": clean, **{n: corrupt for n in names}}
    singles = [graph(Patch(site=s, source="clean", run="corrupt"), runs=("clean", "corrupt"))
               for s in sites]  # fmt: skip

    def separate() -> None:
        for g in singles:
            run_graph(vlm, g, {"clean": clean, "corrupt": corrupt})

    batched = lambda: run_graph(vlm, one, one_inputs)  # noqa: E731
    written = lambda: run_graph(vlm, one, one_inputs, ExecutionConfig(plan="off"))  # noqa: E731
    batched(), written(), separate()
    a, b, c = [], [], []
    for _ in range(max(3, repeats // 5)):
        a += _median_ms(separate, 1)
        b += _median_ms(batched, 1)
        c += _median_ms(written, 1)
    sa, sb, sc = statistics.median(a), statistics.median(b), statistics.median(c)
    print(f"(b) 32 patches, {pairs} pair(s): separate traces {sa:.1f} ms, one graph {sb:.1f} ms "
          f"(planned: resumed from each patch's layer and position), speed-up {sa / sb:.1f}x "
          f"(target >= 8); one graph as written (plan='off') {sc:.1f} ms, "
          f"{sa / sc:.1f}x")  # fmt: skip
    return sa / sb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--pairs", type=int, default=1, help="rows of each run in (b)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    vlm = _model(args.model)
    print(f"model: {vlm.name} ({sum(p.numel() for p in vlm.hf.parameters()):,} parameters), "
          f"threads: {args.threads}")  # fmt: skip
    bench_overhead(vlm, args.repeats)
    bench_patch_batching(vlm, args.repeats, args.pairs)


if __name__ == "__main__":
    main()
