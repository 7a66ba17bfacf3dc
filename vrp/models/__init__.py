"""Model adapters: the only code that names Hugging Face module paths.

One adapter per family (LLaVA-1.5, PaliGemma, Qwen2-VL, Qwen2.5-VL) behind the `Adapter` protocol;
each family's file registers its adapter (`register`), and every list of families is read from the
registry. Also the `VLM` handle, `load` and the offline builders.
"""

from ._base import BaseAdapter as BaseAdapter, LayerPaths as LayerPaths
from ._build import (
    build_published as build_published,
    build_vlm as build_vlm,
    published_configs as published_configs,
)
from ._inputs import VlmInputs as VlmInputs, concat_inputs as concat_inputs
from ._load import (
    builtin_names as builtin_names,
    default_model as default_model,
    load as load,
    save as save,
)
from ._protocol import Adapter as Adapter, AnswerTokens as AnswerTokens, TowerShape as TowerShape
from ._registry import (
    adapter_class as adapter_class,
    adapter_for_config as adapter_for_config,
    families as families,
    register as register,
    unregister as unregister,
)
from ._spec import DEFAULT_WORDS as DEFAULT_WORDS, ModelSpec as ModelSpec
from ._tokenizer import build_word_tokenizer as build_word_tokenizer
from ._vlm import VLM as VLM, ModelInfo as ModelInfo
from .llava import LlavaAdapter as LlavaAdapter
from .paligemma import PaliGemmaAdapter as PaliGemmaAdapter
from .qwen2_5_vl import Qwen25VLAdapter as Qwen25VLAdapter
from .qwen2_vl import Qwen2VLAdapter as Qwen2VLAdapter
