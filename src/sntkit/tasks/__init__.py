"""Task data: the student-teacher task, controlled-rank inputs, Fourier features, Memory-Pro."""

from sntkit.tasks.inputs import fourier_features, gaussian_inputs, participation_ratio

__all__ = ["fourier_features", "gaussian_inputs", "participation_ratio"]
