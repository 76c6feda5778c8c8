"""Drop the converters' own chatter that says nothing to someone exporting a student.

Each filter names the library's logger (or warning) and the start of the message it drops, so
anything else those libraries say (a conversion problem, a version they were not tested with)
still reaches the user. Installed once when `okdhp_edge.export` is imported.
"""

from __future__ import annotations

import logging
import os
import warnings

__all__ = ["LOG_MESSAGES", "install"]

# logger name -> message beginnings dropped from that logger only
LOG_MESSAGES: dict[str, tuple[str, ...]] = {
    # the ONNX exporter's registry lists torchvision's detection ops, which a pose student never uses
    "torch.onnx._internal.exporter._registration": ("torchvision is not installed",),
    # torchao (pulled in by the TFLite path) registers an enum the way torch now deprecates
    "torch.utils._pytree": ("%s is an Enum subclass and is now natively supported",),
    # torchao's optional CUDA/Hopper kernels, absent from CPU wheels
    "torchao": ("Failed to load ",),
    # coremltools' prediction bindings, which exist only on macOS (the export says so in its notes)
    "coremltools": ("Failed to load _ML",),
    # opset 17 is reached through ONNX's own converter; export_onnx checks the opset it wrote
    "onnxscript.version_converter": (
        "The model version conversion is not supported by the onnxscript version converter and fallback is enabled",
    ),
}


class _DropMessages(logging.Filter):
    def __init__(self, prefixes: tuple[str, ...]) -> None:
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        return not (str(record.msg).startswith(self.prefixes) or record.getMessage().startswith(self.prefixes))


def install() -> None:
    """Attach the filters (idempotent) and hide TensorFlow's C++ INFO lines (TF_CPP_MIN_LOG_LEVEL,
    unless the user set it) that LiteRT's converter prints on every TFLite export."""
    for name, prefixes in LOG_MESSAGES.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropMessages) for f in logger.filters):
            logger.addFilter(_DropMessages(prefixes))
    # torch's pytree deprecation, raised inside torch.export while tracing our student
    warnings.filterwarnings(
        "ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated", category=FutureWarning
    )
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
