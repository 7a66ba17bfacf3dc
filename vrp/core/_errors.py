"""The project's error hierarchy.

Every user-facing failure raises a subclass of `VrpError` whose message says what was expected, what
arrived and how to fix it. Catch `VrpError` to handle any of them; the subclasses let callers react to
one kind (a bad site, a bad input file) without string matching.
"""


class VrpError(Exception):
    """Base class of every error VRP raises on purpose."""


class SiteError(VrpError, ValueError):
    """A `Site` names a layer, head, neuron, position or component the model does not have."""


class AdapterError(VrpError):
    """A model family, checkpoint or config is unknown or not supported by any adapter."""


class ModelNotFoundError(AdapterError, LookupError):
    """A model name or path resolves to nothing loadable."""


class PromptError(VrpError, ValueError):
    """A prompt or processor encoding is malformed (missing image placeholder, count mismatch)."""


class ShapeError(VrpError, ValueError):
    """A tensor or array arrived with a shape other than the one documented."""


class SignalError(VrpError, ValueError):
    """Input with a valid shape but invalid values for a signal.

    A negative or all-zero attention map, a token id past the vocabulary, a non-positive norm
    scale: the shape is right (else `ShapeError`) but the signal is undefined on these values.
    """


class GraphError(VrpError, ValueError):
    """An intervention graph is invalid for the model it is run on."""


class DataError(VrpError, ValueError):
    """A dataset file or record is malformed."""


class ConfigError(VrpError, ValueError):
    """A configuration value is out of its documented range."""


class UndefinedSignalWarning(UserWarning):
    """A statistic cannot be defined for this input, so VRP reports it as NaN instead of a number.

    Example: the DBSCAN cluster count C_k on a 4x4 grid, where the cells at or above the 90th
    percentile are always 2, fewer than DBSCAN's min_samples = 3: every map would score 0 by
    construction. The message names the input (the grid, the layers) and the parameters, and how
    to get a defined value.
    """
