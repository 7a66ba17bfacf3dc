"""Every node type, on all three families, equals a hand-written plain-PyTorch-hooks version."""

import pytest
import torch

import vrp.models as models
from tests.conftest import QUESTIONS, random_images
from tests.reference import captured, hooked_logits
from vrp.core import Component, ImageTokens, Indices, LastToken, Site, Tower
from vrp.interventions import (
    Add,
    AttentionKnockout,
    ImagePatchMask,
    MeanAblate,
    Patch,
    ResampleAblate,
    Scale,
    Zero,
    graph,
    run_graph,
)

ATOL = 1e-5


@pytest.fixture
def inputs(vlm: models.VLM) -> models.VlmInputs:
    return vlm.encode(random_images(3), QUESTIONS[:3])


def _graph_logits(vlm, node, inputs) -> torch.Tensor:
    return run_graph(vlm, graph(node), inputs).answer_logits["main"]


def test_zero_neurons_at_last_token(vlm, inputs) -> None:
    site = Site(layer=1, component=Component.MLP_NEURONS, neurons=(0, 5), positions=LastToken())

    def edit(x: torch.Tensor) -> torch.Tensor:
        x[:, -1, [0, 5]] = 0
        return x

    expected = hooked_logits(vlm, inputs, [(site, edit)])
    torch.testing.assert_close(
        _graph_logits(vlm, Zero(site=site), inputs), expected, atol=ATOL, rtol=0
    )


def test_mean_ablate_one_head_on_image_tokens(vlm, inputs) -> None:
    shape = vlm.adapter.shape(Tower.LANGUAGE)
    site = Site(layer=0, component=Component.HEAD_OUT, heads=(1,), positions=ImageTokens())
    mean = torch.randn(inputs.n_image_tokens, 1, shape.d_head)

    def edit(x: torch.Tensor) -> torch.Tensor:
        heads = x.view(*x.shape[:2], shape.n_heads, shape.d_head)
        for row in range(x.shape[0]):
            heads[row, inputs.image_mask[row], 1] = mean[:, 0]
        return x

    expected = hooked_logits(vlm, inputs, [(site, edit)])
    got = _graph_logits(vlm, MeanAblate(site=site, mean=mean), inputs)
    torch.testing.assert_close(got, expected, atol=ATOL, rtol=0)


def test_resample_ablate_residual(vlm, inputs) -> None:
    site = Site(layer=0, component=Component.RESID_POST, positions=LastToken())
    d_model = vlm.adapter.shape(Tower.LANGUAGE).d_model
    pool = torch.randn(5, 1, d_model)
    draw = torch.randint(5, (3,), generator=torch.Generator().manual_seed(7))

    def edit(x: torch.Tensor) -> torch.Tensor:
        x[:, -1] = pool[draw, 0]
        return x

    expected = hooked_logits(vlm, inputs, [(site, edit)])
    got = _graph_logits(vlm, ResampleAblate(site=site, pool=pool, seed=7), inputs)
    torch.testing.assert_close(got, expected, atol=ATOL, rtol=0)


def test_patch_clean_into_corrupt(vlm) -> None:
    clean = vlm.encode(random_images(2, seed=1), QUESTIONS[:2])
    corrupt = vlm.encode(random_images(2, seed=2), QUESTIONS[2:4])
    site = Site(layer=1, component=Component.RESID_PRE, positions=LastToken())
    donor = captured(vlm, clean, site)[:, -1]

    def edit(x: torch.Tensor) -> torch.Tensor:
        x[:, -1] = donor
        return x

    expected = hooked_logits(vlm, corrupt, [(site, edit)])
    node = Patch(site=site, source="clean", run="corrupt")
    result = run_graph(
        vlm, graph(node, runs=("clean", "corrupt")), {"clean": clean, "corrupt": corrupt}
    )
    torch.testing.assert_close(result.answer_logits["corrupt"], expected, atol=ATOL, rtol=0)
    torch.testing.assert_close(
        result.answer_logits["clean"], vlm.answer_logits(clean), atol=ATOL, rtol=0
    )


def test_add_direction_to_attention_output(vlm, inputs) -> None:
    site = Site(layer=1, component=Component.ATTN_OUT, positions=Indices((-1, -2)))
    direction = torch.randn(vlm.adapter.shape(Tower.LANGUAGE).d_model)

    def edit(x: torch.Tensor) -> torch.Tensor:
        x[:, -2:] += 3.0 * direction
        return x

    expected = hooked_logits(vlm, inputs, [(site, edit)])
    got = _graph_logits(vlm, Add(site=site, direction=direction, coefficient=3.0), inputs)
    torch.testing.assert_close(got, expected, atol=ATOL, rtol=0)


def test_scale_mlp_output(vlm, inputs) -> None:
    site = Site(layer=0, component=Component.MLP_OUT)
    expected = hooked_logits(vlm, inputs, [(site, lambda x: x * 0.25)])
    torch.testing.assert_close(
        _graph_logits(vlm, Scale(site=site, factor=0.25), inputs), expected, atol=ATOL, rtol=0
    )


def test_zero_vision_block(vlm, inputs) -> None:
    site = Site(tower=Tower.VISION, layer=0, component=Component.MLP_OUT)
    expected = hooked_logits(vlm, inputs, [(site, torch.zeros_like)])
    torch.testing.assert_close(
        _graph_logits(vlm, Zero(site=site), inputs), expected, atol=ATOL, rtol=0
    )


def test_attention_knockout_last_token_to_image(vlm, inputs) -> None:
    n_heads = vlm.adapter.shape(Tower.LANGUAGE).n_heads
    layer = 1
    module = vlm.hf.get_submodule(f"model.language_model.layers.{layer}.self_attn")

    def pre(_module, args, kwargs):
        mask = kwargs["attention_mask"]
        mask = mask.expand(mask.shape[0], n_heads, *mask.shape[2:]).clone()
        for row in range(mask.shape[0]):
            keys = inputs.image_mask[row].nonzero()[:, 0]
            # SDPA's boolean mask (True = may attend) or eager's additive one
            mask[row, 2, -1, keys] = (
                False if mask.dtype == torch.bool else torch.finfo(mask.dtype).min
            )
        return args, {**kwargs, "attention_mask": mask}

    handle = module.register_forward_pre_hook(pre, with_kwargs=True)
    try:
        expected = vlm.answer_logits(inputs)
    finally:
        handle.remove()
    node = AttentionKnockout(layer=layer, heads=(2,), queries=LastToken(), keys=ImageTokens())
    got = _graph_logits(vlm, node, inputs)
    torch.testing.assert_close(got, expected, atol=ATOL, rtol=0)
    assert (got - vlm.answer_logits(inputs)).abs().max() > 1e-6  # the knockout did something


def test_image_patch_mask(vlm, inputs) -> None:
    site = Site(tower=Tower.PROJECTOR, layer=0, component=Component.RESID_POST)
    patches = [0, 3, 5]

    def edit(x: torch.Tensor) -> torch.Tensor:
        tokens = x.reshape(inputs.batch_size, -1, x.shape[-1])  # Qwen2-VL's merger output is flat
        tokens[:, patches] = tokens.mean(dim=1, keepdim=True)
        return tokens.reshape(x.shape)

    expected = hooked_logits(vlm, inputs, [(site, edit)])
    got = _graph_logits(vlm, ImagePatchMask(patches=tuple(patches), fill="mean"), inputs)
    torch.testing.assert_close(got, expected, atol=ATOL, rtol=0)


def test_capture_equals_hook_read(vlm, inputs) -> None:
    from vrp.interventions import Capture

    site = Site(layer=1, component=Component.MLP_NEURONS, neurons=(2, 7), positions=LastToken())
    result = run_graph(vlm, graph(Capture(site=site, name="n")), inputs)
    reference = captured(vlm, inputs, site)[:, -1:, [2, 7]]
    torch.testing.assert_close(result["n"], reference, atol=ATOL, rtol=0)
