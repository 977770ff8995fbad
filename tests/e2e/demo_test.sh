#!/usr/bin/env bash
# End to end: the README's main command, scripts/demo.sh, against this build tree (SKIP_BUILD=1:
# ctest never rebuilds), on free ports. It must leave a decodable MP4 with the model's frame
# count and one preview per stage (T/4, T/2, T frames for 3 stages). Uses the bundled model when
# models/shapes-tpdiff exists, else an untrained tiny package made here.
#   demo_test.sh REPO_ROOT BUILD_DIR MAKE_PACKAGE VIDEO_PROBE
set -euo pipefail
root=$1 build=$2 make_package=$3 probe=$4

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

source "$(dirname "$0")/model.sh"

# timeout signals demo.sh's whole process group: the server and, through it, its worker.
out=$tmp/out
if ! timeout 100 env BUILD_DIR="$build" OUT_DIR="$out" MODELS_DIR="$models_dir" MODEL="$model" \
  PORT=0 METRICS_PORT=0 SKIP_BUILD=1 "$root/scripts/demo.sh" >"$tmp/demo.log" 2>&1; then
  echo "demo.sh failed:" >&2
  cat "$tmp/demo.log" >&2
  tail -n 40 "$out/server.log" >&2 || true
  exit 1
fi
cat "$tmp/demo.log"

status=0
expect() { # FILE FRAMES
  local line
  if ! line=$("$probe" "$1"); then echo "$1 does not decode" >&2; status=1; return; fi
  echo "$line"
  read -r _ got _ <<<"$line"
  [[ $got == "$2" ]] || { echo "$1 has $got frames, expected $2" >&2; status=1; }
}
expect "$out/video.mp4" "$frames"
previews=("$out"/previews/*)
[[ ${#previews[@]} == "$stages" ]] || { echo "expected $stages previews, got: ${previews[*]}" >&2; status=1; }
for k in $(seq 1 "$stages"); do
  preview=$(ls "$out"/previews/stage$k.* 2>/dev/null | head -n 1)
  [[ -n $preview ]] || { echo "no preview of stage $k" >&2; status=1; continue; }
  expect "$preview" $((frames >> (stages - k)))
done
grep -q "video:    $out/video.mp4" "$tmp/demo.log" || { echo "demo.sh did not report the video" >&2; status=1; }
exit $status
