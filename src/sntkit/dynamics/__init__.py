"""Dynamics of recurrent maps: fixed points, normal forms, bifurcations, sNTK channels.

Paper 000 (Hazelden & Shea-Brown 2026, bifurcations) throughout; the fixed-point weight
construction is paper 004 App. A.2.1.
"""

from sntkit.dynamics.bifurcations import (
    Bifurcation,
    PathScan,
    Signature,
    classify_change,
    default_finder,
    interpolate,
    locate,
    match_points,
    scan,
)
from sntkit.dynamics.channels import (
    ChannelDecomposition,
    channel_decomposition,
    eigenvalue_gradient,
)
from sntkit.dynamics.construction import (
    fixed_point_weights,
    gru_fixed_point_weights,
    insert_fixed_points,
    planar_teacher,
)
from sntkit.dynamics.fixed_points import (
    FixedPoints,
    classify,
    find_fixed_points,
    linearize,
    solve_fixed_points,
)
from sntkit.dynamics.landscape import LandscapeFit, fit_normal_form, local_landscape
from sntkit.dynamics.monitor import BifurcationMonitor
from sntkit.dynamics.normal_forms import (
    NORMAL_FORMS,
    Branch,
    NormalForm,
    stability_flip_closed_form,
)

__all__ = [
    "NORMAL_FORMS",
    "Bifurcation",
    "BifurcationMonitor",
    "Branch",
    "ChannelDecomposition",
    "FixedPoints",
    "LandscapeFit",
    "NormalForm",
    "PathScan",
    "Signature",
    "channel_decomposition",
    "classify",
    "classify_change",
    "default_finder",
    "eigenvalue_gradient",
    "find_fixed_points",
    "fit_normal_form",
    "fixed_point_weights",
    "gru_fixed_point_weights",
    "insert_fixed_points",
    "interpolate",
    "linearize",
    "local_landscape",
    "locate",
    "match_points",
    "planar_teacher",
    "scan",
    "solve_fixed_points",
    "stability_flip_closed_form",
]
