"""Position selectors: which token positions of a batch a site or intervention touches.

A selector is a small frozen value resolved against a batch's image-token mask and attention mask into a
boolean ``batch seq`` mask. Resolution happens late, per batch, so one selector serves prompts of
different lengths and left-padded batches alike.
"""

from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Bool, Int
from torch import Tensor

from ._errors import SiteError

Mask = Bool[Tensor, "batch seq"]


@dataclass(frozen=True)
class Positions:
    """Base class of position selectors."""

    def resolve(self, image_mask: Mask, attention_mask: Int[Tensor, "batch seq"]) -> Mask:
        """Returns the selected positions of every row as a mask (padding never selected)."""
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        return {"kind": _KIND_OF[type(self)]}

    def resolve_cached(self, image_mask: Mask, attention_mask: Int[Tensor, "batch seq"]) -> Mask:
        """`resolve`, remembered for the very mask tensors given (the same objects, unchanged
        since: their in-place version counters are part of the key). Validation, planning and
        execution resolve one selector against one batch many times; this does it once. The
        returned mask is shared: read it, do not modify it in place."""
        if image_mask.is_inference() or attention_mask.is_inference():
            return self.resolve(image_mask, attention_mask)  # no version counter to key on
        key = (self, id(image_mask), id(attention_mask), image_mask._version,
               attention_mask._version)  # fmt: skip
        hit = _RESOLVED.get(key)
        if hit is not None and hit[0] is image_mask and hit[1] is attention_mask:
            return hit[2]
        mask = self.resolve(image_mask, attention_mask)
        if len(_RESOLVED) >= _RESOLVED_MAX:
            _RESOLVED.clear()
        _RESOLVED[key] = (image_mask, attention_mask, mask)  # the masks kept: ids stay theirs
        return mask


_RESOLVED: dict[tuple[Any, ...], tuple[Tensor, Tensor, Tensor]] = {}
_RESOLVED_MAX = 1024  # entries (small boolean masks) before the memo starts afresh


@dataclass(frozen=True)
class AllTokens(Positions):
    """Every position of the batch, padding included, so that rows keep one ``seq`` axis."""

    def resolve(self, image_mask: Mask, attention_mask: Int[Tensor, "batch seq"]) -> Mask:
        return torch.ones_like(image_mask)

    def __str__(self) -> str:
        return "all"


@dataclass(frozen=True)
class ImageTokens(Positions):
    """The image placeholder positions (the projected image features)."""

    def resolve(self, image_mask: Mask, attention_mask: Int[Tensor, "batch seq"]) -> Mask:
        return image_mask & attention_mask.bool()

    def __str__(self) -> str:
        return "image"


@dataclass(frozen=True)
class TextTokens(Positions):
    """Every real position that is not an image token (prompt, template and special tokens)."""

    def resolve(self, image_mask: Mask, attention_mask: Int[Tensor, "batch seq"]) -> Mask:
        return ~image_mask & attention_mask.bool()

    def __str__(self) -> str:
        return "text"


@dataclass(frozen=True)
class LastToken(Positions):
    """The last real position of each row: where the answer is predicted."""

    def resolve(self, image_mask: Mask, attention_mask: Int[Tensor, "batch seq"]) -> Mask:
        seq = attention_mask.shape[1]
        # last index holding a 1, robust to left or right padding
        last = seq - 1 - attention_mask.flip(1).argmax(dim=1)
        mask = torch.zeros_like(image_mask)
        mask[torch.arange(mask.shape[0], device=mask.device), last] = True
        return mask

    def __str__(self) -> str:
        return "last"


@dataclass(frozen=True)
class Indices(Positions):
    """Explicit positions, counted from the end of each row when negative (-1 = last token).

    On language sites, positive indices count from the first real token of each row, so they mean
    the same token in a left-padded batch as in a single run; on vision and projector sites they
    index that tower's own tokens. Selected positions come back in ascending sequence order,
    whatever order they are written in (a patch pairs source and target positions in that order).

    Raises:
      SiteError: empty, non-integer or repeated indices (also two spellings of one position,
        found when resolved against a row).
    """

    indices: tuple[int, ...]

    def __post_init__(self) -> None:
        items = tuple(self.indices)
        if not items or not all(isinstance(i, int) and not isinstance(i, bool) for i in items):
            raise SiteError(f"Indices needs a non-empty tuple of ints, got {self.indices!r}.")
        if len(set(items)) != len(items):
            raise SiteError(f"Indices contains repeated positions: {items!r}. List each once.")
        object.__setattr__(self, "indices", items)

    def resolve(self, image_mask: Mask, attention_mask: Int[Tensor, "batch seq"]) -> Mask:
        lengths = attention_mask.sum(dim=1)
        seq = attention_mask.shape[1]
        starts = seq - lengths  # left padding: real tokens are the row's tail
        if bool((attention_mask[:, -1] == 0).any()):
            raise SiteError(
                "Indices positions need a left-padded batch (every row ending in a real token); "
                "encode with the VLM handle, which pads on the left."
            )
        index = torch.tensor(self.indices, device=attention_mask.device)[None, :]  # 1 k
        n = lengths[:, None]  # batch 1
        mask = torch.zeros_like(image_mask)
        mask.scatter_(1, starts[:, None] + torch.remainder(index, n), True)  # in range anyway
        outside = (index < -n) | (index >= n)
        bad = outside.any(dim=1) | (mask.sum(dim=1) != len(self.indices))
        if bool(bad.any()):  # the first bad row, as a row-by-row check would find it
            row = int(bad.nonzero()[0])
            count = int(lengths[row])
            if bool(outside[row].any()):
                k = int(outside[row].nonzero()[0])
                raise SiteError(
                    f"Position {self.indices[k]} is outside row {row}, which has {count} tokens "
                    f"(valid: {-count}..{count - 1})."
                )
            raise SiteError(
                f"Indices {list(self.indices)} name one position twice in row {row}, which "
                f"has {count} tokens (e.g. 0 and {-count}). List each position once."
            )
        return mask

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "indices", "indices": list(self.indices)}

    def __str__(self) -> str:
        return f"indices{list(self.indices)}"


_KIND_OF: dict[type, str] = {
    AllTokens: "all",
    ImageTokens: "image",
    TextTokens: "text",
    LastToken: "last",
    Indices: "indices",
}


def positions_from_dict(data: dict[str, Any]) -> Positions:
    """Inverts `Positions.to_dict`.

    Raises:
      SiteError: unknown kind.
    """
    kind = data.get("kind")
    if kind == "indices":
        return Indices(tuple(data.get("indices", ())))
    simple = {name: cls for cls, name in _KIND_OF.items() if cls is not Indices}
    if kind not in simple:
        raise SiteError(
            f"Unknown position selector kind {kind!r}; expected one of {sorted(_KIND_OF.values())}."
        )
    return simple[kind]()
