"""The ``sntkit`` command line."""
