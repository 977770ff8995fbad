#!/usr/bin/env bash
# Copies the Debian 12 build dependencies that a CUDA machine with PyTorch lacks (Abseil,
# nlohmann-json, GoogleTest, libpng + zlib headers) into .gpu/usr, for scripts/gpu-train.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
d=.gpu/usr
lib=/usr/lib/x86_64-linux-gnu
mkdir -p $d/include $d/lib/x86_64-linux-gnu/cmake $d/share/cmake
cp -r /usr/include/absl /usr/include/nlohmann /usr/include/gtest /usr/include/gmock /usr/include/libpng16 $d/include/
cp /usr/include/png.h /usr/include/pngconf.h /usr/include/pnglibconf.h /usr/include/zlib.h /usr/include/zconf.h $d/include/
cp -a $lib/libabsl_*.so* $lib/libgtest* $lib/libgmock* $lib/libpng16.so* $lib/libpng.so $d/lib/x86_64-linux-gnu/
cp -r $lib/cmake/absl $lib/cmake/GTest $d/lib/x86_64-linux-gnu/cmake/
cp -r /usr/share/cmake/nlohmann_json $d/share/cmake/
du -sh .gpu
