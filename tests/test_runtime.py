"""Runtime Predictor: backends agree, torch stays out, batching, flip test, tracker, drawing, benchmark."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from runtime_artifacts import export_artifact, export_onnx, export_tflite, make_student, person_frame

from okdhp_edge.runtime import BackendUnavailableError, PoseTracker, Predictor, TrackerConfig, draw_fps, draw_pose
from okdhp_edge.runtime.backends.litert_interpreter import dequantize, quantize
from okdhp_edge.runtime.benchmark import main as benchmark_main
from okdhp_edge.runtime.tracker import keypoint_box

REPO = Path(__file__).resolve().parents[1]
HAVE_TENSORRT = importlib.util.find_spec("tensorrt") is not None
BOXES = np.array([[110, 20, 210, 230], [10, 40, 100, 200], [200, 100, 319, 239]], np.float32)


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("runtime-artifacts")
    student = make_student(out)
    return {
        "torch": student,
        "onnx": export_onnx(student, out),
        "tflite": export_tflite(student, out),
        "onnx_nhwc": export_artifact(student, out / "nhwc", "onnx", nhwc=True),
    }


@pytest.fixture(scope="module")
def predictors(artifacts) -> dict[str, Predictor]:
    return {name: Predictor(path, num_threads=1) for name, path in artifacts.items()}


def well_conditioned(heatmaps: np.ndarray, eps: float = 2e-5) -> np.ndarray:
    """(N, K) mask of maps whose argmax and quarter-pixel step cannot flip under ~1e-6 backend
    rounding (measured ~3e-7): the peak beats the runner-up and its neighbours differ by more than eps.
    (The fixture is untrained, so a few maps are nearly flat; comparing them tests nothing.)"""
    n, k, h, w = heatmaps.shape
    flat = heatmaps.reshape(n * k, -1)
    top2 = np.sort(flat, axis=1)[:, -2:]
    idx = flat.argmax(axis=1)
    y, x = idx // w, idx % w
    maps = flat.reshape(-1, h, w)
    r = np.arange(n * k)
    dx = np.where(
        (x > 0) & (x < w - 1), np.abs(maps[r, y, np.minimum(x + 1, w - 1)] - maps[r, y, np.maximum(x - 1, 0)]), 1
    )
    dy = np.where(
        (y > 0) & (y < h - 1), np.abs(maps[r, np.minimum(y + 1, h - 1), x] - maps[r, np.maximum(y - 1, 0), x]), 1
    )
    return ((top2[:, 1] - top2[:, 0] > eps) & (dx > eps) & (dy > eps)).reshape(n, k)


@pytest.mark.parametrize("flip_test", [False, True])
def test_onnx_tflite_torch_agree_within_half_pixel(predictors, flip_test):
    frames = [person_frame(seed=s) for s in range(3)]
    reference = predictors["torch"]
    for frame in frames:
        batch = reference.preprocess(frame, BOXES)
        ref_hm = reference.infer(batch.inputs, flip_test)
        ref = reference.predict(frame, BOXES, flip_test=flip_test)
        mask = well_conditioned(ref_hm)
        assert mask.mean() > 0.9, "fixture heatmaps too flat to compare keypoints"
        for name in ("onnx", "tflite"):
            other = predictors[name]
            np.testing.assert_allclose(other.infer(batch.inputs, flip_test), ref_hm, atol=1e-4, err_msg=name)
            got = other.predict(frame, BOXES, flip_test=flip_test)
            np.testing.assert_array_equal(got.boxes, ref.boxes)
            dist = np.linalg.norm(got.keypoints - ref.keypoints, axis=-1)
            assert dist[mask].max() <= 0.5, f"{name}: keypoints differ by {dist[mask].max():.2f} px from torch"
            np.testing.assert_allclose(got.scores, ref.scores, atol=1e-4)


def test_runtime_predicts_without_importing_torch(artifacts):
    script = (
        "import sys, numpy as np\n"
        "from okdhp_edge.runtime import Predictor\n"
        "frame = np.full((240, 320, 3), 90, np.uint8)\n"
        "for path in sys.argv[1:]:\n"
        "    result = Predictor(path).predict(frame, [[100, 20, 220, 230]], flip_test=True)\n"
        "    assert result.keypoints.shape == (1, 17, 2), result.keypoints.shape\n"
        "leaked = sorted(m for m in sys.modules if m == 'torch' or m.startswith(('torch.', 'okdhp_edge.models')))\n"
        "print('LEAKED', leaked)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(artifacts["onnx"]), str(artifacts["tflite"])],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr
    assert "LEAKED []" in proc.stdout, proc.stdout


def test_nhwc_artifact_gives_the_same_poses(predictors):
    nhwc = predictors["onnx_nhwc"]
    assert nhwc.backend.info.input_layout == "NHWC" and nhwc.backend.input.shape[1:] == (128, 96, 3)
    frame = person_frame(seed=2)
    for flip_test in (False, True):
        got = nhwc.predict(frame, BOXES, flip_test=flip_test)
        ref = predictors["onnx"].predict(frame, BOXES, flip_test=flip_test)
        np.testing.assert_allclose(got.scores, ref.scores, atol=1e-5)
        np.testing.assert_allclose(got.keypoints, ref.keypoints, atol=1e-3)


@pytest.mark.slow
def test_full_integer_nhwc_tflite_is_quantized_correctly(artifacts, predictors, tmp_path_factory):
    """An INT8 LiteRT model with int8 input/output tensors (the Android target) is fed through
    the tensors' scale and zero point; its heatmaps track the FP32 ones within quantization
    noise (a wrong scale, zero point or layout is off by the whole heatmap range or more)."""
    out = tmp_path_factory.mktemp("int8")
    model = export_artifact(
        artifacts["torch"], out, "tflite", "int8", nhwc=True, calib_images=4, synthetic_images=8, cache_dir=out / "data"
    )
    predictor = Predictor(model, num_threads=1)
    assert predictor.backend.input.dtype == "int8" and predictor.backend.info.output_layout == "NHWC"
    frame = person_frame(seed=4)
    got = predictor.infer(predictor.preprocess(frame, BOXES).inputs)
    ref = predictors["onnx"].infer(predictors["onnx"].preprocess(frame, BOXES).inputs)
    assert got.shape == ref.shape
    assert np.abs(got - ref).max() < 0.15 * (ref.max() - ref.min())
    assert np.corrcoef(got.ravel(), ref.ravel())[0, 1] > 0.9


def test_result_geometry_and_names(predictors):
    frame = person_frame()
    result = predictors["onnx"].predict(frame, BOXES)
    assert result.keypoints.shape == (3, 17, 2) and result.scores.shape == (3, 17) and len(result) == 3
    assert result.keypoint_names[0] == "nose" and len(result.limbs) == 19
    for kpts, box in zip(result.keypoints, result.boxes):
        # every keypoint lies inside the padded crop window around its box
        cx, cy = (box[:2] + box[2:]) / 2
        w, h = box[2:] - box[:2]
        half = 1.25 * max(w, h * 96 / 128) / 2 + 1, 1.25 * max(h, w * 128 / 96) / 2 + 1
        assert np.all(np.abs(kpts[:, 0] - cx) <= half[0]) and np.all(np.abs(kpts[:, 1] - cy) <= half[1])
    whole = predictors["onnx"].predict(frame)
    np.testing.assert_array_equal(whole.boxes, [[0, 0, 319, 239]])
    empty = predictors["onnx"].predict(frame, np.zeros((0, 4)))
    assert empty.keypoints.shape == (0, 17, 2) and empty.to_dict() == {"people": []}
    people = result.to_dict()["people"]
    assert len(people) == 3 and set(people[0]["keypoints"]["left_wrist"]) == {"x", "y", "score"}


def test_mirrored_image_gives_mirrored_pose_with_flip_test(predictors):
    """Flip test is symmetric: the pose of the mirrored image is the mirrored pose, with left and
    right keypoints swapped. Catches a wrong flip index, a missing channel swap or a shifted flip."""
    predictor = predictors["onnx"]
    frame = person_frame(seed=3)
    width = frame.shape[1]
    mirrored_boxes = BOXES.copy()
    mirrored_boxes[:, [0, 2]] = width - 1 - BOXES[:, [2, 0]]
    a = predictor.predict(frame, BOXES, flip_test=True)
    b = predictor.predict(np.ascontiguousarray(frame[:, ::-1]), mirrored_boxes, flip_test=True)
    flip = predictor.skeleton.flip_index
    expected = a.keypoints[:, flip].copy()
    expected[..., 0] = width - 1 - expected[..., 0]
    hm = predictor.infer(predictor.preprocess(frame, BOXES).inputs, True)
    mask = well_conditioned(hm)[:, flip]
    dist = np.linalg.norm(b.keypoints - expected, axis=-1)
    assert mask.mean() > 0.9 and dist[mask].max() <= 0.5
    np.testing.assert_allclose(b.scores, a.scores[:, flip], atol=1e-3)


def test_batching_matches_single_crops(artifacts, predictors):
    frame = person_frame(seed=5)
    five = np.concatenate([BOXES, BOXES[:2] + 7])
    onnx_small_batches = Predictor(artifacts["onnx"], max_batch=2)
    assert onnx_small_batches.fixed_batch is None and onnx_small_batches.batch_size == 2
    tflite = predictors["tflite"]
    assert tflite.fixed_batch == 1  # static batch from the artifact is respected
    together = predictors["onnx"].predict(frame, five)
    for result in (onnx_small_batches.predict(frame, five), tflite.predict(frame, five)):
        np.testing.assert_allclose(result.scores, together.scores, atol=1e-4)
    singles = np.concatenate([predictors["onnx"].predict(frame, box).scores for box in five])
    np.testing.assert_allclose(singles, together.scores, atol=1e-4)


@pytest.mark.parametrize("kind", ["onnx", "tflite"])
def test_threads_split_one_calls_crops_on_the_cpu(artifacts, predictors, monkeypatch, kind):
    """num_threads=2 runs a frame's crops as 2 concurrent parts, each on one thread (ONNX Runtime's
    one-thread session, LiteRT's one-thread interpreters); one crop is one call on the session or
    interpreter that spreads it over both threads. LiteRT's fixed batch of 1 makes each part a run
    of one-crop calls."""
    frame = person_frame(seed=5)
    five = np.concatenate([BOXES, BOXES[:2] + 7])
    split = Predictor(artifacts[kind], num_threads=2)
    assert split.backend.parts == 2
    calls: list[tuple[str, int]] = []
    run, run_part = split.backend.run, split.backend.run_part
    monkeypatch.setattr(split.backend, "run", lambda x: calls.append(("run", len(x))) or run(x))
    monkeypatch.setattr(split.backend, "run_part", lambda x: calls.append(("part", len(x))) or run_part(x))
    for flip_test in (False, True):
        calls.clear()
        got = split.predict(frame, five, flip_test=flip_test)
        if kind == "onnx":
            assert sorted(calls) == ([("part", 5), ("part", 5)] if flip_test else [("part", 2), ("part", 3)])
        else:
            assert calls == [("part", 1)] * (10 if flip_test else 5)
        want = predictors[kind].predict(frame, five, flip_test=flip_test)
        np.testing.assert_allclose(got.keypoints, want.keypoints, atol=1e-3)
        np.testing.assert_allclose(got.scores, want.scores, atol=1e-4)
    calls.clear()
    split.predict(frame, BOXES[:1])
    assert calls == [("run", 1)]
    assert Predictor(artifacts[kind], num_threads=1)._pool is None


def test_parts_differ_by_at_most_one_crop():
    from okdhp_edge.runtime.predictor import split_evenly

    assert split_evenly(5, 2) == [(0, 2), (2, 5)]
    assert split_evenly(1, 4) == [(0, 1)]
    assert split_evenly(40, 3) == [(0, 13), (13, 26), (26, 40)]
    assert split_evenly(0, 2) == [(0, 0)]


def test_litert_interpreters_one_wide_one_per_part(artifacts):
    """LiteRT's default is one thread; the pose backend takes a thread per core like ONNX Runtime,
    and with several threads keeps one-thread interpreters for the concurrent parts."""
    import os

    wide = Predictor(artifacts["tflite"], num_threads=2).backend
    assert wide.model._num_threads == 2 and wide.part_model._num_threads == 1
    one = Predictor(artifacts["tflite"], num_threads=1).backend
    assert one.part_model is one.model and one.parts == 1
    assert Predictor(artifacts["tflite"]).backend.parts == (os.cpu_count() or 1)


@pytest.mark.parametrize("name", ["real-tiny", "embedded"])
def test_onnx_cpu_sessions_one_wide_one_per_part(tmp_path, name):
    """With several threads a CPU student gets a session of that many intra-op threads for whole
    calls and a one-thread session for the concurrent parts; with one thread, one session. The
    file without a sidecar (spec read from its metadata) keeps the session that read it."""
    from okdhp_edge.runtime import bundled_models

    path = bundled_models("onnx")["real-tiny"]
    if name == "embedded":
        path = tmp_path / "embedded.onnx"
        path.write_bytes(bundled_models("onnx")["real-tiny"].read_bytes())

    def intra(model) -> int:
        return model.session.get_session_options().intra_op_num_threads

    two = Predictor(path, num_threads=2).backend
    assert intra(two.model) == 2 and intra(two.part_model) == 1
    one = Predictor(path, num_threads=1).backend
    assert one.part_model is one.model and intra(one.model) == 1


@pytest.mark.parametrize(
    "value, allow, stop",
    [(None, "1", "1"), ("", "1", "1"), ("0", "0", None), ("run", "1", "1"), ("1", "1", None), ("ON", "1", None)],
)
def test_spinning_setting_reaches_every_session(monkeypatch, value, allow, stop):
    """OKDHP_EDGE_ORT_SPINNING: "run" by default (spin inside a run, stop at its end), "0" off, "1" on."""
    from okdhp_edge.runtime.backends.onnx_session import SPINNING_ENV

    if value is None:
        monkeypatch.delenv(SPINNING_ENV, raising=False)
    else:
        monkeypatch.setenv(SPINNING_ENV, value)
    options = Predictor("real-tiny", backend="onnx", num_threads=2).backend.model.session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == allow
    if stop is None:
        with pytest.raises(RuntimeError):  # never set
            options.get_session_config_entry("session.force_spinning_stop")
    else:
        assert options.get_session_config_entry("session.force_spinning_stop") == stop
    monkeypatch.setenv(SPINNING_ENV, "sometimes")
    with pytest.raises(ValueError, match="OKDHP_EDGE_ORT_SPINNING=.sometimes.: valid values are run"):
        Predictor("real-tiny", backend="onnx", num_threads=1)


def test_colour_order_and_channel_conversions(predictors):
    predictor = predictors["onnx"]
    frame = person_frame(seed=7)
    bgr = predictor.predict(frame, BOXES)
    rgb = predictor.predict(np.ascontiguousarray(frame[..., ::-1]), BOXES, rgb=True)
    np.testing.assert_array_equal(rgb.keypoints, bgr.keypoints)
    swapped = predictor.predict(np.ascontiguousarray(frame[..., ::-1]), BOXES)  # RGB passed as BGR: different input
    assert not np.allclose(swapped.scores, bgr.scores, atol=1e-4)
    gray = frame.mean(axis=2).astype(np.uint8)
    g2 = predictor.predict(gray, BOXES)
    g3 = predictor.predict(np.repeat(gray[..., None], 3, axis=2), BOXES)
    np.testing.assert_array_equal(g2.keypoints, g3.keypoints)
    bgra = np.concatenate([frame, np.full(frame.shape[:2] + (1,), 255, np.uint8)], axis=2)
    np.testing.assert_array_equal(predictor.predict(bgra, BOXES).keypoints, bgr.keypoints)


def test_boxes_partly_outside_are_clipped(predictors):
    predictor = predictors["onnx"]
    frame = person_frame()
    result = predictor.predict(frame, [[-50, -20, 150, 300]])
    np.testing.assert_array_equal(result.boxes, [[0, 0, 150, 239]])
    np.testing.assert_array_equal(result.keypoints, predictor.predict(frame, [[0, 0, 150, 239]]).keypoints)


def test_litert_quantization_round_trip():
    x = np.linspace(-3, 3, 101, dtype=np.float32)
    for dtype, zero in ((np.int8, -3), (np.uint8, 128)):
        q = quantize(x, 0.025, zero, np.dtype(dtype))
        assert q.dtype == dtype
        assert np.abs(dequantize(q, 0.025, zero) - x).max() <= 0.0125 + 1e-6
    assert quantize(np.array([100.0], np.float32), 0.1, 0, np.dtype(np.int8))[0] == 127  # saturates


def test_tracker_follows_keypoints_and_reinitialises(predictors):
    predictor = predictors["onnx"]
    frames = [person_frame(seed=s, box=(60 + 10 * s, 20, 160 + 10 * s, 230)) for s in range(4)]
    # Untrained weights give low scores, so thresholds are set to keep tracking on every frame.
    keep = TrackerConfig(keypoint_score=-1.0, lost_score=-1.0, min_keypoints=4, smoothing=None)
    calls = []

    def detector(frame):
        calls.append(frame.shape)
        return np.array([[60, 20, 160, 230, 0.9]], np.float32)  # a score column is dropped

    tracker = PoseTracker(predictor, detector, keep, detect_every=0)  # detect only when nobody is tracked
    (first,) = tracker.update(frames[0])
    np.testing.assert_allclose(first.keypoints, predictor.predict(frames[0], [[60, 20, 160, 230]]).keypoints[0])
    next_crop = keypoint_box(first.keypoints, first.scores, keep, 320, 240)
    (second,) = tracker.update(frames[1])  # the crop follows the keypoints, no detector call
    np.testing.assert_allclose(second.keypoints, predictor.predict(frames[1], next_crop).keypoints[0])
    assert second.track_id == first.track_id and second.age == 1
    assert len(calls) == 1 and tracker.detections == 1

    lost = TrackerConfig(lost_score=10.0)  # no pose is ever good enough: nobody is tracked
    tracker = PoseTracker(predictor, None, lost)
    for frame in frames:
        assert tracker.update(frame) == [] and not tracker.tracks


def test_draw_pose_and_fps_change_pixels(predictors):
    frame = np.zeros((240, 320, 3), np.uint8)
    result = predictors["onnx"].predict(person_frame(), BOXES[:1])
    drawn = draw_pose(frame.copy(), result, min_score=-1.0, draw_scores=True)
    x, y = np.round(result.keypoints[0, 0]).astype(int)
    assert drawn[y, x].any(), "no keypoint drawn at the nose"
    assert not draw_pose(frame.copy(), result, min_score=10.0, draw_boxes=False).any()  # nothing confident enough
    assert draw_fps(frame.copy(), 29.97).any()


def test_benchmark_cli_writes_table_and_json(artifacts, tmp_path, capsys):
    out = tmp_path / "bench.json"
    code = benchmark_main(
        [
            str(artifacts["onnx"]),
            str(artifacts["tflite"]),
            "--runs",
            "3",
            "--rounds",
            "3",
            "--warmup",
            "1",
            "--people",
            "1,2",
            "--threads",
            "1,2",
            "--json",
            str(out),
        ]
    )
    assert code == 0
    table = capsys.readouterr().out
    assert "median ms" in table and "ms/person" in table and "onnxruntime" in table and "litert" in table
    payload = json.loads(out.read_text())
    results = payload["results"]
    assert [(Path(r["model"]).suffix, r["threads"], r["batch"]) for r in results] == [
        (suffix, threads, people) for suffix in (".onnx", ".tflite") for threads in (1, 2) for people in (1, 2)
    ]
    for r in results:
        assert r["runs"] == 3 and r["p90_ms"] >= r["median_ms"] > r["inference_median_ms"] > 0
        assert 0 < r["preprocess_share"] < 1 and 0 < r["postprocess_share"] < 1
        assert r["people_per_s"] == pytest.approx(r["batch"] * r["fps"])
        assert r["ms_per_person"] == pytest.approx(r["median_ms"] / r["batch"])
    alone = {(r["model"], r["threads"]): r["median_ms"] for r in results if r["batch"] == 1}
    for r in results:
        assert r["per_person_vs_one"] == pytest.approx(r["ms_per_person"] / alone[r["model"], r["threads"]])


def test_benchmark_cli_refuses_bad_counts(capsys):
    with pytest.raises(SystemExit):
        benchmark_main(["real-tiny", "--people", "1,0"])
    assert "every count must be >= 1" in capsys.readouterr().err


@pytest.mark.skipif(HAVE_TENSORRT, reason="tensorrt is installed; test_tensorrt_engine_matches_onnx covers it")
def test_engine_without_tensorrt_is_a_clear_error(tmp_path):
    engine = tmp_path / "x-fp16.engine"
    engine.write_bytes(b"\0" * 64)
    with pytest.raises(BackendUnavailableError, match="TensorRT"):
        Predictor(engine)


@pytest.mark.skipif(
    not HAVE_TENSORRT, reason="needs NVIDIA TensorRT (python package `tensorrt`), cuda-python and a CUDA GPU"
)
def test_tensorrt_engine_matches_onnx(artifacts, tmp_path):
    from okdhp_edge.export import export

    engine = export(artifacts["torch"], format="tensorrt", precision="fp32", out_dir=tmp_path).artifact
    frame = person_frame()
    got = Predictor(engine).predict(frame, BOXES)
    ref = Predictor(artifacts["onnx"]).predict(frame, BOXES)
    np.testing.assert_allclose(got.scores, ref.scores, atol=1e-2)


@pytest.mark.skipif(sys.platform == "darwin", reason="on macOS Core ML runs; see test_coreml_predicts")
def test_coreml_off_macos_is_a_clear_error(tmp_path):
    package = tmp_path / "x-fp16.mlpackage"
    package.mkdir()
    with pytest.raises(BackendUnavailableError, match="macOS"):
        Predictor(package)


@pytest.mark.slow
def test_coreml_packages_pass_the_metadata_check(artifacts, tmp_path):
    """Core ML cannot predict here, but its exported packages (tensor and image input) are read
    and checked against their metadata on any OS: the part of the backend that runs before predict."""
    ct = pytest.importorskip("coremltools", reason="Core ML export needs coremltools")
    from okdhp_edge.runtime.backends.coreml import read_package
    from okdhp_edge.runtime.metadata import check_io

    for image_input, expected_batch in ((False, None), (True, 1)):
        package = export_artifact(artifacts["torch"], tmp_path / str(image_input), "coreml", image_input=image_input)
        spec, inp, out = read_package(package, ct)
        assert inp.dtype == ("uint8" if image_input else "float32") and inp.shape[1:] == (3, 128, 96)
        assert check_io(spec, inp, out, package) == expected_batch
        spec.input.width = 192  # metadata that disagrees with the package is caught
        with pytest.raises(Exception, match="axis 3"):
            check_io(spec, inp, out, package)


@pytest.mark.skipif(sys.platform != "darwin", reason="Core ML prediction (coremltools MLModel.predict) needs macOS")
def test_coreml_predicts(artifacts, tmp_path):
    from okdhp_edge.export import export

    package = export(artifacts["torch"], format="coreml", precision="fp32", out_dir=tmp_path).artifact
    frame = person_frame()
    got = Predictor(package).predict(frame, BOXES)
    ref = Predictor(artifacts["onnx"]).predict(frame, BOXES)
    np.testing.assert_allclose(got.scores, ref.scores, atol=1e-2)
