#!/usr/bin/env bash
# Installs every Debian package the project needs to build, test and run.
# Idempotent: safe to run again; used by .ci/run, the README and the Dockerfiles.
#   scripts/install-deps.sh            build + test dependencies
#   scripts/install-deps.sh --runtime  only what the binaries need at run time
set -euo pipefail

runtime_packages=(
  libopenblas0-pthread   # LibTorch links libblas.so.3; OpenBLAS makes it 2-2.6x faster than reference BLAS
  ca-certificates
)

build_packages=(
  build-essential cmake ninja-build pkg-config git
  libtorch-dev
  libgrpc++-dev libgrpc-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev
  prometheus-cpp-dev libcivetweb-dev
  libavcodec-dev libavformat-dev libavutil-dev libswscale-dev
  libgtest-dev libgmock-dev
  nlohmann-json3-dev
  libpng-dev
)

packages=("${runtime_packages[@]}")
if [[ "${1:-}" != "--runtime" ]]; then
  packages+=("${build_packages[@]}")
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
