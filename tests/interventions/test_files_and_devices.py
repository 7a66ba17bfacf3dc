"""Graph files are written atomically, and interventions create their tensors on the model's device.

The device tests run on the CPU too: a dispatch mode records every operation that mixes tensors of
two devices, which is the bug a CUDA model meets (index or fill tensors left on the CPU). With
`--device cuda` the `gpu` test runs the same nodes on a real GPU against a CPU reference.
"""

import os
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils import _pytree as pytree
from torch.utils._python_dispatch import TorchDispatchMode

import vrp
from vrp import Component, Indices, Site, Tower
from vrp.interventions import (
    AttentionKnockout,
    Capture,
    Graph,
    ImagePatchMask,
    MeanAblate,
    Patch,
    ResampleAblate,
    Zero,
    graph,
    run_graph,
)

from ..conftest import QUESTIONS, random_images


class _MixedDevices(TorchDispatchMode):
    """Records operations whose tensor arguments live on more than one device."""

    def __init__(self) -> None:
        super().__init__()
        self.mixed: list[str] = []

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        tensors = [t for t in pytree.tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
        devices = {t.device.type for t in tensors if t.dim() > 0}  # 0-d CPU scalars are allowed
        if len(devices) > 1:
            self.mixed.append(f"{func}: {sorted(devices)}")
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("fill", ["zero", "mean"])
@pytest.mark.parametrize("patches", [(1, 5), ((1, 5), (2, 7))], ids=["shared", "per-row"])
def test_patch_mask_creates_its_tensors_on_the_tokens_device(fill: str, patches: Any) -> None:
    tokens = torch.zeros(2, 16, 8, device="meta")  # any device other than the CPU shows the bug
    node = ImagePatchMask(patches=patches, fill=fill)  # type: ignore[arg-type]
    with _MixedDevices() as mode:
        out = node.apply_tokens(tokens, torch.arange(2))
    assert mode.mixed == []
    assert out.device == tokens.device and out.shape == tokens.shape


def test_patch_mask_fills_the_chosen_patches_only() -> None:
    tokens = torch.arange(2 * 4 * 3, dtype=torch.float32).reshape(2, 4, 3)
    out = ImagePatchMask(patches=((0,), (3,)), fill="zero").apply_tokens(tokens, torch.arange(2))
    assert torch.equal(out[0, 0], torch.zeros(3)) and torch.equal(out[1, 3], torch.zeros(3))
    assert torch.equal(out[0, 1:], tokens[0, 1:]) and torch.equal(out[1, :3], tokens[1, :3])


def test_a_failed_save_leaves_neither_a_partial_nor_a_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    g = graph(Zero(site=Site(layer=0, component=Component.RESID_POST)))
    target = g.save(tmp_path / "g.json")
    before = target.read_bytes()

    def disk_full(src: Any, dst: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", disk_full)
    bigger = graph(*[Zero(site=Site(layer=i % 2, component=Component.MLP_OUT)) for i in range(4)])
    with pytest.raises(vrp.ConfigError, match=r"cannot save the graph to .*No space left"):
        bigger.save(target)
    assert target.read_bytes() == before  # the old graph is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.json"]  # no temporary file left
    assert Graph.load(target) == g


def _device_graph(vlm: vrp.VLM, reference: vrp.models.VlmInputs) -> Graph:
    """Every node kind whose apply creates tensors, on every tower."""
    resid = Site(layer=0, component=Component.RESID_POST, positions=vrp.LastToken())
    pool = run_graph(vlm, graph(Capture(site=resid, name="x")), reference)["x"]
    vision = Site(
        tower=Tower.VISION, layer=0, component=Component.MLP_OUT, positions=Indices((0, -1))
    )
    return graph(
        Zero(site=vision, run="b"),
        ImagePatchMask(patches=((0, 3), (1, 2)), fill="mean", run="b"),
        MeanAblate(site=resid, mean=pool.mean(0), run="b"),
        ResampleAblate(site=resid.replace(layer=1), pool=pool, seed=3, run="b"),
        Patch(
            site=Site(layer=1, component=Component.MLP_OUT, positions=vrp.LastToken()),
            source="a",
            run="b",
        ),
        AttentionKnockout(layer=1, heads=(0, 2), run="b"),
        Capture(site=Site(layer=1, component=Component.RESID_POST), name="out", run="b"),
        runs=("a", "b"),
    )


@pytest.mark.gpu
def test_every_node_runs_on_cuda_like_on_the_cpu(load_model) -> None:  # noqa: ANN001
    gpu, cpu = load_model("tiny/llava"), load_model("tiny/llava", device="cpu")
    assert gpu.device.type == "cuda"
    results = []
    for vlm in (gpu, cpu):
        runs = {
            n: vlm.encode(random_images(2, seed=s), list(QUESTIONS[:2]))
            for n, s in (("a", 1), ("b", 2))
        }
        result = run_graph(vlm, _device_graph(vlm, runs["a"]), runs)
        results.append((result["out"], result.answer_logits["b"]))
    (out_gpu, logits_gpu), (out_cpu, logits_cpu) = results
    assert out_gpu.device.type == "cuda"
    torch.testing.assert_close(out_gpu.cpu(), out_cpu, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(logits_gpu.cpu(), logits_cpu, atol=1e-4, rtol=1e-4)
