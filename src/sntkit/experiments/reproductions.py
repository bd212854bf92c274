"""Importing this module registers every reproduction with the registry."""

from sntkit.experiments import normal_forms, student_teacher  # noqa: F401
