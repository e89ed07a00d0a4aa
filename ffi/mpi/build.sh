#!/usr/bin/env bash
# Builds the MPI communicator (ffi/mpi/*.c) into one shared object over Open MPI.
# Usage: bash ffi/mpi/build.sh [--force] OUT
# Prints nothing and exits 0 where mpicc is absent (install openmpi-bin and libopenmpi-dev), so
# that machines without MPI build everything else. Does nothing when OUT is newer than every
# source (unless --force); otherwise builds OUT.tmp and renames it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
usage="usage: bash ffi/mpi/build.sh [--force] OUT"
force=""
[ "${1:-}" = --force ] && force=1 && shift
case ${1:-} in
-h | --help) echo "$usage" && exit 0 ;;
"" | -*) echo "build.sh: expected the library's path, got '${1:-}'; $usage" >&2 && exit 2 ;;
esac
out=$1
command -v "${MPICC:-mpicc}" >/dev/null 2>&1 || exit 0
if [ -z "$force" ] && [ -e "$out" ] &&
  [ -z "$(find "$here" "$here/../include/lmkit.h" -name '*.[ch]' -newer "$out" | head -1)" ]; then
  exit 0
fi
MPICC=${MPICC:-mpicc}
echo "build: $MPICC → $out"
mkdir -p "$(dirname "$out")"
# -z nodelete: Deno unloads libraries at exit while Open MPI's threads may still run in them
$MPICC -O2 -fPIC -shared -std=gnu11 -Wall -Wextra -Wno-unused-parameter -Wl,-z,nodelete \
  -o "$out.tmp" "$here"/*.c -ldl -lm -lpthread
mv "$out.tmp" "$out"
