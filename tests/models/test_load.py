"""Loading: built-in names, and the real-checkpoint path exercised on saved tiny instances."""

import pytest
import torch

import vrp
import vrp.models as models
from tests.conftest import QUESTIONS, random_images


def test_checkpoint_directory_round_trip(vlm: models.VLM, tmp_path) -> None:
    models.save(vlm, tmp_path)
    loaded = vrp.load(tmp_path)
    assert loaded.family == vlm.family
    assert type(loaded.processor) is type(vlm.processor)
    images = random_images(2)
    a = vlm.encode(images, QUESTIONS[:2])
    b = loaded.encode(images, QUESTIONS[:2])
    assert torch.equal(a.input_ids, b.input_ids)
    torch.testing.assert_close(loaded.answer_logits(b), vlm.answer_logits(a), atol=1e-5, rtol=0)


def test_family_prompt_formats(tiny_vlms: dict[str, models.VLM]) -> None:
    assert tiny_vlms["llava"].prompt("q ?") == "USER: <image>\nq ? ASSISTANT:"
    assert tiny_vlms["paligemma"].prompt("q ?") == "<image>answer en q ?"
    assert tiny_vlms["qwen2_vl"].prompt("q ?").startswith("<|im_start|>user\n<|vision_start|>")


def test_family_extras_reach_the_model(tiny_vlms: dict[str, models.VLM]) -> None:
    images = random_images(1)
    assert "token_type_ids" in tiny_vlms["paligemma"].encode(images, ["q ?"]).data
    qwen = tiny_vlms["qwen2_vl"].encode(images, ["q ?"]).data
    assert {"image_grid_thw", "mm_token_type_ids"} <= set(qwen)
    grid_t, grid_h, grid_w = qwen["image_grid_thw"][0].tolist()
    assert tiny_vlms["qwen2_vl"].encode(images, ["q ?"]).grids[0] == (grid_h // 2, grid_w // 2)


def test_answer_tokens_and_generation(vlm: models.VLM) -> None:
    assert vlm.answer_tokens.yes and vlm.answer_tokens.no
    assert not set(vlm.answer_tokens.yes) & set(vlm.answer_tokens.no)
    inputs = vlm.encode(random_images(2), QUESTIONS[:2])
    texts = vlm.generate(inputs, max_new_tokens=2)
    assert len(texts) == 2 and all(isinstance(t, str) for t in texts)
    assert vlm.yes_no_margin(vlm.answer_logits(inputs)).shape == (2,)


def test_raw_nnsight_is_exposed(vlm: models.VLM) -> None:
    inputs = vlm.encode(random_images(1), QUESTIONS[:1])
    with vlm.nnsight.trace(inputs.data):
        hidden = vlm.nnsight.model.language_model.layers[0].output.save()
    assert hidden.shape[:2] == (1, inputs.seq_len)


def test_lens_weights_reproduce_the_logits(vlm: models.VLM) -> None:
    """final_norm + unembedding applied to the last layer's output give the model's logits, and
    W_O applied to the per-head outputs gives the attention output."""
    import nnsight

    from vrp.core import Component, Site

    inputs = vlm.encode(random_images(2), QUESTIONS[:2])
    last = vlm.adapter.n_layers - 1
    resid = Site(layer=last, component=Component.RESID_POST)
    heads = Site(layer=last, component=Component.HEAD_OUT)
    attn = Site(layer=last, component=Component.ATTN_OUT)
    with torch.no_grad(), vlm.nnsight.trace(inputs.data):
        h = nnsight.save(vlm.adapter.read(vlm.nnsight, heads, inputs))
        a = nnsight.save(vlm.adapter.read(vlm.nnsight, attn, inputs))
        r = nnsight.save(vlm.adapter.read(vlm.nnsight, resid, inputs))
    with torch.no_grad():
        lens = vlm.adapter.final_norm(vlm.hf)(r[:, -1]) @ vlm.adapter.unembedding(vlm.hf)
        projected = h.flatten(-2) @ vlm.adapter.head_output_weight(vlm.hf, last).T
    torch.testing.assert_close(lens, vlm.answer_logits(inputs), atol=1e-5, rtol=0)
    torch.testing.assert_close(projected, a, atol=1e-5, rtol=0)


def test_final_norm_linearisation_is_exact_at_the_final_residual(vlm: models.VLM) -> None:
    resid = torch.randn(3, vlm.adapter.shape(vrp.Tower.LANGUAGE).d_model)
    gain, divisor = vlm.adapter.final_norm_linearisation(vlm.hf, resid)
    with torch.no_grad():
        expected = vlm.adapter.final_norm(vlm.hf)(resid)
        torch.testing.assert_close(resid * gain / divisor[:, None], expected, atol=1e-5, rtol=1e-5)


def test_gemma_head_width_can_exceed_width_over_heads() -> None:
    """PaliGemma's heads may be wider than d_model / n_heads (as Gemma-7B's): the adapter reads
    their true width, and W_O maps the per-head outputs back onto the attention output."""
    import nnsight

    from vrp.core import Component, Site, Tower

    vlm = models.build_vlm("paligemma", models.ModelSpec(text_head_dim=24), seed=0)
    shape = vlm.adapter.shape(Tower.LANGUAGE)
    assert (shape.n_heads, shape.d_head, shape.d_model) == (4, 24, 32)
    inputs = vlm.encode(random_images(2), QUESTIONS[:2])
    heads = Site(layer=1, component=Component.HEAD_OUT)
    attn = Site(layer=1, component=Component.ATTN_OUT)
    with torch.no_grad(), vlm.nnsight.trace(inputs.data):
        h = nnsight.save(vlm.adapter.read(vlm.nnsight, heads, inputs))
        a = nnsight.save(vlm.adapter.read(vlm.nnsight, attn, inputs))
    assert h.shape[-2:] == (4, 24)
    w_o = vlm.adapter.head_output_weight(vlm.hf, 1)
    torch.testing.assert_close(h.flatten(-2) @ w_o.T, a, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("family", "head_dim"), [("llava", 16), ("qwen2_vl", 16), ("paligemma", 0)]
)
def test_head_width_is_refused_where_it_would_be_ignored(family: str, head_dim: int) -> None:
    with pytest.raises(vrp.AdapterError, match=f"text_head_dim={head_dim} for {family}"):
        models.build_vlm(family, models.ModelSpec(text_head_dim=head_dim))


def test_rotary_base_and_mrope_split_reach_the_model() -> None:
    """`text_rope_theta` and `mrope_section` set the decoder's rotary frequencies and which of them
    Qwen2-VL's image tokens use for their (time, height, width) positions."""
    vlm = models.build_vlm(
        "qwen2_vl", models.ModelSpec(text_rope_theta=100.0, mrope_section=(0, 1, 3))
    )
    rope = vlm.hf.config.text_config.rope_parameters
    assert rope["rope_theta"] == 100.0
    assert rope["mrope_section"] == [0, 1, 3]
    default = models.build_vlm("qwen2_vl").hf.config.text_config.rope_parameters
    assert default["rope_theta"] == 1e6  # Qwen2-VL's own base
    assert default["mrope_section"] == [1, 1, 2]  # 1 : 1.5 : 1.5 of 4 pairs, rounded
    llava = models.build_vlm("llava", models.ModelSpec(text_rope_theta=50.0))
    assert llava.hf.config.text_config.rope_parameters["rope_theta"] == 50.0


def _spec(**fields: object) -> models.ModelSpec:
    """A spec holding values its annotations forbid (as code without runtime type checks can)."""
    spec = models.ModelSpec()
    for name, value in fields.items():
        object.__setattr__(spec, name, value)
    return spec


@pytest.mark.parametrize(
    ("family", "fields", "message"),
    [
        ("llava", {"mrope_section": (1, 1, 2)}, r"only families with M-RoPE .*\(Qwen2-VL"),
        ("qwen2_vl", {"mrope_section": (1, 1, 1)}, r"summing to the head's 4 .*\(1, 1, 1\)"),
        ("qwen2_vl", {"mrope_section": (-1, 2, 3)}, "three whole counts >= 0"),
        ("qwen2_vl", {"mrope_section": (2, 2)}, r"got \(2, 2\)"),
        ("qwen2_vl", {"mrope_section": (1, 1, 1, 1)}, "three whole counts"),
        ("qwen2_vl", {"mrope_section": (1.5, 1.5, 1.0)}, "whole counts"),
        ("paligemma", {"text_rope_theta": 1.0}, "finite number above 1 .*; got 1.0"),
        ("llava", {"text_rope_theta": float("inf")}, "got inf"),
        ("llava", {"text_rope_theta": float("nan")}, "got nan"),
    ],
)
def test_bad_rotary_settings_are_refused(
    family: str, fields: dict[str, object], message: str
) -> None:
    with pytest.raises(vrp.AdapterError, match=message):
        models.build_vlm(family, _spec(**fields))
