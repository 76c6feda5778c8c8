"""Torch networks: stacked hourglass students, the multi-branch OKDHP net, presets, costs."""
from .cost import Cost, count_cost, meta_device
from .hourglass import Hourglass, HourglassStack, Residual, Stem
from .okdhp import BranchSpec, FeatureAggregationUnit, OKDHPNet, OKDHPSpec
from .posenet import Branch, HourglassNet, hg2, hg4, hg8, stacked_hourglass
from .presets import PRESETS, Preset, get_preset
from .student import (
    StudentFileError, branch_costs, compression_rate, describe_student, extract_student, load_student, save_student, student_paths,
)

__all__ = [
    "Branch", "BranchSpec", "Cost", "FeatureAggregationUnit", "Hourglass", "HourglassNet", "HourglassStack",
    "OKDHPNet", "OKDHPSpec", "PRESETS", "meta_device", "Preset", "Residual", "Stem", "StudentFileError", "branch_costs", "compression_rate", "count_cost", "describe_student",
    "extract_student", "get_preset", "hg2", "hg4", "hg8", "load_student", "save_student", "stacked_hourglass",
    "student_paths",
]
