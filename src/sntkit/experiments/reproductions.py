"""Importing this module registers every reproduction with the registry."""

from sntkit.experiments import (  # noqa: F401
    memory_pro,
    natural_gradient,
    normal_forms,
    space_time,
    student_teacher,
    transformer,
    two_modes,
)
