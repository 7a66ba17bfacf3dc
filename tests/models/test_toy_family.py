"""A fifth family defined here, outside `vrp`, registers itself and runs every public entry point.

The toy family reuses LLaVA's architecture under its own model type and prompt: what matters is
that nothing in VRP has to be told about it besides the `register` call.
"""

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch
from transformers import LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor
from typer.testing import CliRunner

import vrp
import vrp.models as models
from tests.conftest import QUESTIONS, random_images
from vrp.cli import (
    _commands,  # noqa: F401  (imports register the commands)
    app,
)
from vrp.core import Component, ImageTokens, LastToken, Site
from vrp.interventions import AttentionKnockout, Capture, Zero, graph, run_graph
from vrp.pipeline import answer_attention


class ToyConfig(LlavaConfig):
    model_type = "vrp_toy"


class ToyModel(LlavaForConditionalGeneration):
    config_class = ToyConfig


class ToyAdapter(models.LlavaAdapter):
    """LLaVA's modules under another model type, prompt and processor loader."""

    model_class: ClassVar[type[Any]] = ToyModel
    family: ClassVar[str] = "vrp_toy"
    title: ClassVar[str] = "Toy"
    description: ClassVar[str] = "A test family: LLaVA's modules under another name."

    def prompt(self, question: str) -> str:
        return f"<image>\n{question} answer :"

    @classmethod
    def build_config(cls, values: Mapping[str, Any], tokenizer: Any) -> Any:
        return ToyConfig(
            **{**values, "image_token_index": tokenizer.convert_tokens_to_ids("<image>")}
        )

    @classmethod
    def load_processor(cls, source: str | Path, *, local_only: bool) -> Any:
        return LlavaProcessor.from_pretrained(source, local_files_only=local_only)


@pytest.fixture(scope="module")
def toy() -> Iterator[vrp.VLM]:
    models.register(ToyAdapter)
    try:
        yield vrp.load("tiny/vrp_toy", attn_implementation="sdpa")
    finally:
        models.unregister("vrp_toy")


def test_registry_lists_the_toy_family(toy: vrp.VLM) -> None:
    assert "vrp_toy" in models.families()
    assert "tiny/vrp_toy" in models.builtin_names()
    assert models.adapter_class("vrp_toy") is ToyAdapter
    assert toy.family == "vrp_toy" and isinstance(toy.adapter, models.Adapter)


def test_encode_logits_and_generate(toy: vrp.VLM) -> None:
    inputs = toy.encode(random_images(2), QUESTIONS[:2])
    assert inputs.n_image_tokens == 16 and inputs.prompts[0].endswith("answer :")
    assert toy.answer_logits(inputs).shape == (2, len(toy.tokenizer))
    assert len(toy.generate(inputs, max_new_tokens=2)) == 2


def test_graphs_patterns_and_knockouts_run(toy: vrp.VLM) -> None:
    inputs = toy.encode(random_images(2), QUESTIONS[:2])
    site = Site(layer=1, component=Component.RESID_POST, positions=LastToken())
    pattern = Site(layer=0, component=Component.ATTN_PATTERN, positions=LastToken())
    result = run_graph(
        toy,
        graph(
            Capture(site=pattern, name="pattern"),
            AttentionKnockout(layer=0, queries=LastToken(), keys=ImageTokens()),
            Zero(site=Site(layer=0, component=Component.MLP_OUT)),
            Capture(site=site, name="resid"),
        ),
        inputs,
    )
    assert result["resid"].shape == (2, 1, 32)
    image_share = result["pattern"][..., -inputs.seq_len :] * inputs.image_mask[:, None, None]
    assert float(image_share.sum()) < 1e-6  # the knocked-out edges carry no weight
    maps = answer_attention(toy, inputs, layers=[0, 1])
    assert maps.per_layer.shape[-2:] == (4, 4)


def test_save_and_load_round_trip(toy: vrp.VLM, tmp_path: Path) -> None:
    inputs = toy.encode(random_images(1), QUESTIONS[:1])
    loaded = vrp.load(vrp.save(toy, tmp_path / "toy"), attn_implementation="sdpa")
    assert loaded.family == "vrp_toy"
    torch.testing.assert_close(loaded.answer_logits(inputs), toy.answer_logits(inputs))


def test_build_and_cli_inspect(toy: vrp.VLM) -> None:
    built = models.build_vlm("vrp_toy", models.ModelSpec(text_layers=1))
    assert built.adapter.n_layers == 1
    result = CliRunner().invoke(app, ["inspect", "tiny/vrp_toy", "--image-size", "32"])
    assert result.exit_code == 0, result.output
    assert "vrp_toy" in result.output
