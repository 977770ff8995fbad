#!/usr/bin/env bash
# CTest fixture: installs the pinned npm packages (package-lock.json) of the manifest
# validator into a folder of the build tree, so the source tree stays clean. Skips `npm ci`
# when the installed lock file is already the committed one.
#   setup_validator.sh SOURCE_DIR(tests/deploy/validator) DEST_DIR
set -euo pipefail
src=$1 dest=$2
mkdir -p "$dest"
cp "$src/validate.mjs" "$src/package.json" "$dest/"
if [[ -d "$dest/node_modules" ]] && cmp -s "$src/package-lock.json" "$dest/package-lock.json"; then
  echo "validator: node_modules up to date"
  exit 0
fi
cp "$src/package-lock.json" "$dest/"
cd "$dest"
# kubernetes-models 5 declares node >= 22 but runs on Debian's/NodeSource's node 20 (the
# schemas are plain ESM); the validator tests themselves prove it works.
npm ci --no-audit --no-fund --loglevel=error --engine-strict=false
