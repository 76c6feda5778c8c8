#!/bin/bash
# OKDHP against each student alone on real data (#23): one training run of the comparison in
# docs/training.md ("OKDHP or alone, on the broad data", "The smaller sibling"), scored afterwards with
# `python benchmarks/real_scenes.py score --model NAME=RUN/students/STUDENT.safetensors ...`.
#
#   bash benchmarks/okdhp_real.sh DATA NAME MODE SEED [--set key=value ...]
#     DATA  v3: real-tiny v3's data (rendered, pasted, webcam, near, vtest; sampled 1:1:0.5:0.25:2)
#           v6: real-tiny v6's data (the shipped students' data: v3's plus near2 and stills2, the four
#               near-camera sets with okdhp-any's boxes; sampled 1:1:0.5:0.25:0.25:0.05:2)
#     MODE  okdhp (the three branches, FAU, KL) or single (one student alone: add --set model.target=N)
#   e.g. bash benchmarks/okdhp_real.sh v3 okdhp-fau-s1 okdhp 1 --set model.trunk_grad=target \
#          --set 'loss.kl_weights=[0,1,1]' --set model.ensemble_grad=fau
#        bash benchmarks/okdhp_real.sh v6 alone-1x32-s0 single 0 --set model.target=2
#
# The data comes from weights/real-tiny/data.sh (into ~/.cache/okdhp_edge). Writes RUN = runs/okdhp-real/NAME
# (v3) or runs/okdhp-v6/NAME (checkpoints; rerun the same command with --resume auto after an interruption) and its log beside it.
# One core per run (the recipe's threads: 1), so two runs share a 2-core machine; 34-55 min each here.
set -euo pipefail
[ $# -ge 4 ] || { sed -n '5,13p' "$0"; exit 2; }
DATA=$1 NAME=$2 MODE=$3 SEED=$4
shift 4
C=~/.cache/okdhp_edge/real
case $DATA in
  v3) SETS="rendered+pasted+coco:$C/webcam-blazepose-full+coco:$C/near-blazepose-full+coco:$C/vtest-blazepose-full"
      WEIGHTS=1,1,0.5,0.25,2 OUT=runs/okdhp-real/$NAME ;;
  v6) SETS="rendered+pasted+coco:$C/webcam-blazepose-full-anybox+coco:$C/near-blazepose-full-anybox"
      SETS="$SETS+coco:$C/near2-blazepose-full-anybox+coco:$C/stills2-blazepose-full-anybox+coco:$C/vtest-blazepose-full"
      WEIGHTS=1,1,0.5,0.25,0.25,0.05,2 OUT=runs/okdhp-v6/$NAME ;;
  *) echo "DATA must be v3 or v6, got '$DATA'" >&2; exit 2 ;;
esac
mkdir -p "$OUT"
python -m okdhp_edge.train --config weights/real-tiny/recipe.yaml --data "$SETS" --data-weights $WEIGHTS \
  --mode "$MODE" --seed "$SEED" --threads 1 --set data.backgrounds=$HOME/.cache/okdhp_edge/backgrounds \
  --out "$OUT" "$@" 2>&1 | tee -a "$OUT.log"
