#!/bin/sh
# help_output_test.sh SOURCE_DIR BINARY...: each binary's --help lists the project's flags
# (their files named relative to the source tree), never the source folder's absolute path,
# and never "No flags matched".
source_dir=$1
shift
[ $# -gt 0 ] || { echo "no binaries given"; exit 1; }
status=0
for binary in "$@"; do
  out=$("$binary" --help 2>&1)
  name=$(basename "$binary")
  case "$out" in
    *"No flags matched"*) echo "$name --help: says \"No flags matched\""; status=1 ;;
  esac
  case "$out" in
    *"$source_dir"*) echo "$name --help: shows the source folder $source_dir"; status=1 ;;
  esac
  if ! printf '%s\n' "$out" | grep -Eq '^  Flags from [a-z]+/[a-z_/]*\.cc:'; then
    echo "$name --help: no \"Flags from <component>/....cc\" section"; status=1
  fi
  if ! printf '%s\n' "$out" | grep -Eq '^    --[a-z_]+ \('; then
    echo "$name --help: lists no flag"; status=1
  fi
  if [ $status -ne 0 ]; then printf '%s\n' "$out" | tail -n 20; fi
done
exit $status
