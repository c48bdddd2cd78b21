#!/bin/sh
# pack_gpu.sh: a compact copy of what train.py needs, for the GPU machine (travels with `carry`):
# train.fasta.gz (the mined subset), pos/neg/selfbits .tsv.gz (teacher), heldout.fasta.gz (only the
# benchmark proteins) and shared/homology/*.pair (the benchmark labels).
# usage: train/pack_gpu.sh [TEACHER_DIR[:TEACHER_DIR...]] [OUT_DIR] [SHARED_DATA_DIR]
# Several teacher dirs (disjoint subsets, mine_teacher.py --exclude) are concatenated.
set -eu
cd "$(dirname "$0")/.."
T=${1:-train/work/teacher40k}
O=${2:-train/work/gpu}
SHARED=${3:-../shared/data}
rm -rf "$O"; mkdir -p "$O/shared/homology"
dirs=$(printf '%s' "$T" | tr ':' ' ')
cat_all() { for d in $dirs; do cat "$d/$1"; done; }
cat_all subset.fasta | gzip -c > "$O/train.fasta.gz"
for f in pos neg selfbits; do cat_all "$f.tsv" | gzip -c > "$O/$f.tsv.gz"; done
# disjoint subsets: no protein twice
dups=$(cat_all subset.fasta | grep '^>' | sort | uniq -d | wc -l)
[ "$dups" -eq 0 ] || { echo "pack_gpu: $dups proteins in more than one teacher subset" >&2; exit 1; }
cp "$SHARED"/homology/*.pair "$SHARED/homology/heldout_ids.txt" "$O/shared/homology/"
# heldout proteins that appear in a benchmark pair
cat "$SHARED"/homology/*.pair | awk '!/^#/ { print $1; print $2 }' | sort -u > "$O/bench_ids.txt"
awk -v ids="$O/bench_ids.txt" 'BEGIN { while ((getline l < ids) > 0) k[l] = 1 }
     /^>/ { keep = (substr($0, 2) in k) } keep' train/work/heldout.fasta | gzip -c > "$O/heldout.fasta.gz"
rm "$O/bench_ids.txt"
du -sh "$O"; ls -la "$O"
