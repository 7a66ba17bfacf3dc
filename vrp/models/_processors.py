"""Builders of each family's real processor class around a given tokenizer.

Used for tiny models and organisms (whose processors are built, not downloaded) and, for the Qwen-VL
families, for real checkpoints too: in transformers 5.x `Qwen2VLProcessor.__init__` insists on a video processor,
whose class needs torchvision even when only images are processed. Where torchvision is absent we
assemble the same processor class without the video part (`_image_only_qwen2_vl_processor`).
"""

from typing import Any

from transformers import (
    LlavaProcessor,
    PaliGemmaProcessor,
    Qwen2VLProcessor,
)
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil
from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

QWEN2_VL_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}{% endfor %}{% endif %}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def llava_processor(tokenizer: Any, *, image_size: int, patch_size: int) -> LlavaProcessor:
    """LLaVA-1.5's processor: CLIP preprocessing, one <image> token per patch (CLS dropped)."""
    images = CLIPImageProcessorPil(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
    )
    return LlavaProcessor(
        image_processor=images,
        tokenizer=tokenizer,
        patch_size=patch_size,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
    )


def paligemma_processor(tokenizer: Any, *, image_size: int, patch_size: int) -> PaliGemmaProcessor:
    """PaliGemma's processor: SigLIP preprocessing, image tokens then <bos> prompt "\\n"."""
    images = SiglipImageProcessorPil(size={"height": image_size, "width": image_size})
    images.image_seq_length = (image_size // patch_size) ** 2  # type: ignore[attr-defined]  # read by the processor
    return PaliGemmaProcessor(image_processor=images, tokenizer=tokenizer)


def qwen2_vl_from_parts(
    image_processor: Any,
    tokenizer: Any,
    chat_template: Any,
    processor_class: type[Any] = Qwen2VLProcessor,
) -> Any:
    """A Qwen-VL processor (`processor_class`: Qwen2-VL's or Qwen2.5-VL's, which share their
    constructor) from its image processor and tokenizer, with or without torchvision."""
    try:
        return processor_class(
            image_processor=image_processor, tokenizer=tokenizer, chat_template=chat_template
        )
    except (AttributeError, TypeError, ValueError, ImportError):
        return _image_only(processor_class, image_processor, tokenizer, chat_template)


def _image_only(
    processor_class: type[Any], image_processor: Any, tokenizer: Any, chat_template: Any
) -> Any:
    # Same attributes the processor's __init__ sets, minus the video processor it cannot build here.
    processor: Any = object.__new__(processor_class)
    processor.chat_template = chat_template
    processor.image_processor = image_processor
    processor.tokenizer = tokenizer
    processor.image_token = getattr(tokenizer, "image_token", "<|image_pad|>")
    processor.video_token = getattr(tokenizer, "video_token", "<|video_pad|>")
    processor.image_token_id = tokenizer.convert_tokens_to_ids(processor.image_token)
    processor.video_token_id = tokenizer.convert_tokens_to_ids(processor.video_token)
    return processor
