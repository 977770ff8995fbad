#!/usr/bin/env bash
# ctest fixture latent.reference: runs the Python reference sampler on each miniature latent
# package (built by the fixture python.build_packages) for the parity and serving tests.
#   latent_fixture.sh PYTHON KIT_DIR PACKAGES_DIR OUT_DIR PROMPT SEED GUIDANCE STEPS
# Leaves OUT_DIR/<name>.safetensors per package and OUT_DIR/request (the request, one
# "key=value" a line, packages= the packages folder, for the serving test).
set -euo pipefail
python=$1 kit=$2 packages=$3 out=$4 prompt=$5 seed=$6 guidance=$7 steps=$8

rm -rf "$out"
mkdir -p "$out"
printf 'packages=%s\nprompt=%s\nseed=%s\nguidance=%s\nsteps=%s\n' \
  "$packages" "$prompt" "$seed" "$guidance" "$steps" >"$out/request"
for package in "$packages"/*/; do
  name=$(basename "$package")
  OMP_NUM_THREADS=1 PYTHONPATH="$kit" "$python" -m tpdiff_kit.reference --package "$package" \
    --prompt "$prompt" --seed "$seed" --guidance "$guidance" --steps "$steps" \
    --out "$out/$name.safetensors"
done
