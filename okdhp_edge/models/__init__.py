"""Torch networks: stacked hourglass students, the multi-branch OKDHP net, its FAU ensemble, presets, costs."""

from .cost import Cost, count_cost, meta_device
from .ensemble import EnsembleNet, describe_ensemble
from .files import StudentFileError, load_student, network_from_arch, save_student, student_paths
from .hourglass import Hourglass, HourglassStack, Residual, Stem
from .okdhp import BranchSpec, FeatureAggregationUnit, OKDHPNet, OKDHPSpec
from .posenet import Branch, HourglassNet, hg2, hg4, hg8, stacked_hourglass
from .presets import PRESETS, Preset, get_preset
from .student import branch_costs, compression_rate, describe_student, extract_student

__all__ = [
    "Branch",
    "BranchSpec",
    "Cost",
    "EnsembleNet",
    "FeatureAggregationUnit",
    "Hourglass",
    "HourglassNet",
    "HourglassStack",
    "OKDHPNet",
    "OKDHPSpec",
    "PRESETS",
    "meta_device",
    "Preset",
    "Residual",
    "Stem",
    "StudentFileError",
    "branch_costs",
    "compression_rate",
    "count_cost",
    "describe_ensemble",
    "describe_student",
    "extract_student",
    "get_preset",
    "hg2",
    "hg4",
    "hg8",
    "load_student",
    "network_from_arch",
    "save_student",
    "stacked_hourglass",
    "student_paths",
]
