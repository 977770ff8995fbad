# Sourced by the end-to-end tests: sets models_dir, model, frames and stages to the bundled
# model when models/shapes-tpdiff exists, else to an untrained tiny package made in $tmp.
# Needs: root (the repository), tmp (a scratch folder), make_package (tpdiff-make-package).
if [[ -f $root/models/shapes-tpdiff/model.json ]]; then
  models_dir=$root/models model=shapes-tpdiff
else
  models_dir=$tmp/models model=e2e-tiny
  "$make_package" --out="$models_dir/$model" --network=tiny --stage_steps=2,2,2
fi
frames=$(sed -n 's/^ *"frames": *\([0-9]*\).*/\1/p' "$models_dir/$model/model.json")
stages=$(sed -n 's/^ *"stages": *\([0-9]*\).*/\1/p' "$models_dir/$model/model.json")
[[ -n $frames && -n $stages ]] || { echo "no frames/stages in $models_dir/$model/model.json" >&2; exit 1; }
