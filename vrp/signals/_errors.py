"""The one error class this subpackage adds to the `vrp.core` hierarchy.

Shapes go wrong with `ShapeError`, bad parameters with `ConfigError`, out-of-range heads or
positions with `SiteError`. What is left is input whose shape is right but whose values a signal is
undefined on: a negative or all-zero attention map, a token id past the vocabulary, a non-positive
norm scale.
"""

from vrp.core import VrpError


class SignalError(VrpError, ValueError):
    """A signal's input has the documented shape but values the signal is undefined on."""
