#!/usr/bin/env bash
# Packs the Python packages the GPU machines lack (PyAV, diffusers, scikit-video: their image has
# torch but none of these, and no network) into one xz archive for the device tool's `carry`:
# ~23 MB instead of the wheels' 44 MB. A device call carries 64 MiB with the tracked tree (~39 MB
# since the model is 35 MB), so the archive leaves out what ivvae never loads there: diffusers'
# pipelines, PyAV's type stubs and Cython headers, and PyAV's extension modules lose their symbol
# tables (`strip`: 31 -> 5 MB; its bundled FFmpeg in av.libs is left as built). The wheels stay in
# WHEEL_DIR (git-ignored; downloaded once, skipped when there). On the GPU machine:
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
# trimmed: ivvae imports none of this (checked in session 17: the io and data tests and a training stage ran on the packed site)
rm -rf "$site"/diffusers/pipelines "$site"/diffusers/modular_pipelines "$site"/diffusers/models/controlnets
find "$site"/av \( -name '*.pyi' -o -name '*.pxd' -o -name '*.c' -o -name '*.h' \) -delete
find "$site"/av -name '*.so' -exec strip --strip-unneeded {} +
mkdir -p "$out"
tar -cf - -C "$site" . | xz -9e -T0 > "$out/site.tar.xz.tmp"
mv "$out/site.tar.xz.tmp" "$out/site.tar.xz"
ls -l "$out/site.tar.xz"
