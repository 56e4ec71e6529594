"""loupe's error hierarchy. Library errors are re-raised from these with ``from e``."""


class LoupeError(Exception):
    """Base of every error loupe raises on purpose."""


class ImageLoadError(LoupeError):
    """An image could not be read or decoded; the message says which and why."""


class InvalidRequestError(LoupeError, ValueError):
    """A request is malformed: empty query, unknown parameter, wrong type, over a cap."""


class ConfigError(LoupeError, ValueError):
    """An executor setting (flow YAML, ``uses_with``, constructor) is unknown or out of range."""


class DimensionMismatchError(LoupeError, ValueError):
    """An embedding's size differs from the index it is meant for."""


class ModelLoadError(LoupeError):
    """A checkpoint could not be loaded from the hub or a local folder."""


class StorageFullError(LoupeError, OSError):
    """The disk is full: a write stored nothing; searches go on."""
