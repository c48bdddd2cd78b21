#!/usr/bin/env bash
# full_corpus.sh: `pdr embed` and `pdr makedb` on the whole 516k-protein 2014 UniProt corpus
# (train/build_corpus.sh makes train/work/corpus.fasta from Debian's metastudent-data).
# Prints wall time, residues/s, peak RSS, store and index size, and the index's recall@10.
# Usage: bench/full_corpus.sh [CORPUS.fasta] [OUTDIR] [PDR]
set -euo pipefail
cd "$(dirname "$0")/.."
corpus=${1:-train/work/corpus.fasta}
out=${2:-bench/out/corpus516k}
pdr=${3:-build/pdr}
mkdir -p "$out"
echo "== pdr embed $corpus (all cores)"
/usr/bin/time -f 'embed: %e s wall, %U s user, %S s sys, peak RSS %M KiB' \
  "$pdr" embed "$corpus" -o "$out/embeddings.h5" 2>&1 | grep -v '^\s*$'
/usr/bin/python3 -c "
import h5py; f = h5py.File('$out/embeddings.h5', 'r')
print('h5py:', f['embeddings'].shape, f['embeddings'].dtype, len(f['ids']), 'ids;', dict((k, f.attrs[k]) for k in ('model_name', 'model_version', 'dim', 'normalized')))"
echo "== pdr makedb (store already complete: index + calibration)"
/usr/bin/time -f 'makedb: %e s wall, %U s user, %S s sys, peak RSS %M KiB' \
  "$pdr" makedb "$corpus" "$out" 2>&1 | grep -v '^\s*$'
du -h "$out/embeddings.h5" "$out/index.faiss"
