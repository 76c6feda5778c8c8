"""The project's person detector: targets, decoding in the YOLOv8 layout through the real runtime,
training with resume, the INT8 export, and the training frames' ignore regions."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from okdhp_edge.data.base import DatasetError
from okdhp_edge.detection.config import load_det_config
from okdhp_edge.detection.data import DetectionFrames, Frame, _motion, labelled_frames, synthetic_frames
from okdhp_edge.detection.export import _write_fp32, export_detector, float_tail_nodes
from okdhp_edge.detection.net import HEAD_STRIDE, DetSpec, PersonDetNet
from okdhp_edge.detection.targets import build_targets, detection_loss
from okdhp_edge.detection.train import train_detector
from okdhp_edge.export.errors import ConversionError
from okdhp_edge.runtime import Detector

REPO = Path(__file__).resolve().parents[1]
SPEC = DetSpec(width=128, height=96)
BOXES = np.array([[10, 20, 40, 90], [70, 8, 118, 60]], np.float32)


class TargetNet(nn.Module):
    """Heads that output exactly the targets of BOXES (logits from the Gaussian peaks)."""

    def __init__(self) -> None:
        super().__init__()
        self.spec = SPEC
        t = build_targets(BOXES, np.zeros((0, 0), bool), SPEC.width, SPEC.height, HEAD_STRIDE)
        h, w = SPEC.height // HEAD_STRIDE, SPEC.width // HEAD_STRIDE
        heat = torch.from_numpy(t["heatmap"]).clamp(1e-4, 1 - 1e-4)
        size, offset = torch.zeros(2, h * w), torch.zeros(2, h * w)
        for row in np.nonzero(t["mask"])[0]:
            size[:, t["index"][row]] = torch.from_numpy(t["size"][row])
            offset[:, t["index"][row]] = torch.from_numpy(t["offset"][row])
        self.register_buffer("logits", torch.log(heat / (1 - heat))[None])
        self.register_buffer("size", size.view(1, 2, h, w))
        self.register_buffer("offset", offset.view(1, 2, h, w))

    def forward(self, x: torch.Tensor):
        zero = x.mean() * 0  # keeps the input in the graph
        return self.logits + zero, self.size + zero, self.offset + zero


def test_targets_round_trip_through_onnx_and_the_runtime(tmp_path):
    """Targets -> the exported V8 head -> onnxruntime -> Detector's YOLO decoder gives the boxes back,
    on an image twice the input size (the letterbox maps them back)."""
    path = _write_fp32(TargetNet(), tmp_path / "targets.onnx", SPEC.width, SPEC.height)
    detector = Detector(path)
    assert detector.family.layout == "v8"
    found = detector.detect(np.zeros((SPEC.height * 2, SPEC.width * 2, 3), np.uint8))
    assert len(found) == len(BOXES)
    order = np.argsort(found[:, 0])
    np.testing.assert_allclose(found[order, :4], BOXES * 2, atol=0.05)
    np.testing.assert_allclose(found[:, 4], 1.0, atol=1e-3)


def test_targets_mark_ignored_cells_but_keep_peaks():
    ignore = np.zeros((24, 32), bool)
    ignore[:, :16] = True
    t = build_targets(BOXES, ignore, 128, 96, 4)
    assert t["mask"].sum() == 2
    cx, cy = int((10 + 40) / 2 / 4), int((20 + 90) / 2 / 4)
    assert t["heatmap"][0, cy, cx] == 1.0
    assert t["weight"][0, cy, cx] == 1.0  # a peak inside an ignored area still counts
    assert t["weight"][0, 0, 0] == 0.0 and t["weight"][0, 0, 31] == 1.0


def test_loss_ignores_background_where_masked():
    t = {
        k: torch.from_numpy(v)[None]
        for k, v in build_targets(np.zeros((0, 4)), np.zeros((0, 0), bool), 64, 64, 4).items()
    }
    logits = torch.full((1, 1, 16, 16), 3.0)  # confident "person" everywhere: a large background loss
    outputs = (logits, torch.zeros(1, 2, 16, 16), torch.zeros(1, 2, 16, 16))
    loud = detection_loss(outputs, t)["focal"]
    t["weight"] = torch.zeros_like(t["weight"])
    assert float(loud) > 1.0
    assert float(detection_loss(outputs, t)["focal"]) == 0.0


def test_motion_outside_boxes_is_found():
    plate = np.full((60, 80, 3), 90, np.uint8)
    frame = plate.copy()
    frame[20:40, 30:50] = 250
    mask = _motion(frame, plate)
    assert mask[30, 40] == 1 and mask[5, 5] == 0


def test_crops_keep_people_and_turn_cut_ones_into_ignore_regions():
    image = np.full((96, 128, 3), 100, np.uint8)
    frames = [Frame(image, BOXES.copy(), np.zeros((96, 128), np.uint8))]
    data = DetectionFrames(frames, crop=(64, 48), stride=4, scale=(1.0, 1.0))
    rng = np.random.default_rng(0)
    for _ in range(20):
        item = data.sample(rng)
        assert item["image"].shape == (3, 48, 64) and item["heatmap"].shape == (1, 12, 16)
        assert item["mask"].sum() <= 2


@pytest.mark.slow
def test_train_resume_and_export(tmp_path):
    """A few steps on synthetic scenes, resumed from the checkpoint; both runtime files load and
    answer (too few steps to find anyone: the next test checks the export on a trained detector).
    The dilated context blocks travel in the weights' record: the export rebuilds the same network."""
    out = tmp_path / "run"
    small = {
        "model": {"width": 128, "height": 96, "context": 2},
        "data": {"synthetic": 12, "crop": [64, 64]},
        "optim": {"steps": 2, "batch_size": 4},
        "system": {"checkpoint_every": 1, "threads": 1},
    }
    train_detector(load_det_config(overrides=small), out)
    small["optim"]["steps"] = 3
    weights = train_detector(load_det_config(overrides=small), out, resume=out / "checkpoint-last.pt")
    checkpoint = torch.load(out / "checkpoint-last.pt", weights_only=True)
    assert checkpoint["step"] == 3
    record = json.loads(weights.with_suffix(".json").read_text())
    assert record["spec"]["width"] == 128 and record["spec"]["context"] == 2
    assert record["data"]["synthetic_scenes"] == 12
    fp32, int8 = export_detector(weights)
    names = float_tail_nodes(fp32)
    assert names and not any("conv" in n.lower() for n in names)
    for path in (fp32, int8):
        boxes = Detector(path, score_threshold=0.0).detect(np.zeros((96, 128, 3), np.uint8))
        assert boxes.shape[1] == 5 and np.isfinite(boxes).all()
    report = json.loads((out / "person-det-export.json").read_text())
    assert set(report) >= {"fp32", "int8"}


@pytest.mark.slow
def test_the_export_gate_of_a_trained_detector(tmp_path):
    """The shipped detector's weights (weights/okdhp-person), exported with synthetic calibration:
    torch finds people on the calibration frames, so the INT8 gate (>= 90 % of torch's boxes found
    again, else ConversionError) is decided on real finds, not passed for want of any."""
    for suffix in (".safetensors", ".json"):
        (tmp_path / f"okdhp-person{suffix}").write_bytes(
            (REPO / "weights" / "okdhp-person" / f"okdhp-person{suffix}").read_bytes()
        )
    try:
        export_detector(tmp_path / "okdhp-person.safetensors")
        refused = None
    except ConversionError as err:
        refused = err
    report = json.loads((tmp_path / "okdhp-person-export.json").read_text())
    for precision in ("fp32", "int8"):
        assert report[precision]["torch_boxes"] >= report["calibration_frames"], report  # a person a frame or more
    assert report["fp32"]["recall_of_torch"] >= 0.9, (
        report
    )  # the float file, through the runtime, finds what torch finds
    assert (refused is not None) == (report["int8"]["recall_of_torch"] < 0.9), (refused, report)


def test_teacher_box_sets_train_the_detector_empty_frames_included(tmp_path):
    """A COCO detection split (python -m okdhp_edge.data.teachers.box) reads as frames with their boxes;
    an image nobody is in stays, as a frame with no box (background to learn)."""
    (tmp_path / "images" / "train").mkdir(parents=True)
    for name in ("a", "b"):
        cv2.imwrite(str(tmp_path / "images" / "train" / f"{name}.jpg"), np.full((60, 80, 3), 90, np.uint8))
    data = {
        "images": [{"id": 1, "file_name": "train/a.jpg"}, {"id": 2, "file_name": "train/b.jpg"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 5, 20, 40], "score": 0.9},
            {"id": 2, "image_id": 1, "category_id": 1, "bbox": [0, 0, 80, 60], "iscrowd": 1},
        ],
        "categories": [{"id": 1, "name": "person"}],
    }
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "instances_train.json").write_text(json.dumps(data))
    frames = labelled_frames([f"coco:{tmp_path}"], 160, 120)
    assert [f.boxes.tolist() for f in frames] == [[[10, 5, 30, 45]], []]
    assert frames[0].scale == 2.0 and not frames[0].ignore.any()
    (tmp_path / "annotations" / "instances_train.json").write_text('{"images": [')
    with pytest.raises(DatasetError, match=r"instances_train\.json: not a COCO detection file"):
        labelled_frames([f"coco:{tmp_path}"], 160, 120)


def test_synthetic_frames_are_boxed():
    frames = synthetic_frames(3, 128, 96, seed=1)
    assert all(len(f.boxes) >= 1 and f.image.shape == (96, 128, 3) for f in frames)
    assert all((f.boxes[:, 2] > f.boxes[:, 0]).all() for f in frames)


def test_spec_refuses_sizes_the_backbone_cannot_halve():
    with pytest.raises(ValueError, match="multiple of 32"):
        DetSpec(width=100, height=96)
    assert PersonDetNet(SPEC)(torch.zeros(1, 3, 96, 128))[0].shape == (1, 1, 24, 32)
    wider = PersonDetNet(DetSpec(width=128, height=96, context=2))
    assert len(wider.down[3]) == 4 and len(wider.down[2]) == 3  # 2 dilated blocks at stride 32, 1 at 16
    assert wider(torch.zeros(1, 3, 96, 128))[0].shape == (1, 1, 24, 32)
    cv2.setNumThreads(1)
