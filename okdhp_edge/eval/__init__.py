"""Evaluation (torch-free): PCK, PCKh, COCO OKS AP via pycocotools, flip test, `Evaluator`."""
from .coco_eval import coco_keypoint_ap, keypoint_results, write_keypoint_results
from .evaluator import Evaluator
from .flip import flip_average
from .pck import PCKResult, keypoint_hits, pck, pckh

__all__ = [
    "Evaluator", "PCKResult", "coco_keypoint_ap", "flip_average", "keypoint_hits", "keypoint_results", "pck", "pckh",
    "write_keypoint_results",
]
