#!/usr/bin/env bash
# fetch_faiss.sh: put Debian's faiss source tree (for its C API, which libfaiss-dev ships as
# headers only) under third_party/. Uses Debian's own archive through apt-get source.
# Usage: scripts/fetch_faiss.sh [DEST_DIR]   (default: third_party/)
set -euo pipefail
dest=${1:-"$(cd "$(dirname "$0")/.." && pwd)/third_party"}
if [ -f "$dest/faiss-1.7.3/c_api/index_factory_c.cpp" ]; then
  exit 0
fi
mkdir -p "$dest"
if ! apt-get indextargets --format '$(IDENTIFIER)' 2>/dev/null | grep -q '^Sources$'; then
  echo "fetch_faiss: enabling Debian source packages (deb-src) for apt-get source" >&2
  printf 'Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: bookworm\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    >/etc/apt/sources.list.d/pdr-debian-src.sources
  apt-get update -qq
fi
cd "$dest"
apt-get source --download-only faiss >/dev/null
tar xzf faiss_1.7.3.orig.tar.gz
test -f faiss-1.7.3/c_api/index_factory_c.cpp
echo "fetch_faiss: faiss C API sources in $dest/faiss-1.7.3/c_api" >&2
