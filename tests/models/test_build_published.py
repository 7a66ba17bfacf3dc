"""Real-size builds from published configs: real widths, vocabularies and position limits, on a
given device and dtype, with an offline processor; layers can be cut to keep tests fast."""

import pytest
import torch
from PIL import Image

import vrp
import vrp.models as models
from vrp.core import Tower


def test_every_registered_family_has_a_published_config() -> None:
    assert set(models.published_configs().values()) == set(models.families())


def test_qwen2_vl_2b_at_real_width_cut_to_one_layer() -> None:
    vlm = models.build_published(
        "qwen2-vl-2b", text_layers=1, vision_layers=1, dtype=torch.bfloat16
    )
    text, vision = vlm.adapter.shape(Tower.LANGUAGE), vlm.adapter.shape(Tower.VISION)
    assert (text.n_layers, text.d_model, text.n_heads, text.d_mlp) == (1, 1536, 12, 8960)
    assert (vision.n_layers, vision.d_model, vision.d_mlp) == (1, 1280, 5120)
    config = vlm.hf.config.text_config
    assert config.vocab_size == 151936 and config.max_position_embeddings == 32768
    assert next(vlm.hf.parameters()).dtype == torch.bfloat16
    assert vlm.hf.config._attn_implementation == "sdpa"
    inputs = vlm.encode([Image.new("RGB", (56, 56), "red")], ["is there a red circle ?"])
    assert vlm.answer_logits(inputs).shape == (1, 151936)


def test_unknown_published_name_and_bad_layer_counts() -> None:
    with pytest.raises(
        vrp.ConfigError, match=r"Unknown published config 'llava-13b'.*llava-1.5-7b"
    ):
        models.build_published("llava-13b")
    with pytest.raises(
        vrp.ConfigError, match=r"text_layers must be a whole number in 1..32 .*got 0"
    ):
        models.build_published("llava-1.5-7b", text_layers=0)
    with pytest.raises(vrp.ConfigError, match=r"vision_layers .*in 1..27 .*got 99"):
        models.build_published("paligemma-3b-224", vision_layers=99)
