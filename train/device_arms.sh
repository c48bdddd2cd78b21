#!/bin/sh
# device_arms.sh: several training arms side by side on one CUDA machine, from the per-set data of
# train/pack_sets_tar.sh. Each arm trains for TIME_S seconds on the concatenation of its sets and
# exports OUTDIR/ARM/m.h5 + m_ref.h5; its log is OUTDIR/ARM/train.log (checkpoints stay in /tmp:
# the device tool brings back at most 8 files). Evaluation runs elsewhere (train/eval.py), since
# the benchmark proteins and the background pool stay behind.
# ARMS_FILE: one arm per line, "NAME SET+SET+... [extra train.py arguments]"; '#' lines skipped.
# usage: sh train/device_arms.sh DATA_DIR OUTDIR TIME_S ARMS_FILE
#   (DATA_DIR: the unpacked tarball, e.g. /tmp/s22; PY= the python with torch, default python3;
#    WORKERS= loader workers per arm, default (cores - 2 x arms) / arms)
set -eu
[ $# -eq 4 ] || { echo "usage: sh train/device_arms.sh DATA_DIR OUTDIR TIME_S ARMS_FILE" >&2; exit 2; }
D=$1; OUTDIR=$2; TIME=$3; ARMS=$4
PY=${PY:-python3}
export PYTHONUNBUFFERED=1
narms=$(grep -cv '^[[:space:]]*\(#\|$\)' "$ARMS")
[ "$narms" -ge 1 ] || { echo "device_arms: no arm in $ARMS" >&2; exit 2; }
W=${WORKERS:-$(( ($(nproc) - 2 * narms) / narms ))}
[ "$W" -ge 1 ] || W=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || true
$PY -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available())'
echo "device_arms: $narms arms, $W loader workers each, $TIME s each"
pids=""
while read -r name sets extra; do
    case "$name" in ''|\#*) continue ;; esac
    a=/tmp/arm_$name
    rm -rf "$a"; mkdir -p "$a" "$OUTDIR/$name"
    for s in $(echo "$sets" | tr '+' ' '); do
        [ -d "$D/$s" ] || { echo "device_arms: arm $name: no set $s in $D" >&2; exit 1; }
        for f in train.fasta pos.tsv neg.tsv selfbits.tsv; do cat "$D/$s/$f" >> "$a/$f"; done
    done
    dups=$(grep '^>' "$a/train.fasta" | sort | uniq -d | wc -l)
    [ "$dups" -eq 0 ] || { echo "device_arms: arm $name: $dups proteins in more than one of its sets" >&2; exit 1; }
    echo "arm $name: sets $sets: $(grep -c '^>' "$a/train.fasta") proteins, $(wc -l < "$a/pos.tsv") positive pairs; extra: $extra"
    # shellcheck disable=SC2086  # extra holds several arguments
    $PY train/train.py --data "$a" --heldout-ids "$D/heldout_ids.txt" --ckpt-dir "/tmp/ckpt_$name" \
        --time-budget "$TIME" --batch 384 --hard 128 --workers "$W" --threads 1 --log-every 200 \
        --ckpt-every 2000 --no-eval --export "$OUTDIR/$name/m" $extra > "$OUTDIR/$name/train.log" 2>&1 &
    pids="$pids $name:$!"
done < "$ARMS"
rc=0
for p in $pids; do
    if wait "${p#*:}"; then echo "arm ${p%%:*}: done"; else echo "arm ${p%%:*}: FAILED"; rc=1; fi
    tail -n 4 "$OUTDIR/${p%%:*}/train.log"
done
exit $rc
