"""Round trip of a remote trace on `vrp serve` (loopback) against the same trace run locally.

Run: ``OMP_NUM_THREADS=1 python benchmarks/bench_remote.py [--model organism/llava] [--repeats 30]``

Starts ``vrp serve --model MODEL --port 0`` in a subprocess (one torch thread), loads the same model
in this process, and times, interleaved (local, remote, local, remote, ...), two workloads at
batch 2:

(a) plain nnsight: a trace saving 4 decoder-layer outputs (``model.trace(..., remote=URL)``);
(b) a VRP graph: 4 residual captures and a 2-neuron zero ablation (``ExecutionConfig(backend=URL)``).

Prints the medians, the added milliseconds and the ratio, then where the added time goes: the
client's serialisation of the trace, the ``httpx.Client`` nnsight 0.8.1 builds for every request
(its TLS context alone takes 10-20 ms; VRP's graphs post through one pooled client instead), the
websocket handshake, and the server's own time (from the COMPLETED status' meta). Target (issue
#15): under 30 ms added per request.
"""

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
import nnsight
import torch
import websocket
from nnsight.intervention.backends.remote import RemoteBackend

import vrp
from vrp.core import Component, LastToken, Site
from vrp.interventions import Capture, ExecutionConfig, Zero, graph, run_graph
from vrp.models import VLM

TARGET_MS = 30.0
LAYERS = (0, 1, 2, 3)


def start_server(model: str) -> tuple[subprocess.Popen[str], str]:
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(root)}
    command = [sys.executable, "-c", "from vrp.cli import main; main()", "serve", "--model", model]
    server = subprocess.Popen(
        [*command, "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env=env,
    )  # fmt: skip
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(server.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(300)
    if not line or " on http://" not in line[0]:
        server.kill()
        raise SystemExit("vrp serve did not start (run it by hand to see why)")
    return server, line[0].rsplit(" on ", 1)[1].strip()


class Timings:
    """Client-side pieces of each remote request, recorded by wrapping nnsight's own calls."""

    def __init__(self) -> None:
        self.parts: dict[str, list[float]] = {}
        self.server_ms: list[float] = []

    def add(self, name: str, ms: float) -> None:
        self.parts.setdefault(name, []).append(ms)

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.add(name, (time.perf_counter() - start) * 1e3)

        return timed

    @contextmanager
    def recording(self) -> Iterator[None]:
        note = RemoteBackend.note

        def noted(backend: RemoteBackend, response: Any) -> bool:
            if response.meta and "run_s" in response.meta:
                self.server_ms.append(response.meta["run_s"] * 1e3)
            return note(backend, response)

        with (
            mock.patch.object(RemoteBackend, "_serialize", self.wrap("serialise", RemoteBackend._serialize)),
            mock.patch.object(httpx.Client, "__init__", self.wrap("httpx.Client()", httpx.Client.__init__)),
            mock.patch.object(websocket, "create_connection", self.wrap("websocket handshake", websocket.create_connection)),
            mock.patch.object(RemoteBackend, "note", noted),
        ):  # fmt: skip
            yield


def nnsight_trace(vlm: VLM, data: dict, remote: str | bool) -> Callable[[], object]:
    model = vlm.nnsight

    def run() -> object:
        with torch.no_grad(), model.trace(data, remote=remote):
            saved = nnsight.save([model.model.language_model.layers[i].output for i in LAYERS])
        return saved

    return run


def graph_run(vlm: VLM, inputs: Any, backend: str) -> Callable[[], object]:
    g = graph(
        *[Capture(site=Site(layer=i, component=Component.RESID_POST), name=f"r{i}") for i in LAYERS],
        Zero(site=Site(layer=1, component=Component.MLP_NEURONS, neurons=(0, 3), positions=LastToken())),
    )  # fmt: skip
    config = ExecutionConfig(backend=backend)
    return lambda: run_graph(vlm, g, inputs, config)


def interleaved(local: Callable[[], object], remote: Callable[[], object], repeats: int):
    for _ in range(3):  # warm-up: first traces compile and cache
        local(), remote()
    local_ms, remote_ms = [], []
    for _ in range(repeats):
        for fn, into in ((local, local_ms), (remote, remote_ms)):
            start = time.perf_counter()
            fn()
            into.append((time.perf_counter() - start) * 1e3)
    return statistics.median(local_ms), statistics.median(remote_ms)


def report(name: str, local: float, remote: float, timings: Timings, requests: int) -> bool:
    added = remote - local
    print(f"\n{name}")
    print(
        f"  local  {local:7.2f} ms   remote {remote:7.2f} ms   added {added:6.2f} ms   ratio {remote / local:.2f}"
    )
    print("  where the time goes (median of each call, calls per request):")
    for key, values in timings.parts.items():
        print(f"    {key:<36} {statistics.median(values):6.2f} ms  x {len(values) / requests:.2f}")
    server = statistics.median(timings.server_ms)
    print(f"    {'server: load + run + checks + encode':<36} {server:6.2f} ms  x 1.00")
    met = added < TARGET_MS
    print(f"  target: under {TARGET_MS:g} ms added -> {'met' if met else 'NOT met'}")
    return met


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="organism/llava")
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    torch.set_num_threads(1)
    nnsight.CONFIG.APP.REMOTE_LOGGING = False
    server, url = start_server(args.model)
    try:
        vlm = vrp.load(args.model)
        from PIL import Image

        images = [Image.new("RGB", (64, 64), c) for c in ("red", "blue")]
        inputs = vlm.encode(images, ["is there a red circle ?", "is there a blue square ?"])
        print(f"{args.model} on {url}: batch 2, {inputs.seq_len} tokens, {args.repeats} interleaved repeats, "
              f"torch {torch.__version__}, nnsight {nnsight.__version__ if hasattr(nnsight, '__version__') else '0.8.1'}, "
              f"{time.strftime('%Y-%m-%d')}")  # fmt: skip
        met = True
        for name, local, remote in (
            ("(a) nnsight trace saving 4 layer outputs", nnsight_trace(vlm, inputs.data, False), nnsight_trace(vlm, inputs.data, url)),
            ("(b) VRP graph: 4 captures + a 2-neuron ablation", graph_run(vlm, inputs, "local"), graph_run(vlm, inputs, url)),
        ):  # fmt: skip
            timings = Timings()
            with timings.recording():
                local_ms, remote_ms = interleaved(local, remote, args.repeats)
            met &= report(name, local_ms, remote_ms, timings, args.repeats + 3)
    finally:
        server.terminate()
        server.wait(30)
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
