"""Evaluation (torch-free): PCK, PCKh, COCO OKS AP via pycocotools, OKS-NMS, flip test, `Evaluator`."""

from .coco_eval import coco_keypoint_ap, keypoint_results, write_keypoint_results
from .evaluator import Evaluator
from .flip import flip_average
from .oks_nms import OKS_NMS_THRESHOLD, oks_nms
from .pck import PCKResult, keypoint_hits, pck, pckh

__all__ = [
    "Evaluator",
    "OKS_NMS_THRESHOLD",
    "PCKResult",
    "coco_keypoint_ap",
    "flip_average",
    "keypoint_hits",
    "keypoint_results",
    "oks_nms",
    "pck",
    "pckh",
    "write_keypoint_results",
]
