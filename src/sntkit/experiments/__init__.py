"""Reproductions of the papers' experiments, run folders, checkpoints, figures and sweeps."""
