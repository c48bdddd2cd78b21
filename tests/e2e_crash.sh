#!/usr/bin/env bash
# e2e_crash.sh: crash safety. `pdr embed` and `pdr makedb` are killed with SIGKILL at random
# moments and rerun; the final store must hold every input record exactly once, in input order,
# with embeddings identical to an uninterrupted run, and a database directory is never left
# half-written in a way `pdr search` would load. Seed: PDR_SEED (printed).
set -u
PDR=${PDR:-build/pdr}
DATA=${PDR_DATA:-data}
T=$(mktemp -d "${PDR_TMP:-/tmp}/e2e_crash.XXXXXX")
trap 'rm -rf "$T"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
check() { if eval "$2"; then ok; else bad "$1"; fi; }
if ! /usr/bin/python3 -c 'import h5py' 2>/dev/null; then
  echo "skipped: python3-h5py is needed to compare stores"; echo "0 passed, 0 failed"; exit 0
fi
seed=${PDR_SEED:-$RANDOM}
echo "e2e_crash: seed $seed (set PDR_SEED to repeat)"
RANDOM=$seed
model=$DATA/test/cnn_bench.h5 # production-shaped random weights: slow enough to kill mid-run
[ -n "${PDR_UNDER_VALGRIND:-}" ] && model=kmer3 # memcheck: float work is ~100x slower, and valgrind is slow enough to kill mid-run
input=$T/input.fasta
awk '/^>/{n++} n<=400' "$DATA/demo/targets.fasta" >"$input"
n_input=$(grep -c '^>' "$input")
common=(--model "$model" --batch-residues 8000 --threads 2)

same_store() { # same ids, same order, same vectors, same sequence hashes
  /usr/bin/python3 - "$1" "$2" <<'PY'
import sys, h5py, numpy as np
a, b = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
ia, ib = list(a["ids"].asstr()[:]), list(b["ids"].asstr()[:])
assert ia == ib, "ids differ: %d vs %d rows" % (len(ia), len(ib))
assert len(set(ia)) == len(ia), "duplicate ids"
assert np.array_equal(a["embeddings"][:], b["embeddings"][:]), "embeddings differ"
assert np.array_equal(a["lengths"][:], b["lengths"][:]), "lengths differ"
assert "seq_hash" in a and "seq_hash" in b, "a store without /seq_hash"
assert np.array_equal(a["seq_hash"][:], b["seq_hash"][:]), "sequence hashes differ"
PY
}

t0=$(date +%s.%N)
"$PDR" embed "$input" -o "$T/ref.h5" "${common[@]}" 2>"$T/err"
check "uninterrupted run exits 0" "[ $? -eq 0 ]"
t_full=$(awk -v a="$(date +%s.%N)" -v b="$t0" "BEGIN{printf \"%.3f\", a - b}")
echo "uninterrupted embed: ${t_full}s"
check "its /seq_hash is FNV-1a 64 of each protein's residues" "/usr/bin/python3 - '$input' '$T/ref.h5' <<'PY'
import sys, h5py
seqs, cur = [], None
for line in open(sys.argv[1]):
    if line.startswith('>'):
        cur = []
        seqs.append(cur)
    else:
        cur.append(line.strip().upper())
def fnv1a64(s):
    h = 0xcbf29ce484222325
    for c in s.encode():
        h = ((h ^ c) * 0x100000001b3) % 2**64
    return h
assert list(h5py.File(sys.argv[2], 'r')['seq_hash'][:]) == [fnv1a64(''.join(s)) for s in seqs]
PY"

kills=0
for round in 1 2 3 4 5 6; do
  # each round gets 1-15% of an uninterrupted run's duration before the kill
  delay=$(awk -v t="$t_full" -v r=$((RANDOM % 15 + 1)) "BEGIN{printf \"%.3f\", t * r / 100}")
  "$PDR" embed "$input" -o "$T/k.h5" "${common[@]}" 2>>"$T/kill.log" &
  pid=$!
  echo "round $round: kill after ${delay}s"
  sleep "$delay"
  if kill -9 "$pid" 2>/dev/null; then kills=$((kills + 1)); fi
  wait "$pid" 2>/dev/null
  [ -e "$T/k.h5" ] && check "a completed output opens (round $round)" "/usr/bin/python3 -c 'import h5py; h5py.File(\"$T/k.h5\",\"r\")[\"ids\"][:]'"
done
echo "killed $kills runs"
"$PDR" embed "$input" -o "$T/k.h5" "${common[@]}" 2>"$T/err"
check "final rerun exits 0" "[ $? -eq 0 ]"
check "final store equals the uninterrupted one" "same_store '$T/ref.h5' '$T/k.h5'"
check "final store has every record once" "/usr/bin/python3 -c 'import h5py; assert len(h5py.File(\"$T/k.h5\",\"r\")[\"ids\"]) == $n_input'"
check "no partial dir left" "[ ! -e '$T/k.h5.partial' ]"
# a rerun over a half-made store says on a terminal that it resumes (its ETA counts from its
# first new batch: the stored records are skipped in moments)
if command -v script >/dev/null; then
    half=$(( n_input / 2 ))
    awk -v h="$half" '/^>/{n++} n<=h' "$input" >"$T/half.fa"
    "$PDR" embed "$T/half.fa" -o "$T/res.h5" "${common[@]}" 2>/dev/null
    script -qec "$PDR embed '$input' -o '$T/res.h5' ${common[*]}" /dev/null >"$T/tty.txt" 2>&1
    check "the progress line of a resumed run says how many are stored" "grep -q 'resuming: $half already stored' '$T/tty.txt' && same_store '$T/ref.h5' '$T/res.h5'"
fi

# Killed after OUT was renamed but before its parts were removed: the stale parts must not
# be merged twice.
mkdir -p "$T/stale.h5.partial"
"$PDR" embed "$input" -o "$T/part.h5" "${common[@]}" --batch-residues 100000000 2>/dev/null
cp "$T/part.h5" "$T/stale.h5.partial/part-000000.h5"
cp "$T/ref.h5" "$T/stale.h5"
"$PDR" embed "$input" -o "$T/stale.h5" "${common[@]}" 2>"$T/err"
check "stale parts after a finished run are dropped" "same_store '$T/ref.h5' '$T/stale.h5'"

# Two runs into one OUT at once: the second is refused at once (exit 1, naming OUT), the first
# finishes with every record. The first reads its FASTA from a FIFO that this script feeds, so it
# is still running, OUT locked, while the second starts.
fifo=$T/in.fifo
mkfifo "$fifo"
wait_for() { for _ in $(seq 600); do [ -e "$1" ] && return 0; sleep 0.1; done; return 1; }
"$PDR" embed - -o "$T/cc.h5" "${common[@]}" <"$fifo" 2>"$T/cc1.err" &
pid=$!
exec 3>"$fifo"
head -n 20 "$input" >&3
wait_for "$T/cc.h5.lock"
"$PDR" embed "$input" -o "$T/cc.h5" "${common[@]}" 2>"$T/cc2.err"
rc=$?
check "a second embed into the same OUT: exit 1, says another run writes OUT" "[ $rc -eq 1 ] && grep -q 'cc.h5: another pdr run is writing it' '$T/cc2.err'"
tail -n +21 "$input" >&3
exec 3>&-
wait "$pid"
rc=$?
check "the first run finishes with every record" "[ $rc -eq 0 ] && same_store '$T/ref.h5' '$T/cc.h5'"
check "and removes its lock file" "[ ! -e '$T/cc.h5.lock' ] && [ ! -e '$T/cc.h5.partial' ]"
# the same for makedb (its store is DBDIR/embeddings.h5)
"$PDR" makedb - "$T/ccdb" "${common[@]}" <"$fifo" 2>"$T/cc3.err" &
pid=$!
exec 3>"$fifo"
head -n 20 "$input" >&3
wait_for "$T/ccdb/embeddings.h5.lock"
"$PDR" makedb "$input" "$T/ccdb" "${common[@]}" 2>"$T/cc4.err"
rc=$?
check "a second makedb into the same DBDIR: exit 1, says another run writes it" "[ $rc -eq 1 ] && grep -q 'another pdr run is writing it' '$T/cc4.err'"
tail -n +21 "$input" >&3
exec 3>&-
wait "$pid"
check "the first makedb finishes" "[ $? -eq 0 ] && same_store '$T/ref.h5' '$T/ccdb/embeddings.h5'"
# a lock left by a killed run does not block the next one
"$PDR" embed - -o "$T/kl.h5" "${common[@]}" <"$fifo" 2>/dev/null &
pid=$!
exec 3>"$fifo"
head -n 20 "$input" >&3
wait_for "$T/kl.h5.lock"
kill -9 "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
exec 3>&-
check "a killed run leaves its lock file behind" "[ -e '$T/kl.h5.lock' ]"
"$PDR" embed "$input" -o "$T/kl.h5" "${common[@]}" 2>"$T/err"
check "the next run is not blocked by it and stores every record" "[ $? -eq 0 ] && same_store '$T/ref.h5' '$T/kl.h5' && [ ! -e '$T/kl.h5.lock' ]"

# makedb: killed at random moments, search either refuses the directory or works; the final
# database answers like one built without interruption.
"$PDR" makedb "$input" "$T/dbref" "${common[@]}" 2>/dev/null
"$PDR" search "$T/dbref" "$DATA/demo/query.fasta" "$T/ref.tsv" -k 5 --model "$model" 2>/dev/null
for round in 1 2 3 4; do
  delay=$(awk -v t="$t_full" -v r=$((RANDOM % 110)) "BEGIN{printf \"%.3f\", t * r / 100}")
  "$PDR" makedb "$input" "$T/db" "${common[@]}" 2>>"$T/kill.log" &
  pid=$!
  sleep "$delay"
  kill -9 "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  "$PDR" search "$T/db" "$DATA/demo/query.fasta" "$T/mid.tsv" -k 5 --model "$model" 2>"$T/err"
  rc=$?
  if [ $rc -eq 0 ]; then
    check "a database that loads answers correctly (round $round)" "cmp -s '$T/ref.tsv' '$T/mid.tsv'"
  else
    check "a half-made database is refused with a message (round $round)" "[ $rc -eq 1 ] && [ -s '$T/err' ]"
  fi
done
"$PDR" makedb "$input" "$T/db" "${common[@]}" 2>/dev/null
"$PDR" search "$T/db" "$DATA/demo/query.fasta" "$T/final.tsv" -k 5 --model "$model" 2>/dev/null
check "rerun makedb answers like the uninterrupted one" "cmp -s '$T/ref.tsv' '$T/final.tsv'"
# makedb writes calibration.txt last: without it (an interrupted run, whatever else is there) the
# directory is refused, not searched with parts missing
rm "$T/db/calibration.txt"
"$PDR" search "$T/db" "$DATA/demo/query.fasta" "$T/none.tsv" -k 5 --model "$model" 2>"$T/err"
rc=$?
check "a database without its calibration is refused as incomplete" "[ $rc -eq 1 ] && grep -q 'incomplete' '$T/err'"


# makedb --expand writes calibration.txt before the expansion (the expansion searches the plain
# database): a run stopped between the two must not leave a directory that search and serve take
# for a plain database (they used to, silently searching without the expansion asked for). Here
# the expansion's index cannot be written (a directory sits on its temporary name): makedb fails
# there, search refuses the directory, and the rerun finishes it as an uninterrupted run would.
if "$PDR" version 2>/dev/null | grep -q 'scores: background-adjusted'; then # the default model
  awk '/^>/{n++} n<=60' "$input" >"$T/x60.fa"
  "$PDR" makedb "$T/x60.fa" "$T/xref" --threads 2 2>/dev/null --expand
  "$PDR" search "$T/xref" "$DATA/demo/query.fasta" "$T/xref.tsv" -k 5 2>/dev/null
  mkdir -p "$T/xf/index_expanded.faiss.tmp"
  "$PDR" makedb "$T/x60.fa" "$T/xf" --threads 2 --expand 2>"$T/err"
  check "makedb --expand whose expansion fails: exit 1" "[ $? -eq 1 ] && [ -e '$T/xf/calibration.txt' ]"
  "$PDR" search "$T/xf" "$DATA/demo/query.fasta" "$T/xf.tsv" -k 5 2>"$T/err"
  rc=$?
  check "its directory is refused by search as an unfinished expansion (rc $rc: $(head -c 200 "$T/err"))" "[ $rc -eq 1 ] && grep -q 'expansion is incomplete' '$T/err'"
  rmdir "$T/xf/index_expanded.faiss.tmp"
  "$PDR" makedb "$T/x60.fa" "$T/xf" --threads 2 --expand 2>/dev/null
  "$PDR" search "$T/xf" "$DATA/demo/query.fasta" "$T/xf.tsv" -k 5 2>/dev/null
  check "the rerun answers like the uninterrupted makedb --expand" "cmp -s '$T/xref.tsv' '$T/xf.tsv'"
  if command -v strace >/dev/null && [ -z "${PDR_UNDER_VALGRIND:-}" ]; then
    # the same for a SIGKILL: at the start of the expansion's index, calibration.txt written
    (strace -f -o /dev/null -P "$T/xk/index_expanded.faiss.tmp" -e trace=openat -e inject=openat:signal=KILL \
      "$PDR" makedb "$T/x60.fa" "$T/xk" --threads 2 --expand; true) 2>/dev/null
    "$PDR" search "$T/xk" "$DATA/demo/query.fasta" "$T/xk.tsv" -k 5 2>"$T/err"
    check "makedb --expand killed in the expansion: search refuses the directory" "[ -e '$T/xk/calibration.txt' ] && [ ! -e '$T/xk/index_expanded.faiss' ] && grep -q 'expansion is incomplete' '$T/err'"
    "$PDR" makedb "$T/x60.fa" "$T/xk" --threads 2 --expand 2>/dev/null
    "$PDR" search "$T/xk" "$DATA/demo/query.fasta" "$T/xk.tsv" -k 5 2>/dev/null
    check "and its rerun answers like the uninterrupted one" "cmp -s '$T/xref.tsv' '$T/xk.tsv' && [ ! -e '$T/xk/expansion.pending' ]"
    "$PDR" makedb "$T/x60.fa" "$T/xk" --threads 2 2>/dev/null
    check "a rerun without --expand leaves a plain database, searchable" "\"$PDR\" search '$T/xk' '$DATA/demo/query.fasta' - -k 5 >/dev/null 2>&1"
  fi
fi

# What a killed makedb leaves in DBDIR (a copy of its target stream, temporary files of any step)
# is removed by the next makedb into it, even one that does not reach that step: a copy of a
# stream is as large as the stream, an expansion's temporary file twice the store.
"$PDR" makedb - "$T/sdb" "${common[@]}" <"$fifo" 2>/dev/null &
pid=$!
exec 3>"$fifo"
head -n 20 "$input" >&3
wait_for "$T/sdb/embeddings.h5.lock"
kill -9 "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
exec 3>&-
check "a makedb from a stream killed mid-run leaves its copy behind" "ls -A '$T/sdb' | grep -q '^\.target-'"
for f in index.faiss.tmp background.h5.tmp sequences.h5.tmp calibration.txt.tmp expansion.h5.tmp \
  index_expanded.faiss.tmp calibration_expanded.txt.tmp; do
  echo partial >"$T/sdb/$f" # as a makedb killed while writing each leaves it
done
"$PDR" makedb - "$T/sdb" "${common[@]}" <"$input" 2>"$T/err"
check "the rerun from the stream finishes" "[ $? -eq 0 ] && same_store '$T/ref.h5' '$T/sdb/embeddings.h5'"
check "and leaves no copy of a stream nor temporary file behind ($(ls -A "$T/sdb" | tr '\n' ' '))" "[ -z \"\$(ls -A '$T/sdb' | grep -e '^\.target-' -e '\.tmp\$')\" ]"

# Durability (a power loss or kernel crash, not only a kill): every file is written to a
# temporary name, fsynced, renamed, and its directory fsynced before the next step, so that the
# calibration, which marks a database complete, is never on disk without the files it describes
# (background.h5 and sequences.h5 were renamed unsynced, and no directory but the index's synced).
if command -v strace >/dev/null && [ -z "${PDR_UNDER_VALGRIND:-}" ]; then
  cat >"$T/durable.py" <<'PY'
import os, re, sys
synced, problems, pending, renames = set(), [], None, 0
for line in open(sys.argv[1]):
    m = re.search(r'f(?:data)?sync\(\d+<([^>]*)>\)\s*=\s*0', line)
    if m:
        synced.add(m.group(1))
        if pending and m.group(1) == os.path.dirname(pending):
            pending = None
        continue
    m = re.search(r'rename\("([^"]*)", "([^"]*)"\)\s*=\s*0', line)
    if m:
        src, dst = os.path.abspath(m.group(1)), os.path.abspath(m.group(2))
        renames += 1
        if pending:
            problems.append("no fsync of its directory after the rename to " + pending)
        if src not in synced:
            problems.append("renamed without an fsync: " + src)
        pending = dst
if pending:
    problems.append("no fsync of its directory after the rename to " + pending)
print("; ".join(problems) if problems else "%d renames, each durable" % renames)
sys.exit(1 if problems or renames < 6 else 0)
PY
  dur_opts=(--model "$model")
  "$PDR" version 2>/dev/null | grep -q 'scores: background-adjusted' && dur_opts=(--expand) # every file
  trace=(strace -f -y -qq -e trace=fsync,fdatasync,rename,renameat,renameat2)
  "${trace[@]}" -o "$T/sync.log" "$PDR" makedb "$input" "$T/syncdb" --threads 2 --batch-residues 20000 \
    "${dur_opts[@]}" 2>/dev/null
  "${trace[@]}" -o "$T/sync2.log" "$PDR" search "$T/syncdb" "$DATA/demo/query.fasta" "$T/sync.tsv" -k 5 2>/dev/null
  cat "$T/sync2.log" >>"$T/sync.log"
  check "makedb and search: each file fsynced, renamed, its directory fsynced ($(/usr/bin/python3 "$T/durable.py" "$T/sync.log" 2>&1 | head -c 600))" \
    "/usr/bin/python3 '$T/durable.py' '$T/sync.log' >/dev/null 2>&1"
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
