"""The engine's own exception types (both are subclasses of the built-in errors callers already catch)."""


class CheckpointError(ValueError):
    """A checkpoint file is missing, corrupted, or does not match the model it is loaded into."""


class BackboneNotFoundError(FileNotFoundError):
    """The backbone a model needs is not installed or not where its reference says."""
