#!/usr/bin/env bash
# The prepared GPU check: on one CUDA GPU, in under 8 minutes, everything this project cannot run on a CPU.
#
#   bash benchmarks/gpu_check.sh [RESULTS_DIR]        # default RESULTS_DIR: benchmarks/results
#
# 1. the CUDA tests (`pytest -m cuda`: the CUDA-graph step against the eager one, graphs measured by
#    `auto` and kept on resume, AMP bf16 and fp16 steps, auto precision, single-process NCCL DDP through
#    torchrun, resume on CUDA after a kill with another AMP setting, torch.compile last), plus the
#    TensorRT engine export + Predictor test where `tensorrt` imports; cut after 290 s by SIGTERM, which
#    tests/test_cuda.py turns into a Ctrl-C so pytest still reports what ran (gpu_tests.json lists
#    what the limit cut as "not finished");
# 2. benchmarks/train_throughput.py's GPU rows at batch 16 beside the official OKDHP step on the same
#    GPU, when its scratch copy is present: official fp32 first, then ours with a CUDA graph and eager
#    (bf16/fp16 channels_last, fp32 NCHW, then the other layouts), official fp16 and the trainer's own
#    pick, within 170 s. No torch.compile row: compiling the paper-mpii network outlasted every time
#    limit this check can spare (72 s on an H100); its correctness test is in part 1, and
#    `train_throughput.py --time-budget 900` times it when there is time
#    (OFFICIAL_DIR, default /tmp/okdhp-official, from ../shared/anchors/official_setup.sh; OFFICIAL_STEP,
#    default ../shared/anchors/official_step.py).
# Writes RESULTS_DIR/gpu_tests.json, gpu_train_throughput.json and gpu_check.log. Each part runs under its
# own time limit and the script goes on after a failure, so one bad part does not cost the others; the
# throughput JSON is rewritten after every row.
# Python: $PYTHON (default python3) with torch (CUDA build), numpy, opencv, pyyaml, safetensors, tqdm,
# matplotlib, pycocotools and pytest; wheels in $WHEELS (a folder) are installed into a scratch target first.
set -uo pipefail
cd "$(dirname "$0")/.."
RESULTS=${1:-benchmarks/results}
PYTHON=${PYTHON:-python3}
OFFICIAL_DIR=${OFFICIAL_DIR:-/tmp/okdhp-official}
OFFICIAL_STEP=${OFFICIAL_STEP:-../shared/anchors/official_step.py}
mkdir -p "$RESULTS"
LOG="$RESULTS/gpu_check.log"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
if [ -n "${WHEELS:-}" ] && ls "$WHEELS"/*.whl >/dev/null 2>&1; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --target /tmp/gpu_check_site "$WHEELS"/*.whl \
    && export PYTHONPATH="$PYTHONPATH:/tmp/gpu_check_site"
fi

{
  echo "== gpu_check $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1
  "$PYTHON" -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda, \
'gpu', torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)"
} 2>&1 | tee "$LOG"

status=0
echo "== 1/2 CUDA tests" | tee -a "$LOG"
tests=(tests/test_cuda.py)
if "$PYTHON" -c "import tensorrt" 2>/dev/null; then
  tests+=(tests/test_export.py::test_tensorrt_engine_builds_and_verifies)
else
  echo "tensorrt does not import here: the TensorRT engine test is not run" | tee -a "$LOG"
fi
collected=$("$PYTHON" -m pytest -m cuda --collect-only -q -p no:cacheprovider "${tests[@]}" 2>/dev/null | grep "::")
timeout -k 20 290 "$PYTHON" -m pytest -m cuda -v -rs -p no:cacheprovider --junitxml "$RESULTS/gpu_tests.xml" "${tests[@]}" 2>&1 | tee -a "$LOG"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
printf "%s\n" "$collected" | "$PYTHON" - "$RESULTS" 3<&0 <<'EOF' 2>&1 | tee -a "$LOG"
import json, sys, xml.etree.ElementTree as ET
from pathlib import Path
results = Path(sys.argv[1])
cases = []
if not (results / "gpu_tests.xml").is_file():
    sys.exit("gpu_tests.xml missing: pytest was killed before it could report (the -v lines above show what ran)")
for case in ET.parse(results / "gpu_tests.xml").getroot().iter("testcase"):
    if case.get("name") is None:  # pytest's record of the interruption, not a test
        continue
    outcome = "passed"
    for tag in ("failure", "error", "skipped"):
        node = case.find(tag)
        if node is not None:
            outcome = {"failure": "failed", "error": "error", "skipped": "skipped"}[tag]
            detail = (node.get("message") or "")[:500]
            break
    else:
        detail = ""
    cases.append({"test": f"{case.get('classname')}::{case.get('name')}", "outcome": outcome,
                  "seconds": float(case.get("time", 0)), "detail": detail})
reported = {c["test"].split("::")[-1] for c in cases}
with open(3) as collected:  # the node ids pytest collected: the ones the time limit never reached are listed as such
    for node in filter(None, (line.strip() for line in collected)):
        if node.split("::")[-1] not in reported:
            cases.append({"test": node, "outcome": "not finished", "seconds": None, "detail": "the time limit ended the tests before this one finished"})
import torch
summary = {"gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None, "torch": torch.__version__,
           "passed": sum(c["outcome"] == "passed" for c in cases), "failed": sum(c["outcome"] in ("failed", "error") for c in cases),
           "skipped": sum(c["outcome"] == "skipped" for c in cases), "not_finished": sum(c["outcome"] == "not finished" for c in cases), "tests": cases}
(results / "gpu_tests.json").write_text(json.dumps(summary, indent=2) + "\n")
(results / "gpu_tests.xml").unlink()
print(f"gpu_tests.json: {summary['passed']} passed, {summary['failed']} failed, {summary['skipped']} skipped, {summary['not_finished']} not finished")
EOF

echo "== 2/2 training throughput, ours beside the official step, batch 16" | tee -a "$LOG"
timeout 170 "$PYTHON" benchmarks/train_throughput.py --no-cpu --no-compile --gpu-batch 16 --modes okdhp --steps 10 --official-amp \
  --official-dir "$OFFICIAL_DIR" --official-step "$OFFICIAL_STEP" --out "$RESULTS/gpu_train_throughput.json" 2>&1 | tee -a "$LOG"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
echo "== gpu_check done (status $status) $(date -u +%FT%TZ)" | tee -a "$LOG"
exit $status
