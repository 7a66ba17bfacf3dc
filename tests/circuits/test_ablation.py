"""Ablation studies: equal to hand-run graphs and exact McNemar tests; planted null effects."""

import numpy as np
import pytest
import torch

import vrp
from circuits import (
    MaskingConfig,
    NeuronAblationConfig,
    answer_correctness,
    attention_guided_masking,
    neuron_ablation,
)
from vrp import Component, Indices, LastToken, Site
from vrp.data import SyntheticConfig, generate
from vrp.interventions import ImagePatchMask, Zero, graph, run_graph
from vrp.stats import mcnemar_exact


@pytest.fixture(scope="module")
def samples():
    dataset = generate(SyntheticConfig(n_per_split=10, n_counting=0, n_spatial=0, seed=5))
    return [s for s in dataset if s.split == "adversarial"][:12]


def _says_yes(vlm, inputs, nodes=()):
    logits = run_graph(vlm, graph(*nodes), inputs).answer_logits["main"]
    return (vlm.yes_no_margin(logits) > 0).numpy()


def test_neuron_ablation_equals_hand_run_graphs(vlm, samples) -> None:
    config = NeuronAblationConfig(n_controls=3, positions=LastToken(), batch_size=5)
    study = neuron_ablation(vlm, samples, layer=1, neurons=[0, 3, 5], config=config)
    truth = np.array([s.answer == "yes" for s in samples])
    site = Site(layer=1, component=Component.MLP_NEURONS, neurons=(0, 3, 5), positions=LastToken())
    baseline, ablated = [], []
    for start in range(0, len(samples), 5):
        chunk = samples[start : start + 5]
        inputs = vlm.encode([s.image for s in chunk], [s.question for s in chunk])
        baseline.append(_says_yes(vlm, inputs))
        ablated.append(_says_yes(vlm, inputs, [Zero(site=site)]))
    before = np.concatenate(baseline) == truth
    after = np.concatenate(ablated) == truth
    assert study.target == mcnemar_exact(before, after)
    assert study.baseline.estimate == pytest.approx(before.mean())
    assert len(study.controls) == 3 and 0 < study.p_vs_controls <= 1


def test_planted_null_ablation_changes_nothing(vlm, samples) -> None:
    """The first token's neurons at the last layer are read by no later computation."""
    last = vlm.adapter.n_layers - 1
    config = NeuronAblationConfig(n_controls=2, positions=Indices((0,)), mode="mean")
    study = neuron_ablation(vlm, samples, layer=last, neurons=list(range(8)), config=config)
    assert study.target.estimate == 0.0 and study.target.p_value == 1.0
    assert study.control_mean == 0.0 and study.p_vs_controls == 1.0


def test_attention_guided_masking_structure_and_equivalence(vlm, samples) -> None:
    chosen = samples[:6]
    studies = attention_guided_masking(
        vlm, chosen, MaskingConfig(fraction=0.25, n_random=2, batch_size=6)
    )
    assert set(studies) == {"top", "bottom"}
    assert len(studies["top"].controls) == 2
    # the top mask of row 0 equals a hand-built ImagePatchMask on that row alone
    from vrp.pipeline import answer_attention

    inputs = vlm.encode([s.image for s in chosen], [s.question for s in chosen])
    order = answer_attention(vlm, inputs).mean.flatten(1).argsort(dim=1, descending=True)
    k = round(0.25 * order.shape[1])
    row = inputs.rows([0], trim=False)
    mask = ImagePatchMask(patches=tuple(order[0, :k].tolist()), fill="mean")
    expected = _says_yes(vlm, row, [mask])[0] == (chosen[0].answer == "yes")
    truth = np.array([s.answer == "yes" for s in chosen])
    masked = answer_correctness(vlm, [(inputs, truth)], lambda _inputs, _i: [mask])
    assert masked[0] == expected


def test_ablation_errors(vlm, samples) -> None:
    with pytest.raises(vrp.ConfigError, match=r"needs 1..48 neurons, got 0"):
        neuron_ablation(vlm, samples, layer=0, neurons=[])
    with pytest.raises(vrp.ConfigError, match=r"fraction must lie in \(0, 1\], got 1.5"):
        MaskingConfig(fraction=1.5)
    counting = [s for s in generate(SyntheticConfig(n_per_split=2, n_counting=2, n_spatial=0, seed=1))
                if s.split == "counting"]  # fmt: skip
    with pytest.raises(vrp.DataError, match=r"Ablation studies need yes/no questions.*'counting'"):
        neuron_ablation(vlm, counting, layer=0, neurons=[1])


def test_unit_means_average_real_tokens_only(vlm, samples) -> None:
    from circuits import unit_means
    from tests.reference import captured

    chunk = samples[:3]
    inputs = vlm.encode([s.image for s in chunk], [s.question for s in chunk])
    site = Site(layer=1, component=Component.MLP_NEURONS)
    raw = captured(vlm, inputs, site)  # batch seq d_mlp, pads included
    expected = raw[inputs.attention_mask.bool()].mean(dim=0)
    np.testing.assert_allclose(unit_means(vlm, [inputs], 1).numpy(), expected.numpy(), atol=1e-5)


def test_controls_exclude_the_targets(vlm, samples) -> None:
    with pytest.raises(vrp.ConfigError, match=r"drawn from the other 8 neurons"):
        neuron_ablation(vlm, samples, layer=0, neurons=list(range(40)))


def test_painting_every_patch_equals_a_grey_image(vlm, samples) -> None:
    from circuits import paint_patches

    image = samples[0].image
    painted = paint_patches(image, (4, 4), range(16), grey=128)
    assert (np.asarray(painted) == 128).all()
    one = np.asarray(paint_patches(image, (4, 4), [5]))  # row 1, column 1 of a 64 px image
    assert (one[16:32, 16:32] == 128).all() and (one[:16] == np.asarray(image)[:16]).all()


def test_pixel_level_masking_runs_and_differs_from_token_level(vlm, samples) -> None:
    config = MaskingConfig(fraction=0.5, n_random=1, level="pixel", batch_size=4)
    studies = attention_guided_masking(vlm, samples[:4], config)
    assert "pixel level" in studies["top"].label and len(studies["top"].controls) == 1


def test_dims_selector_equals_hooks(vlm) -> None:
    from tests.conftest import QUESTIONS, random_images
    from tests.reference import hooked_logits

    inputs = vlm.encode(random_images(2), QUESTIONS[:2])
    site = Site(layer=0, component=Component.RESID_POST, dims=(1, 4, 9))

    def edit(x):
        x[..., [1, 4, 9]] = 0
        return x

    got = run_graph(vlm, graph(Zero(site=site)), inputs).answer_logits["main"]
    torch.testing.assert_close(got, hooked_logits(vlm, inputs, [(site, edit)]), atol=1e-5, rtol=0)
    with pytest.raises(vrp.SiteError, match=r"dims \[32\] out of range.*32 dims per layer"):
        vlm.validate(Site(layer=0, component=Component.RESID_POST, dims=(32,)))
    with pytest.raises(vrp.SiteError, match=r"dims selector needs a d_model-wide component"):
        Site(layer=0, component=Component.MLP_NEURONS, dims=(1,))


def test_scaled_random_ablation_planted_ends(vlm, samples) -> None:
    """Zeroing every hidden dimension after the last layer leaves logits of zero, a margin of 0:
    every question is answered "no", so accuracy is the share of "no" questions."""
    from circuits import scaled_random_ablation

    last = vlm.adapter.n_layers - 1
    points = scaled_random_ablation(vlm, samples, layer=last, fractions=(0.25, 1.0), n_draws=2)
    assert [p.n_dims for p in points] == [8, 32]
    share_no = np.mean([s.answer == "no" for s in samples])
    assert points[1].accuracy.estimate == pytest.approx(share_no)
    assert points[0].change.n == len(samples)
    with pytest.raises(vrp.ConfigError, match=r"fractions in \(0, 1\]"):
        scaled_random_ablation(vlm, samples, layer=0, fractions=(0.0,))


def test_mlp_bypass_equals_zeroing_the_mlp_output(vlm, samples) -> None:
    from circuits import mlp_bypass

    study = mlp_bypass(vlm, samples, layer=0, batch_size=6)
    truth = np.array([s.answer == "yes" for s in samples])
    said = []
    for start in range(0, len(samples), 6):
        chunk = samples[start : start + 6]
        inputs = vlm.encode([s.image for s in chunk], [s.question for s in chunk])
        said.append(_says_yes(vlm, inputs, [Zero(site=Site(layer=0, component=Component.MLP_OUT))]))
    baseline = np.concatenate([_says_yes(vlm, vlm.encode([s.image for s in samples[i : i + 6]],
                                                          [s.question for s in samples[i : i + 6]]))
                               for i in range(0, len(samples), 6)]) == truth  # fmt: skip
    assert study.target == mcnemar_exact(baseline, np.concatenate(said) == truth)
    assert study.controls == () and np.isnan(study.control_mean) and np.isnan(study.p_vs_controls)


def test_paint_patches_warns_that_a_centre_crop_would_misplace_cells_on_non_square_images() -> None:
    from PIL import Image

    from circuits import paint_patches

    with pytest.warns(UserWarning, match=r"64x48 image.*centre-crop.*region=vlm.image_region"):
        paint_patches(Image.new("RGB", (64, 48)), (4, 4), [1])


@pytest.mark.parametrize("family", ["llava", "paligemma", "qwen2_vl"])
@pytest.mark.parametrize("size", [(96, 48), (40, 90), (50, 50)])
def test_a_painted_cell_is_the_patch_the_vision_tower_sees(load_model, family, size) -> None:
    """Through the real processor: painting cell k within `image_region` changes the processed
    pixels of patch k (its centre becomes the grey level) and leaves the centres of the other
    patches as they were, for wide, tall and square images. LLaVA's processor centre-crops: on a
    2:1 image the grid's first column lies wholly outside the crop when laid over the whole image."""
    from PIL import Image

    from circuits import paint_patches

    vlm = load_model(f"tiny/{family}")
    noise = np.random.default_rng(0).integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    image = Image.fromarray(noise)
    region = vlm.image_region(image.size)
    if family != "llava":
        assert region == (0.0, 0.0, float(size[0]), float(size[1]))
        return  # resized whole: the grid covers the image (Qwen2-VL's pixels are pre-patched)
    side = vlm.processor.image_processor.crop_size.height
    grid = vlm.encode([image], ["q"]).grids[0]
    cell = side // grid[1]

    def seen(picture: Image.Image) -> np.ndarray:
        return vlm.processor.image_processor(picture, return_tensors="pt")["pixel_values"][
            0
        ].numpy()

    grey = seen(Image.new("RGB", image.size, (128, 128, 128)))[:, side // 2, side // 2]
    before = seen(image)
    for patch in (0, grid[0] * grid[1] - 1, grid[1] + 1):
        after = seen(paint_patches(image, grid, [patch], grey=128, region=region))
        centres = [(r * cell + cell // 2, c * cell + cell // 2)
                   for r in range(grid[0]) for c in range(grid[1])]  # fmt: skip
        for k, (y, x) in enumerate(centres):
            if k == patch:
                np.testing.assert_allclose(after[:, y, x], grey, atol=0.05)
            else:
                np.testing.assert_allclose(after[:, y, x], before[:, y, x], atol=0.05)
    if size[0] == 2 * size[1]:  # the whole-image grid's first column lies outside the crop
        with pytest.warns(UserWarning):
            whole = seen(paint_patches(image, grid, [0]))
        np.testing.assert_allclose(whole[:, :, 2:], before[:, :, 2:], atol=1e-6)  # resampling
        # blurs the crop's first two columns; nothing of the painted cell is inside it
