"""Attention patterns without eager attention: time and memory against eager, side by side.

Run: ``OMP_NUM_THREADS=1 python benchmarks/bench_attention.py [--repeats 5] [--layers 4]``

One model at Qwen2-VL-2B's real widths (cut to `--layers` decoder layers and 2 vision layers,
float32, CPU) reads the attention pattern of one decoder layer for a batch of 4 images at
448 x 448 px (256 image tokens each), in two conditions, each in its own fresh process so that
peak memory is its own: the whole model under eager attention (transformers' weights), and the
model under SDPA with the pattern recomputed from that layer's inputs (VRP's default path).
Prints the median time per trace and the peak resident memory during the traces above the
resident memory before them (the peak is reset after a warm-up trace, so model building does not
count).
"""

import argparse
import gc
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path


def _condition(attn: str, layers: int, repeats: int) -> dict[str, float]:
    import torch
    from PIL import Image

    from vrp.core import Component, LastToken, Site
    from vrp.interventions import Capture, graph, run_graph
    from vrp.models import build_published

    torch.set_num_threads(1)
    vlm = build_published(
        "qwen2-vl-2b", text_layers=layers, vision_layers=2, dtype=torch.float32,
        attn_implementation=attn,
    )  # fmt: skip
    images = [Image.new("RGB", (448, 448), c) for c in ("red", "blue", "green", "gray")]
    inputs = vlm.encode(images, ["is there a red circle ?"] * 4)
    site = Site(layer=layers - 1, component=Component.ATTN_PATTERN, positions=LastToken())
    g = graph(Capture(site=site, name="pattern"))
    run_graph(vlm, g, inputs)  # warm-up: allocator pools, lazy imports
    gc.collect()
    base = _status_kib("VmRSS")
    _reset_peak()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run_graph(vlm, g, inputs)
        times.append(time.perf_counter() - start)
    return {"seconds": statistics.median(times), "extra_mib": (_status_kib("VmHWM") - base) / 1024,
            "seq": inputs.seq_len}  # fmt: skip


def _status_kib(field: str) -> int:
    """A memory figure of this process from /proc/self/status (Linux), in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}: this benchmark needs Linux")


def _reset_peak() -> None:
    """Resets the peak resident memory (VmHWM) to the current one, so that the peak read after
    the traces is theirs, not the model building's (Linux: ``5 > /proc/self/clear_refs``)."""
    Path("/proc/self/clear_refs").write_text("5")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--child", default=None)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_condition(args.child, args.layers, args.repeats)))
        return
    results = {}
    for attn in ("eager", "sdpa"):
        command = [sys.executable, __file__, "--child", attn, "--layers", str(args.layers),
                   "--repeats", str(args.repeats)]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        results[attn] = json.loads(done.stdout.strip().splitlines()[-1])
    eager, sdpa = results["eager"], results["sdpa"]
    print(f"sequence {eager['seq']} tokens, batch 4, {args.layers} decoder layers, float32, CPU")
    for name, r in (("eager everywhere", eager), ("sdpa + recomputed", sdpa)):
        print(f"{name:>18}: {r['seconds'] * 1000:8.0f} ms/trace, peak +{r['extra_mib']:6.0f} MiB")
    print(f"time ratio sdpa/eager: {sdpa['seconds'] / eager['seconds']:.2f}")


if __name__ == "__main__":
    main()
