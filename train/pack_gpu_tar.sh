#!/bin/sh
# pack_gpu_tar.sh: the data of pack_gpu.sh as one xz tarball, for a GPU machine reached through
# the device tool (whose carry limit is 64 MiB): the files uncompressed inside (xz compresses them
# better than gzip does), pos.tsv's E-value column (unused by train.py) blanked to '-', and the
# stripped checkpoint to start from (INIT, a checkpoint or a model .h5 such as data/pdr_cnn_v1.h5,
# saved as init.pt). The benchmark proteins and pairs stay behind (the repository itself travels
# too, and four teacher sets with them would pass the limit): train there with --no-eval and
# evaluate the exported model here (train/eval.py).
# usage: train/pack_gpu_tar.sh TEACHER_DIR[:TEACHER_DIR...] NAME INIT.pt|MODEL.h5 [SHARED_DATA_DIR]
#   -> train/work/NAME.tar.xz holding NAME/{train.fasta,pos.tsv,neg.tsv,selfbits.tsv,init.pt,
#      shared/homology/heldout_ids.txt}; on the device: tar xJf train/work/NAME.tar.xz -C /tmp
set -eu
cd "$(dirname "$0")/.."
[ $# -ge 3 ] || { echo "usage: train/pack_gpu_tar.sh TEACHER_DIRS NAME INIT.pt|MODEL.h5 [SHARED_DATA_DIR]" >&2; exit 2; }
T=$1; NAME=$2; INIT=$3; SHARED=${4:-../shared/data}
[ -f "$INIT" ] || { echo "pack_gpu_tar: $INIT: no such checkpoint" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
train/pack_gpu.sh "$T" "$tmp/$NAME" "$SHARED" >/dev/null
cd "$tmp/$NAME"
gunzip train.fasta.gz neg.tsv.gz selfbits.tsv.gz
rm heldout.fasta.gz shared/homology/*.pair
gunzip -c pos.tsv.gz | awk 'BEGIN { FS = OFS = "\t" } { $3 = "-"; print }' > pos.tsv
rm pos.tsv.gz
cd - >/dev/null
/usr/bin/python3 -c "import sys, torch; sys.path.insert(0, 'train'); from train import read_init; c = read_init(sys.argv[1]); torch.save({k: c[k] for k in ('config', 'model', 'step', 'origin') if k in c}, sys.argv[2])" "$INIT" "$tmp/$NAME/init.pt"
tar cf - -C "$tmp" "$NAME" | xz -T2 -6 > "train/work/$NAME.tar.xz.tmp"
mv "train/work/$NAME.tar.xz.tmp" "train/work/$NAME.tar.xz"
ls -la "train/work/$NAME.tar.xz"
