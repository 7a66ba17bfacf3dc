"""Wrongly typed arguments to `vrp.load` and `vrp.save` raise VRP errors for users, who run
without the jaxtyping hook that rejects them first under pytest: checked in a plain interpreter."""

from tests.plain import check_plain_errors

_SCRIPT = """
import vrp
from vrp import VrpError

calls = {
    "name-int": lambda: vrp.load(3),
    "name-none": lambda: vrp.load(None),
    "device-int": lambda: vrp.load("tiny/llava", device=3),
    "dtype-int": lambda: vrp.load("tiny/llava", dtype=5),
    "attention-none": lambda: vrp.load("tiny/llava", attn_implementation=None),
    "save-to-int": lambda: vrp.save(vrp.load("tiny/llava"), 5),
}
for name, call in calls.items():
    try:
        call()
        print(name, "no error")
    except VrpError as error:
        print(name, type(error).__name__, " ".join(str(error).split()))
"""

EXPECTED = {
    "name-int": "ModelNotFoundError Unknown model '3'. Expected a built-in name",
    "name-none": "ModelNotFoundError Unknown model 'None'. Expected a built-in name",
    "device-int": "ConfigError device must be a string or torch.device; got 3",
    "dtype-int": "ConfigError dtype must be a floating torch dtype or its name; got 5",
    "attention-none": "ConfigError attn_implementation must be one of ('eager', 'sdpa'",
    "save-to-int": "ConfigError save needs a folder path (str or Path); got int 5",
}


def test_wrong_types_raise_vrp_errors_in_a_plain_interpreter() -> None:
    check_plain_errors(_SCRIPT, EXPECTED)
