"""PoseTracker's parts, one job each, wired together by `runtime/tracker.py`.

- `schedule.py`: when the detector runs, and the frame's crops (tracked crops, detections merged in).
- `poses.py`: the poses found in the crops: lost ones dropped, duplicates merged, automatic thresholds.
- `matching.py`: which pose continues which track (IoU + OKS, then nearness, each gated by colour).
- `track.py`: one track's state (tentative, confirmed, coasting), motion, body box and report.
- `smoothing.py`: the frame clock and each track's One-Euro filter.

The colour signatures the matching gates on are `runtime/appearance.py`; the filter is `runtime/one_euro.py`.
"""
