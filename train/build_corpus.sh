#!/bin/sh
# build_corpus.sh: the training/evaluation corpus from Debian's metastudent-data (2014 UniProt,
# GO-annotated). Union of the BPO/MFO/CCO BLAST databases, deduplicated by accession (first
# occurrence wins), written as '>ACCESSION' FASTA with one sequence line per record; then split into
# heldout.fasta (accessions in heldout_ids.txt: evaluation only) and train_pool.fasta (the rest).
#
# usage: [NO_TWINS=1] train/build_corpus.sh [SHARED_DATA_DIR] [OUT_DIR]
#   SHARED_DATA_DIR default ../shared/data (relative to the repo root), OUT_DIR default train/work
#   NO_TWINS=1 also leaves out of train_pool.fasta the proteins whose sequence is identical to a
#   held-out protein's (under another accession: 564 proteins, twins of 242 held-out ones). Off by
#   default so that the shipped model's recipe reruns as it was trained (train/README.md,
#   "Sequence twins"); a new model should be trained on the pool made with it.
# needs: ncbi-blast+ (blastdbcmd), metastudent-data, awk
set -eu
cd "$(dirname "$0")/.."
SHARED=${1:-../shared/data}
OUT=${2:-train/work}
DB=/usr/share/metastudent-data/dataset_201401
HELD="$SHARED/homology/heldout_ids.txt"
[ -r "$HELD" ] || { echo "build_corpus: cannot read $HELD" >&2; exit 1; }
mkdir -p "$OUT"

# Title is 'ACCESSION|GO:...,GO:...'; the accession is the part before the first '|'.
for ont in BPO MFO CCO; do
    blastdbcmd -db "$DB/$ont/goasp.fasta" -entry all -outfmt '%t	%s'
done | awk -F'\t' '
    { split($1, a, "|"); acc = a[1]; if (acc == "" || $2 == "") { bad++; next } }
    !(acc in seen) { seen[acc] = 1; print ">" acc; print $2; n++; res += length($2) }
    END { printf "corpus: %d proteins, %d residues (%d records skipped)\n", n, res, bad > "/dev/stderr" }
' > "$OUT/corpus.fasta.tmp"
mv "$OUT/corpus.fasta.tmp" "$OUT/corpus.fasta"

awk -v held="$OUT/heldout.fasta" -v pool="$OUT/train_pool.fasta" '
    NR == FNR { h[$1] = 1; next }
    /^>/ { acc = substr($0, 2); out = (acc in h) ? held : pool; if (acc in h) nh++; else np++ }
    { print > out }
    END { printf "heldout: %d proteins; train_pool: %d proteins\n", nh, np > "/dev/stderr" }
' "$HELD" "$OUT/corpus.fasta"

# Records are one header line and one sequence line, so a pool sequence is compared as a line.
if [ "${NO_TWINS:-0}" = 1 ]; then
    awk 'NR == FNR { if (!/^>/) h[$0] = 1; next }
         /^>/ { hdr = $0; next }
         { if ($0 in h) dropped++; else { print hdr; print $0; n++ } }
         END { printf "NO_TWINS: %d pool proteins identical to a held-out one left out; train_pool: %d proteins\n", dropped, n > "/dev/stderr" }
    ' "$OUT/heldout.fasta" "$OUT/train_pool.fasta" > "$OUT/train_pool.fasta.tmp"
    mv "$OUT/train_pool.fasta.tmp" "$OUT/train_pool.fasta"
fi
