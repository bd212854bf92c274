"""Errors that the command line reports as one line with exit code 2."""


class ConfigError(ValueError):
    """A bad experiment name, option value, output folder or config file."""


class CheckpointError(ValueError):
    """A checkpoint that cannot be read (corrupt, truncated, or from another configuration)."""
