#!/usr/bin/env bash
# The C++ sampler (tpdiff-sample) against the Python reference on one miniature package: the
# request of the latent.reference fixture must give the same final and per-stage latents to
# 1e-4 (max abs).
#   latent_parity.sh PYTHON KIT_DIR REFERENCE_DIR NAME TPDIFF_SAMPLE
set -euo pipefail
python=$1 kit=$2 reference=$3 name=$4 sample=$5

field() { sed -n "s/^$1=//p" "$reference/request"; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$sample" --package="$(field packages)/$name" --prompt="$(field prompt)" --seed="$(field seed)" \
  --guidance="$(field guidance)" --steps="$(field steps)" --threads=1 \
  --out-latents="$out/cpp.safetensors"
PYTHONPATH="$kit" "$python" - "$out/cpp.safetensors" "$reference/$name.safetensors" <<'PY'
import sys
from tpdiff_kit import safetensors

cpp, _ = safetensors.load(sys.argv[1])
ref, _ = safetensors.load(sys.argv[2])
names = ["latents"] + sorted(n for n in cpp if n.endswith(".latents"))
worst = 0.0
for n in names:
    if n not in ref:
        sys.exit(f"{n}: not in the reference")
    if tuple(cpp[n].shape) != tuple(ref[n].shape):
        sys.exit(f"{n}: shape {tuple(cpp[n].shape)} != reference {tuple(ref[n].shape)}")
    diff = (cpp[n].float() - ref[n].float()).abs().max().item()
    print(f"{n}: max abs difference {diff:.3g}")
    worst = max(worst, diff)
if worst > 1e-4:
    sys.exit(f"max abs difference {worst:.3g} exceeds 1e-4")
PY
