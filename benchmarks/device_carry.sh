#!/usr/bin/env bash
# Prepare .devcarry/ ($CARRY) for benchmarks/accelerator.py on a machine without network or the
# packages jax's CUDA image lacks (soundfile, zarr, opensmile and their needs), under 64 MiB:
#   .devcarry/whl/       wheels for CPython $PYVER (3.12, the device's) / manylinux x86_64
#                        (versions of this venv)
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
PYVER=${PYVER:-3.12}     # another: benchmarks/device_rehearsal.sh, on the Python it has
CARRY=${CARRY:-.devcarry}
mkdir -p "$CARRY/whl" "$CARRY/audio"
grep -qx '/.devcarry/' .git/info/exclude 2>/dev/null || echo '/.devcarry/' >> .git/info/exclude
for name in soundfile cffi pycparser zarr numcodecs donfig google-crc32c opensmile audeer \
    audformat audinterface audiofile audmath audobject audresample oyaml iso3166 iso639-lang \
    asttokens; do
  version=$("$PY" -m pip show "$name" | awk '/^Version:/ {print $2}')
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version "$PYVER" \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform any -d "$CARRY/whl" "$name==$version"
done
cp "$SHARED"/data/PMEmo2019-mini/chorus/*.mp3 "$CARRY/audio/"
CARRY="$CARRY" "$PY" - <<'EOF'
import os
import numpy as np
from mer_jax.separation.spleeter_weights import load_weights
weights = load_weights("cache")
np.savez(os.path.join(os.environ["CARRY"], "spleeter-2stems-fp16.npz"),
         **{f"{stem}/{k}": v.astype(np.float16) for stem, arrays in weights.items()
            for k, v in arrays.items()})
EOF
# what the carried wheels need and do not carry: the device's image must have it (its package
# list: ../.library/device/KINDS.md); written to $CARRY/needs.txt
"$PY" - "$CARRY" <<'EOF'
import re, sys, zipfile
from pathlib import Path
name = lambda s: re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9_.-]+", s).group(0).lower())
carried, needed = set(), set()
for wheel in Path(sys.argv[1], "whl").glob("*.whl"):
    with zipfile.ZipFile(wheel) as z:
        meta = z.read(next(n for n in z.namelist() if n.endswith(".dist-info/METADATA")))
    lines = meta.decode().splitlines()
    carried.add(name(next(x[6:] for x in lines if x.startswith("Name: "))))
    needed |= {name(x[15:]) for x in lines if x.startswith("Requires-Dist: ")
               and "extra ==" not in x.partition(";")[2]}       # not an optional extra's
Path(sys.argv[1], "needs.txt").write_text("".join(f"{n}\n" for n in sorted(needed - carried)))
print("needed from the device's image:", " ".join(sorted(needed - carried)))
EOF
du -sh "$CARRY"
