#!/usr/bin/env bash
# Copies the Debian 12 build dependencies that a CUDA machine with PyTorch lacks into .gpu/usr
# (run on a Debian 12 machine after scripts/install-deps.sh, then copy .gpu/ to the CUDA
# machine's checkout):
#   scripts/gpu-deps.sh          Abseil, nlohmann-json, GoogleTest, libpng + zlib headers:
#                                core/, train/ and bench/ (scripts/gpu-train.sh, about 30 MB)
#   scripts/gpu-deps.sh --full   also gRPC, protobuf (with protoc and the gRPC plugin),
#                                prometheus-cpp, civetweb, FFmpeg, OpenSSL and pkgconf, with the
#                                shared libraries they load: the full service, front and worker
#                                (scripts/gpu-check.sh, about 200 MB)
set -euo pipefail
cd "$(dirname "$0")/.."
d=.gpu/usr
lib=/usr/lib/x86_64-linux-gnu
arch_include=/usr/include/x86_64-linux-gnu
mkdir -p $d/include $d/lib/x86_64-linux-gnu/cmake $d/share/cmake
cp -r /usr/include/absl /usr/include/nlohmann /usr/include/gtest /usr/include/gmock /usr/include/libpng16 $d/include/
cp /usr/include/png.h /usr/include/pngconf.h /usr/include/pnglibconf.h /usr/include/zlib.h /usr/include/zconf.h $d/include/
cp -a $lib/libabsl_*.so* $lib/libgtest* $lib/libgmock* $lib/libpng16.so* $lib/libpng.so $d/lib/x86_64-linux-gnu/
cp -r $lib/cmake/absl $lib/cmake/GTest $d/lib/x86_64-linux-gnu/cmake/
cp -r /usr/share/cmake/nlohmann_json $d/share/cmake/

if [[ "${1:-}" == "--full" ]]; then
  # Headers. FFmpeg, OpenSSL's configuration and curl keep theirs in the multiarch folder,
  # where their .pc files and CMake modules look.
  cp -r /usr/include/grpc /usr/include/grpc++ /usr/include/grpcpp /usr/include/google \
    /usr/include/prometheus /usr/include/openssl /usr/include/re2 /usr/include/ares*.h \
    /usr/include/CivetServer.h /usr/include/civetweb.h $d/include/
  mkdir -p $d/include/x86_64-linux-gnu
  cp -r $arch_include/libavcodec $arch_include/libavformat $arch_include/libavutil \
    $arch_include/libswscale $arch_include/libswresample $arch_include/openssl \
    $arch_include/curl $d/include/x86_64-linux-gnu/
  # Link-time libraries, their CMake packages and pkg-config files (made relocatable: the
  # prefix line is set where the folder lands, by scripts/gpu-check.sh).
  dev_libs=(libgrpc++ libgrpc++_reflection libgrpc libgpr libaddress_sorting libupb libprotobuf
            libprotoc libprometheus-cpp-core libprometheus-cpp-pull libprometheus-cpp-push
            libcivetweb libcivetweb-cpp libavcodec libavformat libavutil libswscale libswresample
            libssl libcrypto libz libcares libre2 libcurl libgrpc_plugin_support)
  for l in "${dev_libs[@]}"; do cp -a $lib/$l.so* $d/lib/x86_64-linux-gnu/ 2>/dev/null || true; done
  cp -r $lib/cmake/grpc $lib/cmake/prometheus-cpp $lib/cmake/civetweb $d/lib/x86_64-linux-gnu/cmake/
  mkdir -p $d/lib/x86_64-linux-gnu/pkgconfig
  for pc in libavcodec libavformat libavutil libswscale libswresample libcares re2 libcurl \
            openssl libssl libcrypto zlib protobuf grpc grpc++ libpng libpng16; do
    [[ -f $lib/pkgconfig/$pc.pc ]] || continue
    # Some (re2's) have no prefix line to rewrite: they get one.
    { grep -q '^prefix=' "$lib/pkgconfig/$pc.pc" || echo 'prefix=/usr'
      sed -e 's|^libdir=/usr|libdir=${prefix}|' -e 's|^includedir=/usr|includedir=${prefix}|' \
        "$lib/pkgconfig/$pc.pc"; } >$d/lib/x86_64-linux-gnu/pkgconfig/$pc.pc
  done
  # Every file the CMake packages import (CMake checks that each exists, the other gRPC
  # language plugins included), then the tools the build runs.
  mkdir -p $d/bin
  grep -ho '${_IMPORT_PREFIX}/[^" ;]*' $d/lib/x86_64-linux-gnu/cmake/*/*.cmake | sort -u |
    sed 's|^${_IMPORT_PREFIX}/||' | grep -v '^include' | while read -r f; do
      [[ -e /usr/$f ]] && { mkdir -p "$d/$(dirname "$f")"; cp -a "/usr/$f" "$d/$f"; }
    done
  cp /usr/bin/protoc /usr/bin/pkgconf $d/bin/
  ln -sf pkgconf $d/bin/pkg-config
  # Everything those libraries and tools load at run time, except the C and C++ runtimes,
  # which every machine has.
  { ls $d/lib/x86_64-linux-gnu/*.so* $d/bin/*; } |
    xargs -r -n1 ldd 2>/dev/null | awk '/=> \//{print $3}' | sort -u |
    grep -Ev '/(libc|libm|libdl|libpthread|librt|libstdc\+\+|libgcc_s|ld-linux[^/]*)\.so' |
    while read -r so; do
      [[ -e $d/lib/x86_64-linux-gnu/$(basename "$so") ]] || cp -L "$so" $d/lib/x86_64-linux-gnu/
    done
fi
du -sh .gpu
