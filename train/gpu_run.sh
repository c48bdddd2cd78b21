#!/bin/sh
# gpu_run.sh: one training run on a CUDA machine, from the packed data of train/pack_gpu.sh.
# Trains for TIME seconds, exports OUTDIR/pdr_cnn_v1.h5 (+ _ref.h5), evaluates on held-out pairs
# (with segments). Everything (log, checkpoints, model) goes to OUTDIR.
# usage: sh train/gpu_run.sh OUTDIR [TIME_S] [DATA_DIR] [extra train.py args...]
set -eu
OUTDIR=$1; TIME=${2:-330}; D=${3:-train/work/gpu}
shift; [ $# -gt 0 ] && shift; [ $# -gt 0 ] && shift
mkdir -p "$OUTDIR/ckpt"
export PYTHONUNBUFFERED=1
PY=${PY:-python3}
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || true
$PY -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available())'
$PY train/train.py --data "$D" --heldout "$D/heldout.fasta.gz" --shared "$D/shared" \
    --heldout-ids "$D/shared/homology/heldout_ids.txt" --ckpt-dir "$OUTDIR/ckpt" \
    --time-budget "$TIME" --batch 384 --hard 128 --workers 12 --threads 4 --log-every 200 \
    --ckpt-every 2000 --export "$OUTDIR/pdr_cnn_v1" --segments "$@" 2>&1 | tee "$OUTDIR/train.log"
