"""Torch-free inference for exported okdhp-edge students.

    from okdhp_edge.runtime import PoseTracker, Predictor
    tracker = PoseTracker()                       # the bundled student + the default person detector
    people = tracker(frame_bgr)                   # list[TrackedPose]: IDs, keypoints, scores; .to_dict()
    predictor = Predictor("edge-b2-1x64-int8.onnx")   # a file, or a bundled name: bundled_models()
    result = predictor.predict(frame_bgr, boxes)  # keypoints (N, K, 2) in image pixels

The backend is chosen from the file suffix; everything else (input size, normalisation,
skeleton, layouts) is read from the metadata that travels with the artifact. Only the
torch-free core of okdhp_edge is imported here; torch loads only for `.safetensors` students.
"""

from .bundled import bundled_models
from .detector import Detector, DetectorConfig
from .draw import draw_fps, draw_pose, draw_tracks, tracks_result
from .errors import BackendUnavailableError, FetchError, InputError, ModelFileError
from .landmarker import BlazePoseLandmarker, LandmarkerConfig
from .one_euro import OneEuroConfig, OneEuroFilter
from .predictor import Predictor, PreparedBatch
from .result import PoseResult, StageTimes
from .tracker import PoseTracker, TrackedPose, TrackerConfig

__all__ = [
    "BackendUnavailableError",
    "BlazePoseLandmarker",
    "Detector",
    "DetectorConfig",
    "FetchError",
    "InputError",
    "LandmarkerConfig",
    "ModelFileError",
    "OneEuroConfig",
    "OneEuroFilter",
    "PoseResult",
    "PoseTracker",
    "Predictor",
    "PreparedBatch",
    "StageTimes",
    "TrackedPose",
    "TrackerConfig",
    "bundled_models",
    "draw_fps",
    "draw_pose",
    "draw_tracks",
    "tracks_result",
]
