"""Every user-facing failure of the model layer raises a clear VrpError; messages are tested."""

import pytest

import vrp
import vrp.models as models
from tests.conftest import random_images
from vrp.core import Component, ImageTokens, Site, Tower


def test_unknown_builtin_model_names_the_choices() -> None:
    with pytest.raises(vrp.ModelNotFoundError, match=r"Unknown model 'tiny/gpt2'.*tiny/llava"):
        vrp.load("tiny/gpt2")


def test_unknown_organism() -> None:
    with pytest.raises(vrp.ModelNotFoundError, match=r"Unknown model 'organism/nope'"):
        vrp.load("organism/nope")


def test_directory_without_checkpoint(tmp_path) -> None:
    with pytest.raises(vrp.ModelNotFoundError, match=r"holds no config.json"):
        vrp.load(tmp_path)


def test_unknown_family_in_checkpoint(tmp_path) -> None:
    (tmp_path / "config.json").write_text('{"model_type": "blip_2"}')
    with pytest.raises(vrp.AdapterError, match=r"Unknown model family 'blip_2'.*llava"):
        vrp.load(tmp_path)


def test_unknown_family_for_builder() -> None:
    with pytest.raises(vrp.AdapterError, match=r"family 'idefics'; buildable: llava"):
        models.build_vlm("idefics")


def test_hub_unreachable_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # fail fast, no retries
    with pytest.raises(vrp.ModelNotFoundError, match=r"Cannot fetch 'nobody/no-such-vlm'"):
        vrp.load("nobody/no-such-vlm")


def test_prompt_without_placeholder(vlm: models.VLM) -> None:
    with pytest.raises(vrp.PromptError, match=r"must contain the image placeholder"):
        vlm.encode_prompts(random_images(1), ["is there a red circle ?"])


def test_image_prompt_count_mismatch(vlm: models.VLM) -> None:
    with pytest.raises(vrp.PromptError, match=r"one image per prompt.*2 images and 1 prompts"):
        vlm.encode(random_images(2), ["is there a circle ?"])


def test_image_token_count_mismatch(vlm: models.VLM) -> None:
    inputs = vlm.encode(random_images(2), ["is there a circle ?", "is there a cross ?"])
    data = dict(inputs.data)
    ids = data["input_ids"].clone()
    ids[0, inputs.image_mask[0].nonzero()[0]] = vlm.tokenizer.unk_token_id  # one token fewer
    data["input_ids"] = ids
    with pytest.raises(vrp.PromptError, match=r"Image token count mismatch.*features"):
        vlm.adapter._check_inputs(data, inputs.prompts)


@pytest.mark.parametrize(
    ("site", "message"),
    [
        (Site(layer=2, component=Component.RESID_POST), r"has 2 language layers \(0..1\)"),
        (Site(layer=-1, component=Component.MLP_OUT), r"has 2 language layers"),
        (Site(tower=Tower.VISION, layer=5, component=Component.MLP_OUT), r"has 2 vision layers"),
        (
            Site(layer=0, component=Component.HEAD_OUT, heads=(4,)),
            r"heads \[4\] out of range.*4 heads per layer \(0..3\)",
        ),  # noqa: E501
        (
            Site(layer=0, component=Component.MLP_NEURONS, neurons=(0, 48)),
            r"neurons \[48\] out of range.*48 neurons",
        ),  # noqa: E501
        (
            Site(tower=Tower.PROJECTOR, layer=0, component=Component.MLP_OUT),
            r"projector tower of \w+ has no MLP_OUT. Valid components there: RESID_PRE, RESID_POST",
        ),  # noqa: E501
    ],
)
def test_out_of_range_sites(vlm: models.VLM, site: Site, message: str) -> None:
    with pytest.raises(vrp.SiteError, match=message):
        vlm.validate(site)


def test_every_tower_has_attention_patterns(tiny_vlms: dict[str, models.VLM]) -> None:
    """Recomputed from the attention inputs: also Qwen's flat vision towers (no weights returned)."""
    site = Site(tower=Tower.VISION, layer=0, component=Component.ATTN_PATTERN)
    for vlm in tiny_vlms.values():
        vlm.validate(site)


def test_pattern_is_read_only(vlm: models.VLM) -> None:
    inputs = vlm.encode(random_images(1), ["is there a circle ?"])
    site = Site(layer=0, component=Component.ATTN_PATTERN)
    with pytest.raises(vrp.SiteError, match=r"read-only"):
        vlm.adapter.write(vlm.nnsight, site, inputs, inputs.image_mask.float())


def test_selector_on_wrong_component() -> None:
    with pytest.raises(vrp.SiteError, match=r"head selector needs a component with a head axis"):
        Site(layer=0, component=Component.MLP_OUT, heads=(0,))
    with pytest.raises(vrp.SiteError, match=r"neuron selector needs Component.MLP_NEURONS"):
        Site(layer=0, component=Component.RESID_POST, neurons=(1,), positions=ImageTokens())


def test_site_rejects_strings() -> None:
    with pytest.raises(vrp.SiteError, match=r"must be a Component.*Component.RESID_PRE"):
        Site(layer=0, component="resid_post")  # type: ignore[arg-type]
