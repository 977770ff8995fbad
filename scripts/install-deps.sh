#!/usr/bin/env bash
# Installs every Debian package the project needs to build, test and run.
# Idempotent: safe to run again; used by .ci/run, the README and the Dockerfiles.
#   scripts/install-deps.sh             build + test dependencies
#   scripts/install-deps.sh --build     only what building the binaries needs (no tests,
#                                       deployment checks, fuzzing or Python kit): the images'
#                                       build stages, also on Ubuntu 24.04 (docker/Dockerfile.cuda)
#   scripts/install-deps.sh --runtime   only what the binaries need at run time
set -euo pipefail

runtime_packages=(
  libopenblas0-pthread   # LibTorch links libblas.so.3; OpenBLAS makes it 2-2.6x faster than reference BLAS
  ca-certificates
)
# Shared libraries of tpdiff-server / tpdiff-worker / tpdiff, for --runtime only (the runtime
# images in docker/). A build gets them as dependencies of the -dev packages, which keeps the
# build list usable on Ubuntu 24.04 (docker/Dockerfile.cuda), where these names differ.
runtime_libs=(
  libtorch1.13 libgrpc++1.51 libgrpc29 libprotobuf32 libabsl20220623
  libprometheus-cpp-core1.0 libprometheus-cpp-pull1.0 libcivetweb1
  libavcodec59 libavformat59 libavutil57 libswscale6 libpng16-16
  libsentencepiece0 libhiredis0.14
)

# What the binaries (front, worker, client, training, benchmarks) need to build.
binary_build_packages=(
  build-essential cmake ninja-build pkg-config git
  libtorch-dev
  libgrpc++-dev libgrpc-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev
  prometheus-cpp-dev libcivetweb-dev
  libavcodec-dev libavformat-dev libavutil-dev libswscale-dev
  zlib1g-dev   # media/ computes ZIP CRC-32s with zlib (runtime zlib1g is essential in Debian)
  nlohmann-json3-dev
  libpng-dev
  libssl-dev   # server/ hashes API keys with OpenSSL's SHA-256 (libcrypto)
  # Latent model packages: the SentencePiece tokenizer library for spec/; shared front state
  # (--state=redis://...): the hiredis client.
  libsentencepiece-dev libhiredis-dev
)
build_packages=(
  "${binary_build_packages[@]}"
  libgtest-dev libgmock-dev
  # Deployment tests (tests/deploy): promtool + a real Prometheus server, curl for the live test.
  prometheus curl
  # Tests make TLS certificates with the openssl command line at test time.
  openssl
  # Fuzzing (scripts/fuzz.sh): clang with libFuzzer and the sanitizer runtimes. The version-less
  # names exist on Debian 12 and Ubuntu 24.04; gcc's own ASan/UBSan/TSan runtimes
  # (scripts/sanitize.sh) come with build-essential.
  clang libclang-rt-dev
  # Latent model packages: the spm_* tools that train the miniature model's vocabulary, and
  # the Python kit (python/): the same LibTorch 1.13 and SentencePiece 0.1.97 as the C++ side,
  # so exported modules and token ids agree.
  sentencepiece python3-torch python3-sentencepiece
  # Shared front state: a real redis-server that the tests start on a free port.
  redis-server
)
# kubectl (for `kubectl kustomize`) and node/npm (manifest schema validation) may already come
# from other packages (a cloud SDK's kubectl, NodeSource's nodejs) whose files the Debian
# packages would collide with: install Debian's only where the command is missing. deploy/k8s
# needs kustomize v5 (kubectl >= 1.27); Debian 12's kubernetes-client is kubectl 1.20.2, with
# which the manifest tests stop and say so (tests/deploy/check_manifests.sh).
command -v kubectl >/dev/null || build_packages+=(kubernetes-client)
command -v node >/dev/null || build_packages+=(nodejs)
command -v npm >/dev/null || build_packages+=(npm)

# docker/Dockerfile.cuda and scripts/gpu-check.sh bring a CUDA LibTorch themselves
# (TPDIFF_SKIP_TORCH=1).
if [[ -n "${TPDIFF_SKIP_TORCH:-}" ]]; then
  runtime_libs=("${runtime_libs[@]/libtorch1.13}")
  build_packages=("${build_packages[@]/libtorch-dev}")
  binary_build_packages=("${binary_build_packages[@]/libtorch-dev}")
fi

packages=("${runtime_packages[@]}")
case "${1:-}" in
  --runtime) packages+=("${runtime_libs[@]}") ;;
  --build) packages+=("${binary_build_packages[@]}") ;;
  *) packages+=("${build_packages[@]}") ;;
esac

missing=()
for p in "${packages[@]}"; do
  [[ -n "$p" ]] || continue
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
