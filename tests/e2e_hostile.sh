#!/usr/bin/env bash
# e2e_hostile.sh: the hostile-input matrix for the CLI (README, "Hostile input"). Each case
# states the expected outcome: exit code, message, and that memory stays bounded.
set -u
PDR=${PDR:-build/pdr}
DATA=${PDR_DATA:-data}
T=$(mktemp -d "${PDR_TMP:-/tmp}/e2e_hostile.XXXXXX")
trap 'umount "$T/full" 2>/dev/null; rm -rf "$T"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
check() { if eval "$2"; then ok; else bad "$1"; fi; }
# run_embed NAME: embeds $T/NAME.fa into $T/NAME.h5; sets rc, err file $T/NAME.err, peak RSS (KiB) in rss
run_embed() {
  local name=$1; shift
  /usr/bin/env time -f '%M' -o "$T/$name.rss" "$PDR" embed "$T/$name.fa" -o "$T/$name.h5" --threads 2 "$@" 2>"$T/$name.err"
  rc=$?
  rss=$(tail -1 "$T/$name.rss" 2>/dev/null || echo 0)
}
have_time=0; [ -x /usr/bin/time ] && have_time=1
[ $have_time -eq 1 ] || run_embed() { local name=$1; shift; "$PDR" embed "$T/$name.fa" -o "$T/$name.h5" --threads 2 "$@" 2>"$T/$name.err"; rc=$?; rss=0; }

# empty file -> exit 1, "no valid sequences"
: >"$T/empty.fa"; run_embed empty
check "empty file: exit 1 with message" "[ $rc -eq 1 ] && grep -q 'no valid sequences' '$T/empty.err'"

# binary garbage -> exit 1, not FASTA, no crash
head -c 200000 /dev/urandom >"$T/garbage.fa"; run_embed garbage
check "binary garbage: exit 1, no crash" "[ $rc -eq 1 ] && ! grep -qi 'sanitizer\|segmentation' '$T/garbage.err'"
check "binary garbage: says not FASTA or invalid" "grep -q 'not FASTA\|invalid' '$T/garbage.err'"

# only headers -> every record empty, exit 1
printf '>a\n>b\n>c\n' >"$T/headers.fa"; run_embed headers
check "only headers: exit 1" "[ $rc -eq 1 ] && grep -q 'empty sequence' '$T/headers.err'"

# '>' inside a sequence line -> that record skipped, others stored
printf '>ok1\nMKVLA\n>bad\nMKV>LA\n>ok2\nACDEF\n' >"$T/gt.fa"; run_embed gt
check "'>' inside a line: record named, others kept" "[ $rc -eq 0 ] && grep -q 'record 2 (bad)' '$T/gt.err' && grep -q '2 embedded' '$T/gt.err'"

# NUL bytes -> record skipped with the byte named
printf '>ok1\nMKVLA\n>nul\nMK\0VLA\n' >"$T/nul.fa"; run_embed nul
check "NUL byte: record named with 0x00" "[ $rc -eq 0 ] && grep -q 'nul' '$T/nul.err' && grep -q '0x00' '$T/nul.err'"

# a huge single-line sequence on stdin: rejected above the length limit, memory bounded
# (under valgrind, PDR_UNDER_VALGRIND: 16 MiB, and no RSS bound: valgrind's own memory counts)
vg=${PDR_UNDER_VALGRIND:-}
big_mb=${PDR_HOSTILE_BIG_MB:-$([ -n "$vg" ] && echo 16 || echo 256)}
{ printf '>huge\n'; head -c $((big_mb * 1024 * 1024)) /dev/zero | tr '\0' 'A'; printf '\n>small\nMKVLA\n'; } |
  /usr/bin/env time -f '%M' -o "$T/huge.rss" "$PDR" embed - -o "$T/huge.h5" 2>"$T/huge.err"
rc=$?
rss=$(tail -1 "$T/huge.rss" 2>/dev/null || echo 0)
check "${big_mb} MiB line on stdin: exit 0, record rejected" "[ $rc -eq 0 ] && grep -q 'huge' '$T/huge.err' && grep -q 'max_length\|longer' '$T/huge.err'"
[ -n "$vg" ] || check "${big_mb} MiB line: peak RSS under 200 MiB (got ${rss} KiB)" "[ ${rss:-0} -lt 204800 ]"
check "the next record after it is stored" "grep -q '1 embedded' '$T/huge.err'"

# 100k tiny records -> all stored
awk 'BEGIN{for(i=0;i<100000;i++) printf ">t%d\nMKV\n", i}' >"$T/tiny.fa"; run_embed tiny --model kmer3
check "100k tiny records: all embedded" "[ $rc -eq 0 ] && grep -q '100000 embedded' '$T/tiny.err'"

# duplicate ids -> second one reported, first kept
printf '>dup\nMKVLA\n>dup\nACDEF\n>uniq\nWWW\n' >"$T/dup.fa"; run_embed dup
check "duplicate id: reported, first kept" "[ $rc -eq 0 ] && grep -q 'duplicate' '$T/dup.err' && grep -q '2 embedded' '$T/dup.err'"

# non-UTF-8 id -> record reported with the byte escaped
printf '>bad\xff\xfeid\nMKVLA\n>good\nMKV\n' >"$T/utf.fa"; run_embed utf
check "non-UTF-8 id: reported, others kept" "[ $rc -eq 0 ] && grep -q 'xFF\|xff\|UTF-8' '$T/utf.err' && grep -q '1 embedded' '$T/utf.err'"

# CRLF -> read like LF, same vector as the LF file
printf '>c1\r\nMKVLAAGIVG\r\nLLLAQ\r\n' >"$T/crlf.fa"; printf '>c1\nMKVLAAGIVG\nLLLAQ\n' >"$T/lf.fa"
run_embed crlf; run_embed lf
check "CRLF: same store as LF" "[ $rc -eq 0 ] && /usr/bin/python3 -c 'import h5py,numpy as np; a=h5py.File(\"$T/crlf.h5\")[\"embeddings\"][:]; b=h5py.File(\"$T/lf.h5\")[\"embeddings\"][:]; assert np.array_equal(a,b)' 2>/dev/null || ! /usr/bin/python3 -c 'import h5py' 2>/dev/null"

# truncated gzip -> exit 1 naming truncation; nothing half-written as the output
gzip -c "$DATA/demo/targets.fasta" >"$T/full.gz"
head -c $(( $(stat -c %s "$T/full.gz") / 2 )) "$T/full.gz" >"$T/trunc.fa"; run_embed trunc --model kmer3
check "truncated gzip: exit 1, says truncated" "[ $rc -eq 1 ] && grep -q 'truncated' '$T/trunc.err'"
check "truncated gzip: no output store" "[ ! -e '$T/trunc.h5' ]"
cp "$T/full.gz" "$T/gz.fa"; run_embed gz --model kmer3
check "gzip input works" "[ $rc -eq 0 ] && grep -q '1049 embedded' '$T/gz.err'"

# search with hostile queries: bad ones skipped, exit 0 if any good; all bad -> exit 1
"$PDR" makedb "$DATA/test/small.fasta" "$T/db" --model kmer3 2>/dev/null
"$PDR" search "$T/db" "$T/garbage.fa" - >/dev/null 2>"$T/sg.err"
check "search with garbage queries: exit 1" "[ $? -eq 1 ]"
"$PDR" search "$T/db" "$T/gt.fa" - >"$T/sgt.tsv" 2>"$T/sgt.err"
check "search skips the bad query, answers the others" "[ $? -eq 0 ] && [ \$(cut -f1 '$T/sgt.tsv' | sort -u | wc -l) -eq 2 ]"

# damaged background levels (DBDIR/background.h5): a clear error naming the file, no crash
if "$PDR" version 2>/dev/null | grep -q 'scores: background-adjusted'; then
    "$PDR" makedb "$DATA/test/small.fasta" "$T/bgdb" 2>/dev/null
    head -c 3000 /dev/urandom >"$T/bgdb/background.h5"
    "$PDR" search "$T/bgdb" "$DATA/test/small.fasta" - >/dev/null 2>"$T/bg.err"
    check "garbage background.h5: exit 1, names the file" "[ $? -eq 1 ] && grep -q 'background.h5' '$T/bg.err' && grep -q 'pdr makedb' '$T/bg.err'"
    "$PDR" makedb "$DATA/test/small.fasta" "$T/bgdb" 2>/dev/null
    /usr/bin/python3 -c 'import h5py,sys; f=h5py.File(sys.argv[1],"a"); del f["levels"]; f["levels"]=[0.1]*3' "$T/bgdb/background.h5"
    "$PDR" search "$T/bgdb" "$DATA/test/small.fasta" - >/dev/null 2>"$T/bg2.err"
    check "background.h5 with too few levels: exit 1, says rebuild" "[ $? -eq 1 ] && grep -q 'one per protein' '$T/bg2.err'"
    # levels from another background (a model file whose sample changed): refused, not mis-scored
    cp "$DATA/pdr_cnn_v1.h5" "$T/other.h5"
    /usr/bin/python3 -c 'import h5py,sys; f=h5py.File(sys.argv[1],"a"); f.attrs["background_percentile"]=90.0' "$T/other.h5"
    "$PDR" makedb "$DATA/test/small.fasta" "$T/bgdb" 2>/dev/null
    "$PDR" search "$T/bgdb" "$DATA/test/small.fasta" - --model "$T/other.h5" >/dev/null 2>"$T/bg3.err"
    check "levels from another background: exit 1, says rebuild" "[ $? -eq 1 ] && grep -q 'do not come from this model' '$T/bg3.err'"
fi

# -o -: HDF5 needs a seekable file, so embed refuses stdout (exit 2) instead of writing a file "-"
P_ABS=$(realpath "$PDR")
(cd "$T" && "$P_ABS" embed "$T/lf.fa" -o - --model kmer3 >"$T/dash.out" 2>"$T/dash.err")
rc=$?
check "embed -o -: exit 2, says stdout cannot take HDF5, writes no file '-'" "[ $rc -eq 2 ] && grep -q 'stdout cannot take HDF5' '$T/dash.err' && [ ! -e '$T/-' ] && [ ! -s '$T/dash.out' ]"

# A model whose weights were changed after export (4 bytes flipped inside /proj_w): its tensors no
# longer hash to its model_version, so it is refused instead of giving other embeddings.
if /usr/bin/python3 -c 'import h5py' 2>/dev/null; then
  cp "$DATA/pdr_cnn_v1.h5" "$T/flipped.h5"
  at=$(/usr/bin/python3 -c 'import h5py,sys; print(h5py.File(sys.argv[1],"r")["proj_w"].id.get_offset())' "$T/flipped.h5")
  printf '\x5a\xa5\x0f\x00' | dd of="$T/flipped.h5" bs=1 seek=$((at + 4000)) conv=notrunc status=none
  "$PDR" embed "$T/lf.fa" -o "$T/flipped_out.h5" --model "$T/flipped.h5" 2>"$T/flipped.err"
  rc=$?
  check "model with flipped weight bytes: exit 1, says its tensors do not match its model_version" "[ $rc -eq 1 ] && grep -q 'its tensors do not match its model_version (damaged or edited file)' '$T/flipped.err' && [ ! -e '$T/flipped_out.h5' ]"
else
  echo "skipped: damaged-model case (python3-h5py is needed to find /proj_w)"
fi

# A full disk while a store is written: exit 1 with one line naming the file, never a crash (HDF5's
# exit-time cleanup used to segfault on the file whose close had failed). A 2 MiB tmpfs (root only),
# else strace's fault injection (ENOSPC from the 14th pwrite on), else skipped.
awk 'BEGIN{srand(7); aa="ACDEFGHIKLMNPQRSTVWY"; for(i=0;i<3000;i++){n=50+int(rand()*450); s="";
     for(j=0;j<n;j++) s=s substr(aa,1+int(rand()*20),1); printf ">r%d\n%s\n",i,s}}' >"$T/r3000.fa"
full_msg_ok() { # rc 1, the disk-full message, one line, no crash report or raw HDF5 stack
  [ "$1" -eq 1 ] && grep -q 'write failed (disk full?)' "$2" && [ "$(wc -l <"$2")" -eq 1 ] &&
    ! grep -qi 'sanitizer\|segmentation\|HDF5-DIAG\|filename = ' "$2"
}
mkdir -p "$T/full"
if [ "$(id -u)" = 0 ] && mount -t tmpfs -o size=2m tmpfs "$T/full" 2>/dev/null; then
  "$PDR" embed "$T/r3000.fa" -o "$T/full/e.h5" --model kmer3 -t 1 2>"$T/full1.err"
  rc=$?
  check "disk full under embed: exit 1, one line (rc $rc: $(head -c 300 "$T/full1.err"))" "full_msg_ok $rc '$T/full1.err'"
  rm -rf "$T/full/"*
  "$PDR" makedb "$T/r3000.fa" "$T/full/db" --model kmer3 -t 1 2>"$T/full2.err"
  rc=$?
  check "disk full under makedb: exit 1, one line (rc $rc)" "full_msg_ok $rc '$T/full2.err'"
  rm -rf "$T/full/"*
  "$PDR" easy-search "$DATA/test/small.fasta" "$T/r3000.fa" "$T/full_hits.tsv" --model kmer3 -t 1 --tmp-dir "$T/full" 2>"$T/full3.err"
  rc=$?
  check "disk full under easy-search --tmp-dir: exit 1, one line (rc $rc)" "full_msg_ok $rc '$T/full3.err'"
  umount "$T/full"
elif command -v strace >/dev/null && [ -z "${PDR_UNDER_VALGRIND:-}" ]; then
  strace -f -o /dev/null -e trace=pwrite64 -e inject=pwrite64:error=ENOSPC:when=14+ \
    "$PDR" makedb "$T/r3000.fa" "$T/fulldb" --model kmer3 -t 1 --batch-residues 40000 2>"$T/full2.err"
  rc=$?
  check "disk full (injected) under makedb: exit 1, one line (rc $rc)" "full_msg_ok $rc '$T/full2.err'"
else
  echo "skipped: disk-full cases (need root for a tmpfs, or strace)"
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
