#!/usr/bin/env bash
# Prepare .devcarry/ for benchmarks/accelerator.py on a machine without network or the packages
# jax's CUDA image lacks (soundfile, zarr, opensmile and their needs), under a 64 MiB transfer:
#   .devcarry/whl/       wheels for CPython 3.12 / manylinux x86_64 (versions of this venv)
#   .devcarry/audio/     the 5 real PMEmo choruses of ../shared (45 s mp3)
#   .devcarry/spleeter-2stems-fp16.npz   the Spleeter weights as float16 (39 MB instead of 79)
# Then, on the device, from the repository root:
#   pip install --no-index --no-deps --target /tmp/site .devcarry/whl/*.whl
#   PYTHONPATH=/tmp/site:$PWD python3 benchmarks/accelerator.py --audio .devcarry/audio \
#       --weights-fp16 .devcarry/spleeter-2stems-fp16.npz --out "$OUT"
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
SHARED=${SHARED:-../shared}
mkdir -p .devcarry/whl .devcarry/audio
grep -qx '/.devcarry/' .git/info/exclude 2>/dev/null || echo '/.devcarry/' >> .git/info/exclude
for name in soundfile cffi pycparser zarr numcodecs donfig google-crc32c opensmile audeer \
    audformat audinterface audiofile audmath audobject audresample oyaml iso3166 iso639-lang \
    asttokens; do
  version=$("$PY" -m pip show "$name" | awk '/^Version:/ {print $2}')
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform any -d .devcarry/whl "$name==$version"
done
cp "$SHARED"/data/PMEmo2019-mini/chorus/*.mp3 .devcarry/audio/
"$PY" - <<'EOF'
import numpy as np
from mer_jax.separation.spleeter_weights import load_weights
weights = load_weights("cache")
np.savez(".devcarry/spleeter-2stems-fp16.npz",
         **{f"{stem}/{k}": v.astype(np.float16) for stem, arrays in weights.items()
            for k, v in arrays.items()})
EOF
du -sh .devcarry
