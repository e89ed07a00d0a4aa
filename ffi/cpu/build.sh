#!/usr/bin/env bash
# Builds the C library (ffi/cpu/*.c) into one shared object for this machine's CPU.
# Usage: bash ffi/cpu/build.sh [--force] OUT [CFLAGS...]   (CFLAGS come after -march=native, so
# that e.g. -mno-avx512f builds the 256-bit paths; ffi/cpu/avx2_check.sh does that)
# Does nothing when OUT is newer than every source (unless --force); otherwise builds OUT.tmp and
# renames it, so that an interrupted build leaves no half library.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
usage="usage: bash ffi/cpu/build.sh [--force] OUT [CFLAGS...]"
force=""
[ "${1:-}" = --force ] && force=1 && shift
case ${1:-} in
-h | --help) echo "$usage" && exit 0 ;;
"" | -*) echo "build.sh: expected the library's path, got '${1:-}'; $usage" >&2 && exit 2 ;;
esac
out=$1
shift
if [ -z "$force" ] && [ -e "$out" ] &&
  [ -z "$(find "$here" "$here/../include" -newer "$out" | head -1)" ]; then
  exit 0
fi
CC=${CC:-cc}
echo "build: $CC${*:+ $*} → $out"
mkdir -p "$(dirname "$out")"
$CC -O3 -march=native "$@" -ffp-contract=fast -fopenmp -fPIC -shared -std=gnu11 -Wall -Wextra \
  -Wno-unused-parameter -Wl,-z,nodelete -o "$out.tmp" "$here"/*.c -ldl -lm -lpthread
mv "$out.tmp" "$out"
