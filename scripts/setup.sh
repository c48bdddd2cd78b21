#!/usr/bin/env bash
# setup.sh: from a fresh Debian 12 machine to real hits, in one command.
#   1. installs the Debian packages pdr needs (when run as root; otherwise prints the command),
#   2. fetches Debian's faiss source package for its C API (scripts/fetch_faiss.sh),
#   3. configures and builds pdr with CMake into build/,
#   4. runs the built-in demo: the demo queries against the demo database (data/demo/).
# Usage: scripts/setup.sh [--no-demo]     Environment: BUILD_DIR (default build), JOBS (default nproc)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build}
jobs=${JOBS:-$(nproc)}
packages=(build-essential cmake pkg-config zlib1g-dev libfaiss-dev libopenblas-dev libhdf5-dev
          libmicrohttpd-dev clang libclang-rt-14-dev curl time python3-h5py python3-numpy)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "setup: installing ${missing[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "setup: missing packages; run: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
fi

scripts/fetch_faiss.sh
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j "$jobs"

if [ "${1:-}" != "--no-demo" ]; then
  echo "setup: demo: pdr easy-search data/demo/query.fasta data/demo/targets.fasta - -k 5" >&2
  "$build/pdr" version
  "$build/pdr" easy-search data/demo/query.fasta data/demo/targets.fasta - -k 5
fi
