"""A word-level tokenizer built locally, for tiny test models and the model organisms.

Real checkpoints ship their own tokenizers; tiny models need one that exists offline and covers every
word their prompts use. Special tokens of all three families are always present so that any family's
processor accepts it.
"""

from collections.abc import Iterable

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<s>", "</s>"
FAMILY_SPECIALS = (
    "<image>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
TEMPLATE_WORDS = (
    "USER", "ASSISTANT", ":", "user", "assistant", "system", "answer", "en",
    "Yes", "No", "yes", "no", ".", ",", "?", "!", "'",
)  # fmt: skip


def build_word_tokenizer(words: Iterable[str]) -> PreTrainedTokenizerFast:
    """Builds a whitespace-and-punctuation word-level tokenizer over `words` plus template words.

    Args:
      words: the vocabulary (order fixes the ids after the special and template tokens).

    Returns:
      A fast tokenizer with <pad>, <unk>, <s>, </s>, every family's image / chat special tokens and a
      newline token; it pads on the left.
    """
    vocab: dict[str, int] = {}
    for token in (PAD, UNK, BOS, EOS, *TEMPLATE_WORDS, *words):
        vocab.setdefault(token, len(vocab))
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()]
    )
    backend.decoder = decoders.WordPiece(prefix="##", cleanup=False)  # joins words with spaces
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token=PAD, unk_token=UNK, bos_token=BOS, eos_token=EOS
    )
    tokenizer.add_special_tokens({"additional_special_tokens": list(FAMILY_SPECIALS)})
    tokenizer.add_tokens([AddedToken("\n", normalized=False, special=False)])
    tokenizer.padding_side = "left"
    return tokenizer
