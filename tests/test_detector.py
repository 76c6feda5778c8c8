"""Detector: YOLO decoders on hand-built tensors, a tiny YOLO-layout network exported to ONNX and run
through Detector against boxes worked out by hand, and bad detector files / outputs / frames."""

from __future__ import annotations

import contextlib
import io
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from okdhp_edge.boxes import iou_matrix, nms, oks_matrix
from okdhp_edge.runtime import BackendUnavailableError, Detector, InputError, ModelFileError
from okdhp_edge.runtime.detector import DetectorConfig
from okdhp_edge.runtime.detectors.yolo import decode, detect_layout, letterbox

REPO = Path(__file__).resolve().parents[1]
CELL, SIZE = 8, 64  # the tiny network: one anchor per 8x8 cell of a 64x64 input, 64 anchors


def v8_tensor(xywh: list[list[float]], scores: list[list[float]], anchors: int = 50) -> np.ndarray:
    """(1, 4 + C, anchors) with the given boxes first and zero-score padding after them."""
    c = len(scores[0])
    out = np.zeros((1, 4 + c, anchors), np.float32)
    out[0, :2] = 10.0
    out[0, 2:4] = 5.0
    for i, (box, s) in enumerate(zip(xywh, scores)):
        out[0, :4, i] = box
        out[0, 4:, i] = s
    return out


def test_layouts_from_shape():
    assert detect_layout((1, 84, 8400)) == "v8"
    assert detect_layout((1, 5, 2100)) == "v8"  # one class
    assert detect_layout((1, 25200, 85)) == "v5"
    assert detect_layout((1, 300, 6)) == "end2end"
    assert detect_layout((1, 25200, 6)) == "v5"  # one-class v5: too many rows for an end-to-end export
    for bad in [(1, 17, 64, 48), (1, 4, 4), (2, 84, 8400), (1, 1000)]:
        with pytest.raises(ValueError, match="not"):
            detect_layout(bad)


def test_decode_v8_keeps_person_scores_and_converts_boxes():
    out = v8_tensor([[100, 50, 40, 80], [200, 100, 20, 20]], [[0.9, 0.1], [0.2, 0.8]])
    found = decode(out, "v8", 640, 640)
    assert found.shape == (50, 5)
    np.testing.assert_allclose(found[0], [80, 10, 120, 90, 0.9])
    np.testing.assert_allclose(found[1], [190, 90, 210, 110, 0.2])  # class 1's score is not the person's
    assert np.all(found[2:, 4] == 0)


def test_decode_v5_multiplies_objectness_and_class():
    out = np.zeros((1, 30, 7), np.float32)
    out[0, :, 2:4] = 4.0
    out[0, 0] = [100, 50, 40, 80, 0.8, 0.5, 0.1]
    found = decode(out, "v5", 640, 640)
    np.testing.assert_allclose(found[0], [80, 10, 120, 90, 0.4])


def test_decode_end2end_keeps_class_zero_only():
    out = np.zeros((1, 300, 6), np.float32)
    out[0, 0] = [10, 20, 110, 220, 0.95, 0]
    out[0, 1] = [50, 50, 90, 90, 0.99, 2]  # a car
    found = decode(out, "end2end", 640, 640)
    np.testing.assert_allclose(found, [[10, 20, 110, 220, 0.95]])  # zero-size padding rows dropped


def test_normalised_tflite_coordinates_are_scaled():
    out = v8_tensor([[0.5, 0.25, 0.1, 0.2]], [[0.7]])
    out[0, :4, 1:] = 0.01
    found = decode(out, "v8", 640, 320)
    np.testing.assert_allclose(found[0], [288, 48, 352, 112, 0.7], rtol=1e-5)


def test_letterbox_maps_boxes_back_to_the_image():
    image = np.zeros((240, 320, 3), np.uint8)
    canvas, box = letterbox(image, 640, 640)
    assert canvas.shape == (640, 640, 3)
    assert box.scale == 2 and box.pad_x == 0 and box.pad_y == 80
    assert (canvas[:80] == 114).all() and (canvas[80:560] == 0).all() and (canvas[560:] == 114).all()
    # a person at image (10, 20)-(110, 220) is at input (20, 120)-(220, 520)
    out = v8_tensor([[120, 320, 200, 400]], [[0.9]])
    found = decode(out, "v8", 640, 640)
    np.testing.assert_allclose(box.to_image(found[:1, :4]), [[10, 20, 110, 220]])


def test_nms_iou_and_oks():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 10]], np.float32)
    np.testing.assert_allclose(iou_matrix(boxes[:1], boxes)[0], [1, 81 / 119, 0, 1])
    assert nms(boxes, np.array([0.9, 0.8, 0.7, 0.95]), 0.5).tolist() == [3, 2]
    assert nms(boxes, np.array([0.9, 0.8, 0.7, 0.95]), 0.9).tolist() == [3, 1, 2]
    assert nms(boxes[:0], np.zeros(0), 0.5).size == 0
    pose = np.random.default_rng(0).uniform(0, 100, (1, 17, 2))
    oks = oks_matrix(pose, np.concatenate([pose, pose + 30]), areas=np.array([100.0 * 100]))
    assert oks[0, 0] == pytest.approx(1.0) and oks[0, 1] < 0.1


# -- a tiny network with the YOLO output layout, exported to ONNX --------------------------------


def tiny_yolo(layout: str = "v8", poison: str | None = None, normalised: bool = False):
    """Person score of each 8x8 cell = mean red of the cell (input is RGB in [0, 1]); box = the cell.

    poison="nan" puts NaN in the box of cell 0; "negative" makes every score negative;
    normalised=True gives boxes in [0, 1] as Ultralytics' TFLite exports do.
    """
    import torch
    import torch.nn.functional as F

    g = SIZE // CELL
    ys, xs = np.meshgrid(np.arange(g), np.arange(g), indexing="ij")
    xywh = np.stack(
        [(xs.ravel() + 0.5) * CELL, (ys.ravel() + 0.5) * CELL, np.full(g * g, CELL), np.full(g * g, CELL)]
    ).astype(np.float32)
    if poison == "nan":
        xywh[0, 0] = np.nan
    if normalised:
        xywh /= SIZE

    class TinyYolo(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("xywh", torch.from_numpy(xywh)[None])

        def forward(self, x):
            pooled = F.avg_pool2d(x, CELL).flatten(2)  # (1, 3, A)
            person, other = pooled[:, 0:1], pooled[:, 1:2]
            if poison == "negative":
                person = person - 2.0
            if layout == "v5":
                obj = torch.ones_like(person)
                return torch.cat([self.xywh, obj, person, other], 1).transpose(1, 2)
            return torch.cat([self.xywh, person, other], 1)

    return TinyYolo().eval()


def export_tiny_yolo(path: Path, layout: str = "v8", poison: str | None = None) -> Path:
    """The tiny network as ONNX (see tiny_yolo)."""
    import torch

    with contextlib.redirect_stdout(io.StringIO()), torch.no_grad():
        program = torch.onnx.export(
            tiny_yolo(layout, poison),
            (torch.zeros(1, 3, SIZE, SIZE),),
            dynamo=True,
            input_names=["images"],
            output_names=["output0"],
            verbose=False,
        )
    program.save(str(path))
    return path


def red_patches(width: int, height: int, cells: list[tuple[int, int, int, int]]) -> np.ndarray:
    frame = np.zeros((height, width, 3), np.uint8)
    for x1, y1, x2, y2 in cells:
        frame[y1:y2, x1:x2] = (0, 0, 255)  # BGR red
    return frame


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("tiny-yolo")
    return {
        name: export_tiny_yolo(out / f"{name}.onnx", *args)
        for name, args in {
            "v8": ("v8",),
            "v5": ("v5",),
            "nan": ("v8", "nan"),
            "negative": ("v8", "negative"),
        }.items()
    }


@pytest.mark.parametrize("layout", ["v8", "v5"])
def test_tiny_yolo_through_detector_matches_hand_worked_boxes(tiny, layout):
    detector = Detector(tiny[layout], num_threads=1, score_threshold=0.5)
    assert detector.family.layout == layout and (detector.family.width, detector.family.height) == (SIZE, SIZE)
    # 128x128 image -> scale 0.5, no padding: a red 16x16 patch at (32, 32) fills input cell (2, 2)
    found = detector.detect(red_patches(128, 128, [(32, 32, 48, 48)]))
    np.testing.assert_allclose(found, [[32, 32, 48, 48, 1.0]], atol=1e-5)
    # 128x64 -> scale 0.5 and 16 rows of padding on top: image (32, 16)-(48, 32) is input row 24..32
    found = detector.detect(red_patches(128, 64, [(32, 16, 48, 32), (96, 0, 112, 16)]))
    # equal scores keep anchor order: input row 2 (y 16..24) comes before row 3
    np.testing.assert_allclose(found, [[96, 0, 112, 16, 1.0], [32, 16, 48, 32, 1.0]], atol=1e-5)
    # half-covered cell: score 0.5 and the cell's full box; sorted below the full one
    found = detector.detect(red_patches(128, 128, [(0, 0, 8, 16), (64, 64, 80, 80)]))
    np.testing.assert_allclose(found, [[64, 64, 80, 80, 1.0], [0, 0, 16, 16, 0.5]], atol=1e-5)


def test_tiny_yolo_as_tflite_with_normalised_boxes(tmp_path):
    litert_torch = pytest.importorskip("litert_torch", reason="TFLite conversion needs litert-torch (the export extra)")
    import torch

    path = tmp_path / "tiny.tflite"
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        litert_torch.convert(tiny_yolo(normalised=True), (torch.zeros(1, 3, SIZE, SIZE),)).export(str(path))
    detector = Detector(path, num_threads=1, score_threshold=0.5)
    found = detector.detect(red_patches(128, 64, [(32, 16, 48, 32)]))
    np.testing.assert_allclose(found, [[32, 16, 48, 32, 1.0]], atol=1e-4)


def test_zero_and_fifty_people(tiny):
    detector = Detector(tiny["v8"], num_threads=1)
    assert detector.detect(np.zeros((128, 128, 3), np.uint8)).shape == (0, 5)
    crowd = [(x, y, x + 16, y + 16) for y in range(0, 128, 16) for x in range(0, 128, 16)][:50]
    frame = red_patches(128, 128, crowd)
    assert len(detector.detect(frame)) == 20  # the default max_people
    found = Detector(tiny["v8"], num_threads=1, max_people=50).detect(frame)
    assert len(found) == 50 and (found[:, 4] > 0.99).all()
    assert Detector(tiny["v8"], max_people=0).detect(frame).shape == (0, 5)


def test_frames_of_any_size_and_bad_frames(tiny):
    detector = Detector(tiny["v8"], num_threads=1, score_threshold=0.5)  # the grey padding (114) scores 0.45
    for w, h in [(128, 128), (640, 360), (37, 91), (1, 1)]:
        assert detector(np.zeros((h, w, 3), np.uint8)).shape == (0, 5)
    assert len(detector(red_patches(32, 256, [(0, 100, 32, 132)]))) >= 1
    assert len(detector(cv2.cvtColor(red_patches(128, 128, [(32, 32, 48, 48)]), cv2.COLOR_BGR2GRAY))) == 0
    with pytest.raises(InputError, match="empty"):
        detector(np.zeros((0, 10, 3), np.uint8))
    with pytest.raises(InputError, match="None"):
        detector(None)


def test_nan_and_negative_outputs_are_dropped(tiny):
    frame = red_patches(128, 128, [(0, 0, 16, 16), (64, 64, 80, 80)])
    found = Detector(tiny["nan"], num_threads=1).detect(frame)
    np.testing.assert_allclose(found, [[64, 64, 80, 80, 1.0]], atol=1e-5)  # the NaN cell is gone, not a crash
    assert Detector(tiny["negative"], num_threads=1).detect(frame).shape == (0, 5)


def test_bad_detector_files(tiny, tmp_path):
    with pytest.raises(ModelFileError, match=r"missing\.onnx: model file not found.*YOLO"):
        Detector(tmp_path / "missing.onnx")
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(tiny["v8"].read_bytes()[:200])
    with pytest.raises(ModelFileError, match=r"truncated\.onnx: onnxruntime cannot load.*export it again"):
        Detector(truncated)
    with pytest.raises(ModelFileError, match=r"weights\.pt: unknown model type"):
        Detector(tmp_path / "weights.pt")
    with pytest.raises(ValueError, match="tiling is for MediaPipe"):
        Detector(tiny["v8"], tiles=3)


def test_wrong_layout_file_names_the_file(tmp_path):
    from runtime_artifacts import export_onnx, make_student

    pose_model = export_onnx(make_student(tmp_path), tmp_path)  # a pose network: heatmaps, not boxes
    with pytest.raises(ModelFileError, match=rf"{pose_model.name}: output shape .* YOLO detection export"):
        Detector(pose_model)


def test_models_in_a_list_are_merged(tiny):
    """Two models: each keeps its own threshold, and the same person from both is one box."""
    frame = red_patches(128, 128, [(32, 32, 48, 48), (0, 0, 8, 16)])  # a full cell (1.0) and a half one (0.5)
    one = Detector(tiny["v8"], num_threads=1, score_threshold=0.6).detect(frame)
    both = Detector([tiny["v8"], tiny["v5"]], num_threads=1, score_threshold=0.6).detect(frame)
    np.testing.assert_allclose(both, one, atol=1e-5)
    assert [p.path for p in Detector([tiny["v8"], tiny["v5"]]).parts] == [tiny["v8"], tiny["v5"]]
    with pytest.raises(ValueError, match="at least one model"):
        Detector([])


def test_zoom_out_adds_a_run_on_the_frame_made_smaller(tiny):
    """zoom_out=2 on a 128x128 frame: the second run sees it at scale 0.25 in the middle of the 64x64
    input (16 px of grey each side), so a red 32x32 corner patch fills input cell (2, 2) and comes
    back as one whole-patch box beside the four 16x16 boxes of the normal run."""
    frame = red_patches(128, 128, [(0, 0, 32, 32)])
    quarters = [[0, 0, 16, 16, 1.0], [0, 16, 16, 32, 1.0], [16, 0, 32, 16, 1.0], [16, 16, 32, 32, 1.0]]
    normal = Detector(tiny["v8"], num_threads=1, score_threshold=0.5).detect(frame)
    np.testing.assert_allclose(sorted(normal.tolist()), quarters, atol=1e-5)
    zoomed = Detector(tiny["v8"], num_threads=1, score_threshold=0.5, zoom_out=2).detect(frame)
    np.testing.assert_allclose(sorted(zoomed.tolist()), sorted([[0, 0, 32, 32, 1.0], *quarters]), atol=1e-5)
    canvas, box = letterbox(frame, SIZE, SIZE, shrink=2)
    assert box.scale == 0.25 and (box.pad_x, box.pad_y) == (16, 16) and (canvas[:16] == 114).all()
    for bad in (1, 0.5):
        with pytest.raises(ValueError, match=f"zoom_out={bad}: needs a number > 1"):
            Detector(tiny["v8"], zoom_out=bad)


def export_fixed_boxes(path: Path, rows: list[list[float]]) -> Path:
    """A network whose v8-layout output is always `rows` (cx, cy, w, h, person score), padded to 8
    anchors with empty rows: what the detector's post-processing makes of given boxes."""
    import torch

    table = np.zeros((5, 8), np.float32)
    table[:, : len(rows)] = np.asarray(rows, np.float32).T

    class Fixed(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("table", torch.from_numpy(table)[None])

        def forward(self, x):
            return self.table + 0.0 * x.mean()

    with contextlib.redirect_stdout(io.StringIO()), torch.no_grad():
        program = torch.onnx.export(Fixed().eval(), (torch.zeros(1, 3, SIZE, SIZE),), dynamo=True, verbose=False)
    program.save(str(path))
    return path


def test_a_face_sized_box_inside_a_person_found_is_dropped(tmp_path):
    """A 8x8 box 80 % inside a 48x48 one that scores higher is a part of that person (1/36 of its
    area); one scoring higher than the big box, or outside it, stays; part_share=0 keeps all."""
    person, face, better, outside = [32, 32, 48, 48, 0.9], [28, 24, 8, 8, 0.8], [36, 36, 8, 8, 0.95], [4, 60, 8, 8, 0.7]
    model = export_fixed_boxes(tmp_path / "fixed.onnx", [person, face, better, outside])
    frame = np.zeros((64, 64, 3), np.uint8)
    kept = Detector(model, num_threads=1, iou_threshold=1.0).detect(frame)
    np.testing.assert_allclose(kept[:, 4], [0.95, 0.9, 0.7], atol=1e-6)
    every = Detector(model, num_threads=1, iou_threshold=1.0, part_share=0).detect(frame)
    np.testing.assert_allclose(every[:, 4], [0.95, 0.9, 0.8, 0.7], atol=1e-6)
    with pytest.raises(ValueError, match="part_share must be in"):
        Detector(model, part_share=1.0)


def test_inside_bigger_needs_small_enclosed_and_outscored():
    from okdhp_edge.boxes import inside_bigger

    boxes = np.array([[0, 0, 40, 40], [10, 10, 18, 18], [36, 36, 44, 44], [10, 10, 30, 30]], np.float32)
    scores = np.array([0.9, 0.5, 0.5, 0.5])
    # 8x8 inside: 1/25 of the area, dropped; 8x8 half outside: kept; 20x20 inside: 1/4 of it, kept
    assert inside_bigger(boxes, scores, 1 / 16).tolist() == [False, True, False, False]
    lower = np.array([0.4, 0.5, 0.5, 0.5])  # the big box scores below the small one: both stay
    assert inside_bigger(boxes, lower, 1 / 16).tolist() == [False, False, False, False]


@pytest.mark.parametrize("name", ["okdhp-person", "okdhp-any"])
def test_shipped_detectors_are_in_the_package(name):
    from okdhp_edge.runtime.detector import SHIPPED_DETECTORS

    detector = Detector(name, num_threads=1)
    assert detector.model_path == SHIPPED_DETECTORS[name] and detector.family.layout == "v8"
    assert detector.detect(np.zeros((480, 640, 3), np.uint8)).shape[1] == 5
    record = json.loads((REPO / "weights" / name / f"{name}.json").read_text(encoding="utf-8"))
    assert record["kind"] == "okdhp_edge person detector" and record["provenance"]["command"]


def test_okdhp_any_merges_boxes_overlapping_by_half_and_a_copy_keeps_yolo_s_default(tmp_path):
    from okdhp_edge.runtime.detector import SHIPPED_DETECTORS

    # its second box on one near person overlaps the first by 0.5-0.6 (docs/runtime.md): NMS at 0.5
    assert Detector("okdhp-any", num_threads=1).config == DetectorConfig(iou_threshold=0.5)
    assert Detector("okdhp-any", num_threads=1, iou_threshold=0.7).config.iou_threshold == 0.7  # the caller's wins
    copy = tmp_path / "mine.onnx"
    copy.write_bytes(SHIPPED_DETECTORS["okdhp-any"].read_bytes())
    assert Detector(copy, num_threads=1).config == DetectorConfig()  # any other file: a YOLO export's defaults


def test_without_litert_a_tflite_detector_names_the_onnx_one_that_runs(monkeypatch, tmp_path):
    # JetPack 5 (Python 3.8) has no LiteRT wheels: MediaPipe's detector (or any .tflite) cannot run there
    for module in ("ai_edge_litert", "ai_edge_litert.interpreter", "tflite_runtime", "tflite_runtime.interpreter"):
        monkeypatch.setitem(sys.modules, module, None)
    model = tmp_path / "pose_detection.tflite"
    model.write_bytes(b"TFL3" + bytes(60))
    alone = r"need LiteRT.*Detector\('okdhp-any'\) runs on ONNX Runtime alone"
    with pytest.raises(BackendUnavailableError, match=alone):
        Detector(model)
    assert Detector("okdhp-any", num_threads=1).detect(np.zeros((240, 320, 3), np.uint8)).shape[1] == 5
