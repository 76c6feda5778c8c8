"""Runtime correctness beyond one call: the artifact's max batch, one Predictor shared by threads,
the provider `device="auto"` picks, and what the TensorRT execution provider is given."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from runtime_artifacts import export_artifact, export_onnx, export_tflite, make_student, person_frame

from okdhp_edge.runtime import ModelFileError, Predictor
from okdhp_edge.runtime.backends.onnx import tensorrt_provider_options
from okdhp_edge.runtime.backends.onnx_session import select_providers

BOXES = np.array(
    [[110, 20, 210, 230], [10, 40, 100, 200], [200, 100, 319, 239], [0, 0, 160, 240], [150, 10, 300, 200]], np.float32
)
INT8 = dict(calib_images=8, synthetic_images=16)


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("sharing")
    student = make_student(out)
    INT8["cache_dir"] = out / "data"
    return {
        "torch": student,
        "onnx": export_onnx(student, out),
        "tflite": export_tflite(student, out),
        "onnx_int8": export_artifact(student, out, "onnx", "int8", **INT8),
        # the deferred TensorRT export: a symmetric QDQ ONNX, which TensorRT can build
        "onnx_int8_trt": export_artifact(student, out / "trt", "tensorrt", "int8", max_batch=4, **INT8),
    }


def _with_metadata(src: Path, dst_dir: Path, **export_fields) -> Path:
    """A copy of `src` whose sidecar carries extra `export` fields."""
    dst_dir.mkdir(parents=True, exist_ok=True)
    dst = Path(shutil.copy(src, dst_dir / src.name))
    spec = json.loads(Path(f"{src}.json").read_text())
    spec["export"].update(export_fields)
    Path(f"{dst}.json").write_text(json.dumps(spec))
    return dst


def test_predictor_splits_batches_at_the_artifacts_max_batch(artifacts, tmp_path):
    limited = Predictor(_with_metadata(artifacts["onnx"], tmp_path, max_batch=2), num_threads=1)
    assert limited.batch_size == 2, "the artifact's max_batch (a TensorRT profile, a Core ML range) caps the batch"
    assert Predictor(artifacts["onnx"], num_threads=1, max_batch=8).batch_size == 8
    seen: list[int] = []
    run = limited.backend.run

    def engine_like_run(x: np.ndarray) -> np.ndarray:  # what an engine built with --max-batch 2 does
        seen.append(len(x))
        if len(x) > 2:
            raise ValueError(f"input batch {len(x)} outside the optimisation profile (max 2)")
        return run(x)

    limited.backend.run = engine_like_run
    frame = person_frame()
    got = limited.predict(frame, BOXES)
    want = Predictor(artifacts["onnx"], num_threads=1).predict(frame, BOXES)
    assert seen == [2, 2, 1]
    np.testing.assert_allclose(got.keypoints, want.keypoints, atol=1e-4)
    with pytest.raises(ModelFileError, match="max_batch must be a positive integer"):
        Predictor(_with_metadata(artifacts["onnx"], tmp_path / "bad", max_batch=0))


@pytest.mark.parametrize("name", ["onnx", "tflite", "torch"])
def test_one_predictor_shared_by_four_threads_gives_single_threaded_results(artifacts, name):
    predictor = Predictor(artifacts[name], num_threads=1)
    frames = [person_frame(seed=s) for s in range(25)]
    expected = [predictor.predict(f, BOXES[:3]).keypoints for f in frames]
    results: dict[tuple[int, int], np.ndarray] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def worker(t: int) -> None:
        start.wait()
        try:
            for i in range(25):
                j = (i + 7 * t) % 25  # threads work on different frames at the same moment
                results[t, j] = predictor.predict(frames[j], BOXES[:3]).keypoints
        except BaseException as err:  # noqa: BLE001  (reported below, with the thread's number)
            errors.append(err)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, f"{name}: {errors[0]!r}"
    assert len(results) == 100
    for (t, j), keypoints in results.items():
        np.testing.assert_array_equal(keypoints, expected[j], err_msg=f"{name}: thread {t}, frame {j}")


def test_auto_device_keeps_int8_files_off_core_ml_and_says_what_it_chose(artifacts):
    mac = ["CoreMLExecutionProvider", "CPUExecutionProvider"]
    assert select_providers("auto", mac) == mac, "float files: Core ML first on a Mac"
    assert select_providers("auto", mac, quantized=True) == ["CPUExecutionProvider"]
    assert select_providers("auto", ["CUDAExecutionProvider", *mac], quantized=True)[0] == "CUDAExecutionProvider"
    assert select_providers("coreml", mac, quantized=True)[0] == "CoreMLExecutionProvider", (
        "an explicit device is obeyed"
    )
    text = repr(Predictor(artifacts["onnx_int8"]))
    assert "CPUExecutionProvider" in text and "auto" in text and "INT8" in text, text


def test_tensorrt_provider_gets_precision_flags_shape_profile_and_cache(artifacts, tmp_path):
    trt_source = Predictor(artifacts["onnx_int8_trt"])
    options = tensorrt_provider_options(trt_source.model_path, trt_source.spec, "input", tmp_path)
    h, w = trt_source.spec.input_size[1], trt_source.spec.input_size[0]
    assert options["trt_int8_enable"] is True and options["trt_fp16_enable"] is True
    assert options["trt_profile_min_shapes"] == f"input:1x3x{h}x{w}"
    assert options["trt_profile_max_shapes"] == f"input:4x3x{h}x{w}", "max batch from the export's --max-batch"
    assert options["trt_engine_cache_enable"] is True and options["trt_engine_cache_path"] == str(tmp_path)
    fp32 = Predictor(artifacts["onnx"])
    fp32_options = tensorrt_provider_options(fp32.model_path, fp32.spec, "input", tmp_path)
    assert fp32_options["trt_int8_enable"] is False and fp32_options["trt_fp16_enable"] is False
    cpu_int8 = Predictor(artifacts["onnx_int8"])
    with pytest.raises(ModelFileError, match="symmetric"):
        tensorrt_provider_options(cpu_int8.model_path, cpu_int8.spec, "input", tmp_path)


def test_tensorrt_engine_cache_is_keyed_to_the_file_content(artifacts, tmp_path):
    from okdhp_edge.runtime.backends.onnx import _engine_cache

    copy = Path(shutil.copy(artifacts["onnx"], tmp_path / artifacts["onnx"].name))
    assert _engine_cache(copy) == _engine_cache(artifacts["onnx"])
    copy.write_bytes(copy.read_bytes() + b"\0")  # "retrained": other bytes under the same name
    assert _engine_cache(copy) != _engine_cache(artifacts["onnx"])


@pytest.mark.skipif(
    "TensorrtExecutionProvider" not in ort.get_available_providers(),
    reason="needs onnxruntime-gpu with the TensorRT execution provider and a CUDA GPU",
)
def test_tensorrt_provider_runs_the_symmetric_int8_file(artifacts):
    frame = person_frame()
    on_trt = Predictor(artifacts["onnx_int8_trt"], device="tensorrt")
    on_cpu = Predictor(artifacts["onnx_int8_trt"], device="cpu")
    assert "TensorrtExecutionProvider" in repr(on_trt)
    dist = np.linalg.norm(on_trt.predict(frame, BOXES).keypoints - on_cpu.predict(frame, BOXES).keypoints, axis=-1)
    assert np.median(dist) < 2.0


def test_tensorrt_calibration_cache_is_keyed_to_weights_and_crops(tmp_path):
    from okdhp_edge.export.tensorrt_export import calibration_cache_path

    engine = tmp_path / "target-int8.engine"
    crops = np.random.default_rng(0).normal(size=(4, 3, 8, 6)).astype(np.float32)
    first = calibration_cache_path(engine, "a" * 64, crops)
    assert first.parent == tmp_path and first.suffix == ".calib" and first.name.startswith("target-int8-")
    assert calibration_cache_path(engine, "a" * 64, crops.copy()) == first, (
        "same weights and crops: the cache is reused"
    )
    assert calibration_cache_path(engine, "b" * 64, crops) != first, "retrained weights: a new calibration"
    assert calibration_cache_path(engine, "a" * 64, crops[:3]) != first, "other crops: a new calibration"


def test_litert_says_it_has_no_delegates(artifacts):
    from okdhp_edge.runtime import BackendUnavailableError

    with pytest.raises(BackendUnavailableError, match="no GPU, NNAPI or DSP delegates"):
        Predictor(artifacts["tflite"], device="nnapi")


def _in_threads(work, count: int = 4) -> dict[int, object]:
    """work(t) in `count` threads started together; their answers, or the first thread's error."""
    answers: dict[int, object] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(count)

    def run(t: int) -> None:
        start.wait()
        try:
            answers[t] = work(t)
        except BaseException as err:  # noqa: BLE001  (reported below, with the thread's number)
            errors.append(err)

    threads = [threading.Thread(target=run, args=(t,)) for t in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, repr(errors[0])
    return answers


def test_one_detector_and_one_predictor_shared_by_four_threads_give_single_threaded_answers(media):
    """The default Detector (its MediaPipe half is one LiteRT model) and the shipped student on
    real frames: four threads at once get what one thread gets, and each reads its own last_times."""
    import cv2

    from okdhp_edge.runtime import BackendUnavailableError, Detector, FetchError

    try:
        detector = Detector(num_threads=1)
    except (FetchError, BackendUnavailableError) as err:
        pytest.skip(f"the default detector's MediaPipe model or LiteRT is not available here: {err}")
    predictor = Predictor("real-tiny", num_threads=1)
    capture = cv2.VideoCapture(str(media / "vtest.avi"))
    frames = [capture.read()[1] for _ in range(8)]
    capture.release()
    boxes = [detector.detect(f) for f in frames]
    poses = [predictor.predict(f, b[:, :4]).keypoints for f, b in zip(frames, boxes)]
    assert all(len(b) >= 3 for b in boxes), "vtest's first frames hold several walkers"
    everyone_done = threading.Barrier(4, timeout=60)

    def work(t: int) -> list:
        found, seen, times = [], [], []
        try:
            for i in range(8):
                j = (i + 2 * t) % 8  # threads work on different frames at the same moment
                found.append(detector.detect(frames[j]))
                seen.append(predictor.predict(frames[j], boxes[j][:, :4]).keypoints)
                times.append(predictor.last_times)
        except BaseException:
            everyone_done.abort()  # the others stop waiting for this thread
            raise
        everyone_done.wait()  # the others have all predicted since: last_times must still be this thread's
        return [found, seen, times[-1] is predictor.last_times]

    for t, (found, seen, own_times) in _in_threads(work).items():
        for i in range(8):
            j = (i + 2 * t) % 8
            np.testing.assert_array_equal(found[i], boxes[j], err_msg=f"detector: thread {t}, frame {j}")
            np.testing.assert_array_equal(seen[i], poses[j], err_msg=f"predictor: thread {t}, frame {j}")
        assert own_times, f"thread {t} reads another thread's last_times"
