"""The project's own person detector (torch side): network, training data, training and export.

The runtime runs its ONNX file through `okdhp_edge.runtime.Detector` as a YOLOv8-layout export.
"""
