"""Importing this module registers every reproduction with the registry."""

from sntkit.experiments import student_teacher  # noqa: F401
