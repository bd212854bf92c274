"""Errors that the command line reports as one line with exit code 2."""


class ConfigError(ValueError):
    """A bad experiment name, option value, output folder or config file."""


class CheckpointError(ValueError):
    """A checkpoint that cannot be read (corrupt, truncated, or from another configuration)."""


def one_line(exc: BaseException, *, with_type: bool = False) -> str:
    """Return the message of ``exc`` on one line, for the terminal and a sweep's ``error`` column.

    Every run of whitespace (line breaks included) becomes one space, so no part of a
    multi-line message is lost. ``with_type`` puts the class name in front
    (``"ZeroDivisionError: boom"``); an empty message gives the class name alone.
    """
    text = " ".join(str(exc).split())
    name = type(exc).__name__
    if not text:
        return name
    return f"{name}: {text}" if with_type else text
