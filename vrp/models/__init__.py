"""Model adapters: the only code that names Hugging Face module paths.

One adapter per family (LLaVA-1.5, PaliGemma, Qwen2-VL) behind the `Adapter` protocol, a registry, the
`VLM` handle and `load`.
"""

from ._base import BaseAdapter as BaseAdapter
from ._base import LayerPaths as LayerPaths
from ._build import DEFAULT_WORDS as DEFAULT_WORDS
from ._build import ModelSpec as ModelSpec
from ._build import build_vlm as build_vlm
from ._inputs import VlmInputs as VlmInputs
from ._load import (
    builtin_names as builtin_names,
)
from ._load import (
    default_model as default_model,
)
from ._load import (
    load as load,
)
from ._load import (
    save as save,
)
from ._protocol import Adapter as Adapter
from ._protocol import AnswerTokens as AnswerTokens
from ._protocol import TowerShape as TowerShape
from ._registry import (
    adapter_class as adapter_class,
)
from ._registry import (
    adapter_for_config as adapter_for_config,
)
from ._registry import (
    families as families,
)
from ._registry import (
    register as register,
)
from ._tokenizer import build_word_tokenizer as build_word_tokenizer
from ._vlm import VLM as VLM
from ._vlm import ModelInfo as ModelInfo
from .llava import LlavaAdapter as LlavaAdapter
from .paligemma import PaliGemmaAdapter as PaliGemmaAdapter
from .qwen2_vl import Qwen2VLAdapter as Qwen2VLAdapter
