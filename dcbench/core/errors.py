"""Errors that reach the user as one clear line (the CLI prints them and exits 2)."""


class UsageError(ValueError):
    """Bad input from the user: an unknown name, a bad value, an unreadable path."""


class DataError(RuntimeError):
    """A data file is missing, unreadable or fails its checksum."""


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite: the run stops and is recorded as failed with this reason."""
