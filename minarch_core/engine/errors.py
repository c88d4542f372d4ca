"""The errors minarch raises on bad input; each message names the problem and the fix."""


class MinarchError(Exception):
    """Base class: catch this to handle any minarch input or storage problem."""


class ConfigError(MinarchError, ValueError):
    """A setting, run config or parameter is unknown, out of range or of the wrong type."""


class DataMissingError(MinarchError, FileNotFoundError):
    """Dataset files are absent and cannot be downloaded."""


class DataCorruptError(MinarchError):
    """Dataset files exist but fail their checksum or cannot be read."""


class StoreError(MinarchError):
    """The run store cannot be used as it is (incompatible version, unwritable root)."""
