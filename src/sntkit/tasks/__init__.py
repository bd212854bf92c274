"""Task data: the student-teacher task, controlled-rank inputs, Fourier features, Memory-Pro."""

from sntkit.tasks.inputs import fourier_features, gaussian_inputs, participation_ratio
from sntkit.tasks.memory_pro import MemoryPro, TaskBatch
from sntkit.tasks.student_teacher import StudentTeacherTask, make_student

__all__ = [
    "MemoryPro",
    "StudentTeacherTask",
    "TaskBatch",
    "fourier_features",
    "gaussian_inputs",
    "make_student",
    "participation_ratio",
]
