"""Placement and randomness: VRP keeps a model where the user put it and leaves global state alone.

These run on the CPU in CI. With `--device cuda` (a CUDA machine) the same suites run the models on
the GPU; the `gpu`-marked tests here then check what only a GPU can show.
"""

import warnings
from unittest import mock

import pytest
import torch

import vrp
from vrp.data import SyntheticConfig, generate
from vrp.interventions import Capture, ImagePatchMask, graph, run_graph
from vrp.models import VLM
from vrp.pipeline import SignalConfig, batch_signals

from ..conftest import QUESTIONS, random_images


def test_wrapping_keeps_a_cpu_model_on_the_cpu_when_cuda_exists(tiny_vlms) -> None:
    """nnsight wraps the model in a transformers pipeline, which moves a model given no device to
    cuda:0 whenever CUDA exists. Pretend CUDA exists: the model must stay on the CPU."""
    base = tiny_vlms["llava"]
    if base.device.type != "cpu":
        pytest.skip("checks a CPU model")
    with mock.patch("transformers.pipelines.base.is_torch_cuda_available", return_value=True):
        vlm = VLM(model=base.hf, processor=base.processor, adapter=base.adapter, name="cpu")
    assert vlm.device == torch.device("cpu")
    assert {p.device.type for p in vlm.hf.parameters()} == {"cpu"}


def test_seeded_generation_is_reproducible_and_restores_the_global_generator(vlm) -> None:
    inputs = vlm.encode(random_images(2), list(QUESTIONS[:2]))
    kwargs = {"max_new_tokens": 3, "do_sample": True, "num_return_sequences": 4}
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    first = vlm.generate(inputs, seed=7, **kwargs)
    assert torch.equal(torch.random.get_rng_state(), before)
    assert vlm.generate(inputs, seed=7, **kwargs) == first
    if vlm.device.type == "cuda":
        cuda_before = torch.cuda.get_rng_state(vlm.device)
        vlm.generate(inputs, seed=8, **kwargs)
        assert torch.equal(torch.cuda.get_rng_state(vlm.device), cuda_before)


def test_bfloat16_model_runs_graphs_and_signals(tiny_vlms, load_model) -> None:
    vlm = load_model("tiny/llava", dtype=torch.bfloat16)
    assert next(vlm.hf.parameters()).dtype == torch.bfloat16
    inputs = vlm.encode(random_images(2), list(QUESTIONS[:2]))
    site = vrp.Site(layer=0, component=vrp.Component.RESID_POST)
    masked = graph(
        ImagePatchMask(patches=((0, 3), (1, 2)), fill="zero"), Capture(site=site, name="r")
    )
    result = run_graph(vlm, masked, inputs)
    assert result["r"].dtype == torch.bfloat16 and bool(torch.isfinite(result["r"]).all())
    samples = [s for s in generate(SyntheticConfig(n_per_split=2, n_counting=0, n_spatial=0))][:2]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", vrp.UndefinedSignalWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        rows = batch_signals(vlm, samples, SignalConfig(samples=2)).samples
    assert all(r.answer in ("yes", "no") for r in rows)
    assert all(torch.isfinite(torch.tensor(r.answer_logprob)) for r in rows)


@pytest.mark.gpu
def test_cuda_model_stays_on_its_device_through_every_entry_point(load_model, device) -> None:
    vlm = load_model("tiny/llava")
    assert vlm.device.type == "cuda"
    inputs = vlm.encode(random_images(2), list(QUESTIONS[:2]))
    zero = graph(ImagePatchMask(patches=((0, 1), (2, 3)), fill="zero"))
    assert run_graph(vlm, zero, inputs).answer_logits["main"].device.type == "cuda"
    cpu = load_model("tiny/llava", device="cpu")
    assert cpu.device.type == "cpu"  # vrp.load(device="cpu") is obeyed with CUDA present


def test_memory_chunking_counts_the_real_dtype_and_the_logits(tiny_vlms, load_model) -> None:
    from vrp.interventions._execute import bytes_per_row

    full = tiny_vlms["llava"]
    half = load_model("tiny/llava", dtype=torch.bfloat16)
    shape = full.adapter.shape(vrp.Tower.LANGUAGE)
    vocab = full.adapter.unembedding(full.hf).shape[1]
    seq = 20
    layer = seq * (4 * shape.d_model + shape.d_mlp + shape.n_heads * seq)
    width = next(full.hf.parameters()).element_size()
    logits = seq * vocab * 4
    assert bytes_per_row(full, seq) == shape.n_layers * layer * width + logits
    assert bytes_per_row(half, seq) == shape.n_layers * layer * 2 + logits
    assert bytes_per_row(full, seq, 1) == shape.n_layers * layer * width + vocab * 4


def test_traces_unembed_only_the_answer_position(tiny_vlms) -> None:
    """The executor, the resumed runs' plain run and `answer_logits` compute the answer
    position's logits only (the budget counts that one), unless `extra` asks for more."""
    from vrp.interventions import ExecutionConfig, Graph, run_graph
    from vrp.interventions._execute import _logit_positions
    from vrp.interventions._resume_state import resume_state

    vlm = tiny_vlms["llava"]
    inputs = vlm.encode(random_images(2, seed=0), QUESTIONS[:2])
    widths: list[int] = []
    head = vlm.hf.get_output_embeddings()
    handle = head.register_forward_hook(lambda _m, args, _o: widths.append(args[0].shape[1]))
    try:
        full = vlm.logits(inputs)
        answer = vlm.answer_logits(inputs)
        run_graph(vlm, Graph(nodes=()), inputs)
        resume_state(vlm, inputs, ExecutionConfig(), layers={1})
        everything = ExecutionConfig(extra={"logits_to_keep": 0})
        run_graph(vlm, Graph(nodes=()), inputs, everything)
    finally:
        handle.remove()
    assert widths == [inputs.seq_len, 1, 1, 1, inputs.seq_len]
    torch.testing.assert_close(answer, full[:, -1], atol=1e-5, rtol=0)
    assert _logit_positions(ExecutionConfig()) == 1
    assert _logit_positions(everything) is None
