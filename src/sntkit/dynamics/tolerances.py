"""Numerical tolerances shared by the dynamics modules (one place, one value each)."""

#: an eigenvalue with ``|Im λ|`` above this is one of a complex pair (fixed-point signatures,
#: bifurcation classification, the critical eigenvalue of the bifurcation channel)
IMAG_TOL = 1e-9
