"""One-line error messages shared by the command line and the sweep table."""

import pytest

from sntkit.experiments.errors import ConfigError, one_line


def test_one_line_joins_every_line_and_collapses_whitespace():
    exc = ZeroDivisionError("boom\n  second line\tand\r\nthird ")
    assert one_line(exc) == "boom second line and third"
    assert one_line(exc, with_type=True) == "ZeroDivisionError: boom second line and third"


def test_one_line_of_an_empty_message_is_the_class_name():
    for exc in (KeyboardInterrupt(), RuntimeError(""), ValueError(" \n ")):
        assert one_line(exc) == type(exc).__name__
        assert one_line(exc, with_type=True) == type(exc).__name__


def test_one_line_keeps_the_subclass_name():
    assert one_line(ConfigError("bad\nvalue"), with_type=True) == "ConfigError: bad value"
    assert one_line(KeyError("x"), with_type=True) == "KeyError: 'x'"


@pytest.mark.parametrize("with_type", [False, True])
def test_one_line_has_no_line_break(with_type):
    text = one_line(OSError("a\n\nb\n"), with_type=with_type)
    assert "\n" not in text and "\r" not in text and text.endswith("a b")
