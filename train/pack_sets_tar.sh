#!/bin/sh
# pack_sets_tar.sh: several teacher sets as one xz tarball for the device tool (64 MiB carry
# limit), one folder per set, so that training arms on different combinations of sets share one
# copy of the data (train/device_arms.sh assembles each arm's data folder on the device).
# Each folder: train.fasta (the set's subset.fasta; a symbolic link to an earlier folder's copy
# when two sets mined the same proteins, e.g. a single and a profile teacher), pos.tsv (E-value
# column, unused by train.py, blanked to '-'), neg.tsv, selfbits.tsv. heldout_ids.txt goes along
# so that train.py can assert that no held-out protein is in the training data.
# usage: train/pack_sets_tar.sh NAME TEACHER_DIR... [-- SHARED_DATA_DIR]
#   -> train/work/NAME.tar.xz holding NAME/<basename of each TEACHER_DIR>/..., NAME/heldout_ids.txt;
#      on the device: tar xJf train/work/NAME.tar.xz -C /tmp
set -eu
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { echo "usage: train/pack_sets_tar.sh NAME TEACHER_DIR... [-- SHARED_DATA_DIR]" >&2; exit 2; }
NAME=$1; shift
SHARED=../shared/data
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/$NAME"
seen=""
while [ $# -gt 0 ]; do
    if [ "$1" = "--" ]; then SHARED=$2; break; fi
    d=$1; shift
    s=$(basename "$d")
    for f in subset.fasta pos.tsv neg.tsv selfbits.tsv; do
        [ -f "$d/$f" ] || { echo "pack_sets_tar: $d/$f missing (mine the set first: train/README.md section 2)" >&2; exit 1; }
    done
    o="$tmp/$NAME/$s"
    mkdir "$o"
    link=""
    for p in $seen; do
        if cmp -s "$d/subset.fasta" "$p/subset.fasta"; then link=$(basename "$p"); fi
    done
    if [ -n "$link" ]; then ln -s "../$link/train.fasta" "$o/train.fasta"; else cp "$d/subset.fasta" "$o/train.fasta"; fi
    awk 'BEGIN { FS = OFS = "\t" } { $3 = "-"; print }' "$d/pos.tsv" > "$o/pos.tsv"
    cp "$d/neg.tsv" "$d/selfbits.tsv" "$o/"
    seen="$seen $d"
done
cp "$SHARED/homology/heldout_ids.txt" "$tmp/$NAME/"
tar cf - -C "$tmp" "$NAME" | xz -T2 -6 > "train/work/$NAME.tar.xz.tmp"
mv "train/work/$NAME.tar.xz.tmp" "train/work/$NAME.tar.xz"
ls -la "train/work/$NAME.tar.xz"
