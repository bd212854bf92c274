"""Dynamics of recurrent maps: fixed points, normal forms, bifurcations, sNTK channels.

Paper 000 (Hazelden & Shea-Brown 2026) throughout.
"""

from sntkit.dynamics.bifurcations import Bifurcation, classify_change, interpolate, locate
from sntkit.dynamics.channels import (
    ChannelDecomposition,
    LandscapeFit,
    channel_decomposition,
    eigenvalue_gradient,
    fit_normal_form,
    local_landscape,
)
from sntkit.dynamics.construction import fixed_point_weights, planar_teacher
from sntkit.dynamics.fixed_points import FixedPoints, classify, find_fixed_points, linearize
from sntkit.dynamics.monitor import BifurcationMonitor
from sntkit.dynamics.normal_forms import (
    NORMAL_FORMS,
    NormalForm,
    figure2_data,
    stability_flip_closed_form,
)

__all__ = [
    "NORMAL_FORMS",
    "Bifurcation",
    "BifurcationMonitor",
    "ChannelDecomposition",
    "FixedPoints",
    "LandscapeFit",
    "NormalForm",
    "channel_decomposition",
    "classify",
    "classify_change",
    "eigenvalue_gradient",
    "figure2_data",
    "find_fixed_points",
    "fit_normal_form",
    "fixed_point_weights",
    "interpolate",
    "linearize",
    "local_landscape",
    "locate",
    "planar_teacher",
    "stability_flip_closed_form",
]
