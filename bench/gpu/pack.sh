#!/usr/bin/env bash
# Prepares .gpu/ for bench/gpu/check.sh on a GPU machine without network or Deno: the Deno binary
# (../shared/tools/gpu-pack.sh) and .gpu/node_modules, a copy of only the npm packages that the
# check and its tests import (node_modules itself is over what may travel). check.sh puts that
# copy in place and sets nodeModulesDir to "manual" in the device's copy of deno.json, so that Deno
# installs nothing there.
# Usage, from the repository root: bash bench/gpu/pack.sh; then carry [".gpu"].
set -euo pipefail
cd "$(dirname "$0")/../.."
case "${1:-}" in
"") ;;
-h | --help) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//' && exit 0 ;;
*) echo "pack.sh: unexpected argument '$1'; it takes none (it packs for bench/gpu/check.sh)" >&2 && exit 2 ;;
esac
bash ../shared/tools/gpu-pack.sh
deno install >/dev/null # node_modules complete here, to copy from
rm -rf .gpu/node_modules && mkdir -p .gpu/node_modules/.deno
cp -a node_modules/.deno/.setup-cache.bin .gpu/node_modules/.deno/
pkgs=$(for f in bench/gpu/gpu_check.ts bench/model_bench.ts tests/{kernels,ffi,sparse,model}/*.ts; do deno info "$f"; done |
  grep -o 'npm:/[^ ]*' | sort -u | sed 's|npm:/||; s|^@\([^/]*\)/|@\1+|')
for p in $pkgs; do cp -a "node_modules/.deno/$p" .gpu/node_modules/.deno/; done
for l in node_modules/* node_modules/@*/*; do # the top-level names whose package was copied
  if [ -L "$l" ] && [ -e "$(readlink -m ".gpu/$(dirname "$l")/$(readlink "$l")")" ]; then
    mkdir -p ".gpu/$(dirname "$l")" && cp -a "$l" ".gpu/$l"
  fi
done
echo "packed $(echo "$pkgs" | wc -w) npm packages into .gpu/node_modules ($(du -sm .gpu/node_modules | cut -f1) MiB)"
