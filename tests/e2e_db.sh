#!/usr/bin/env bash
# e2e_db.sh: reruns of `pdr makedb` and `pdr embed` into what exists already, and databases
# with a part missing. A rerun that cannot finish (another FASTA, other options, stdin, a stored
# id with other residues) is refused before anything changes, and the database stays searchable;
# a resume or an extension at the end of the FASTA works; a store keeps the options it was made
# with; a calibration fitted on background-adjusted scores is not used without the levels; failed
# runs whose input cannot be read leave nothing behind.
set -u
PDR=${PDR:-build/pdr}
DATA=${PDR_DATA:-data}
T=$(mktemp -d "${PDR_TMP:-/tmp}/e2e_db.XXXXXX")
trap 'rm -rf "$T"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
check() { if eval "$2"; then ok; else bad "$1"; fi; }
Q=$DATA/demo/query.fasta
common=(--threads 1)
# proteins 1-4 (t4), 5-7 (n3) of the demo targets; 3 new ones first (first3), at the end (ext)
awk '/^>/{n++} n<=4' "$DATA/demo/targets.fasta" >"$T/t4.fa"
awk '/^>/{n++} n>=5 && n<=7' "$DATA/demo/targets.fasta" >"$T/n3.fa"
cat "$T/n3.fa" "$T/t4.fa" >"$T/first3.fa"
cat "$T/t4.fa" "$T/n3.fa" >"$T/ext.fa"
awk '/^>/{n++} n<=2' "$DATA/demo/targets.fasta" >"$T/t2.fa"
id5=$(awk '/^>/{n++; if (n == 5) {print substr($1, 2); exit}}' "$DATA/demo/targets.fasta")
# chg: t4 with protein 2's residues shuffled (each line reversed: same id, same length, same
# letters); chglen: t4 with protein 2 one residue shorter
id2=$(awk '/^>/{n++; if (n == 2) {print substr($1, 2); exit}}' "$T/t4.fa")
awk '/^>/{n++; print; next} n == 2 {cmd = "rev"; print | cmd; close(cmd); next} {print}' "$T/t4.fa" >"$T/chg.fa"
awk '/^>/{n++; print; if (n == 2) cut = 1; next} cut {print substr($0, 2); cut = 0; next} {print}' "$T/t4.fa" >"$T/chglen.fa"
adjusted=0; "$PDR" version 2>/dev/null | grep -q 'scores: background-adjusted' && adjusted=1
segments=0; "$PDR" version 2>/dev/null | grep -q 'segment databases (--segments): available' && segments=1
nrows() { /usr/bin/python3 -c "import h5py, sys; print(len(h5py.File(sys.argv[1], 'r')['ids']))" "$1" 2>/dev/null; }
have_h5py=0; /usr/bin/python3 -c 'import h5py' 2>/dev/null && have_h5py=1

# ---- 1. makedb into an existing database: refused unless it resumes or extends
"$PDR" makedb "$T/t4.fa" "$T/db" "${common[@]}" 2>"$T/err"
check "makedb of 4 proteins exits 0" "[ $? -eq 0 ]"
"$PDR" search "$T/db" "$Q" "$T/ref.tsv" "${common[@]}" 2>/dev/null
check "the database answers" "[ $? -eq 0 ] && [ -s '$T/ref.tsv' ]"
cp -r "$T/db" "$T/db.orig"
# still_intact NAME: the database is byte-for-byte as it was and answers as before
still_intact() {
  diff -r "$T/db" "$T/db.orig" >/dev/null &&
    "$PDR" search "$T/db" "$Q" "$T/again.tsv" "${common[@]}" 2>/dev/null && cmp -s "$T/ref.tsv" "$T/again.tsv"
}
"$PDR" makedb "$T/first3.fa" "$T/db" "${common[@]}" 2>"$T/err"
rc=$?
check "another FASTA (new records first): exit 1" "[ $rc -eq 1 ]"
check "  the message names the first mismatch and says what to do" "grep -q \"$id5\" '$T/err' && grep -q 'new DBDIR' '$T/err' && grep -q 'remove' '$T/err'"
check "  nothing embedded" "! grep -q 'embedded' '$T/err'"
check "  the database is untouched and still searchable" "still_intact"
"$PDR" makedb "$T/n3.fa" "$T/db" "${common[@]}" 2>"$T/err"
check "a FASTA of only new records: exit 1, database untouched" "[ $? -eq 1 ] && grep -q 'new DBDIR' '$T/err' && still_intact"
"$PDR" makedb "$T/t2.fa" "$T/db" "${common[@]}" 2>"$T/err"
check "a FASTA that ends before the database does: exit 1, database untouched" "[ $? -eq 1 ] && grep -q 'ends after 2 valid records' '$T/err' && still_intact"
"$PDR" makedb "$T/t4.fa" "$T/db" "${common[@]}" --fp16 2>"$T/err"
check "makedb --fp16 over a float32 database: exit 1, says --fp16, untouched" "[ $? -eq 1 ] && grep -q -- '--fp16' '$T/err' && still_intact"
# the other model: kmer3, or the shipped CNN where the default is kmer3 (valgrind runs set
# PDR_MODEL=kmer3); the check refuses before any embedding
other=kmer3
"$PDR" version 2>/dev/null | grep -q 'NON-LEARNED' && other=$DATA/pdr_cnn_v1.h5
"$PDR" makedb "$T/t4.fa" "$T/db" "${common[@]}" --model "$other" 2>"$T/err"
check "makedb with another model: exit 1, says so, untouched" "[ $? -eq 1 ] && grep -q 'model' '$T/err' && still_intact"
# a stream (stdin, a pipe) is copied into DBDIR first and checked as a file is; the copy goes
cat "$T/first3.fa" | "$PDR" makedb - "$T/db" "${common[@]}" 2>"$T/err"
check "makedb from stdin with another FASTA: exit 1, names the first mismatch, untouched (no copy left)" "[ $? -eq 1 ] && grep -q \"$id5\" '$T/err' && still_intact"
"$PDR" makedb <(cat "$T/chg.fa") "$T/db" "${common[@]}" 2>"$T/err"
check "makedb from a pipe with a stored protein changed: exit 1, untouched" "[ $? -eq 1 ] && grep -q 'the sequence differs' '$T/err' && still_intact"
# a stored protein whose residues changed (same id, same length): the rerun would keep its old
# vector next to the new residues, so it is refused before anything is written
check "  (the changed FASTA differs from t4 in protein $id2 only, same lengths)" "! cmp -s '$T/t4.fa' '$T/chg.fa' && [ \$(wc -c <'$T/t4.fa') -eq \$(wc -c <'$T/chg.fa') ]"
"$PDR" makedb "$T/chg.fa" "$T/db" "${common[@]}" 2>"$T/err"
check "makedb with a stored protein's residues shuffled: exit 1" "[ $? -eq 1 ]"
check "  the message names the store, the record and the id, says the sequence differs and what to do" "grep -q 'db/embeddings.h5' '$T/err' && grep -q \"record 2 ($id2): the sequence differs from the one stored\" '$T/err' && grep -q 'new DBDIR' '$T/err'"
check "  nothing embedded, the database untouched and still searchable" "! grep -q 'embedded' '$T/err' && still_intact"
cat "$T/chg.fa" "$T/n3.fa" >"$T/chgext.fa"
"$PDR" makedb "$T/chgext.fa" "$T/db" "${common[@]}" 2>"$T/err"
check "the same with records added at the end: exit 1, untouched" "[ $? -eq 1 ] && grep -q \"($id2): the sequence differs\" '$T/err' && still_intact"
"$PDR" makedb "$T/chglen.fa" "$T/db" "${common[@]}" 2>"$T/err"
check "a stored protein one residue shorter: exit 1, untouched" "[ $? -eq 1 ] && grep -q \"$id2\" '$T/err' && still_intact"
if [ $segments -eq 1 ]; then
  "$PDR" makedb "$T/t4.fa" "$T/db" "${common[@]}" --segments 2>"$T/err"
  check "makedb --segments over a plain database: exit 1, says --segments, untouched" "[ $? -eq 1 ] && grep -q -- '--segments' '$T/err' && still_intact"
  "$PDR" makedb "$T/t4.fa" "$T/segdb" "${common[@]}" --segments 2>/dev/null
  cp -r "$T/segdb" "$T/segdb.orig"
  "$PDR" makedb "$T/t4.fa" "$T/segdb" "${common[@]}" 2>"$T/err"
  check "makedb without --segments over a segment database: exit 1, untouched" "[ $? -eq 1 ] && grep -q -- '--segments' '$T/err' && diff -r '$T/segdb' '$T/segdb.orig' >/dev/null"
  "$PDR" makedb "$T/first3.fa" "$T/segdb" "${common[@]}" --segments 2>"$T/err"
  check "makedb --segments of another FASTA over a segment database: exit 1, untouched" "[ $? -eq 1 ] && diff -r '$T/segdb' '$T/segdb.orig' >/dev/null"
  "$PDR" makedb "$T/chg.fa" "$T/segdb" "${common[@]}" --segments 2>"$T/err"
  check "makedb --segments with a stored protein's residues shuffled: exit 1, untouched" "[ $? -eq 1 ] && grep -q \"($id2): the sequence differs\" '$T/err' && diff -r '$T/segdb' '$T/segdb.orig' >/dev/null"
  "$PDR" search "$T/segdb" "$Q" "$T/seg.tsv" "${common[@]}" 2>/dev/null
  check "  and it is still searchable" "[ $? -eq 0 ] && [ -s '$T/seg.tsv' ]"
fi
"$PDR" makedb "$T/t4.fa" "$T/db" "${common[@]}" 2>"$T/err"
check "rerun with the same FASTA: exit 0, nothing embedded again" "[ $? -eq 0 ] && grep -q '0 embedded, 4 already stored' '$T/err'"
"$PDR" search "$T/db" "$Q" "$T/again.tsv" "${common[@]}" 2>/dev/null
check "  answers as before" "[ $? -eq 0 ] && cmp -s '$T/ref.tsv' '$T/again.tsv'"
"$PDR" makedb "$T/ext.fa" "$T/db" "${common[@]}" 2>"$T/err"
check "rerun with records added at the end: exit 0, only they are embedded" "[ $? -eq 0 ] && grep -q '3 embedded, 4 already stored' '$T/err'"
"$PDR" search "$T/db" "$Q" "$T/ext.tsv" "${common[@]}" 2>"$T/err"
check "  the extended database answers, with 7 proteins" "[ $? -eq 0 ] && grep -q 'against 7 proteins' '$T/err'"
# resume: an interrupted makedb (its first part written, no store, no calibration) finishes
if [ $have_h5py -eq 1 ]; then
  "$PDR" embed "$T/t4.fa" -o "$T/part.h5" "${common[@]}" 2>/dev/null
  mkdir -p "$T/dbp/embeddings.h5.partial"
  cp "$T/part.h5" "$T/dbp/embeddings.h5.partial/part-000000.h5"
  "$PDR" makedb "$T/ext.fa" "$T/dbp" "${common[@]}" 2>"$T/err"
  check "an interrupted makedb resumes: exit 0, only the rest embedded" "[ $? -eq 0 ] && grep -q '3 embedded, 4 already stored' '$T/err' && [ \"\$(nrows '$T/dbp/embeddings.h5')\" = 7 ]"
  check "  and leaves no partial dir" "[ ! -e '$T/dbp/embeddings.h5.partial' ]"
  mkdir -p "$T/dbq/embeddings.h5.partial"
  cp "$T/part.h5" "$T/dbq/embeddings.h5.partial/part-000000.h5"
  "$PDR" makedb "$T/n3.fa" "$T/dbq" "${common[@]}" 2>"$T/err"
  check "an interrupted makedb rerun with another FASTA: exit 1, its part kept" "[ $? -eq 1 ] && [ -e '$T/dbq/embeddings.h5.partial/part-000000.h5' ]"
fi

# ---- 2. the calibration says which scores it was fitted on
if [ $adjusted -eq 1 ]; then
  check "calibration.txt records background-adjusted scores" "grep -q '^scores	adjusted$' '$T/db.orig/calibration.txt'"
  cp -r "$T/db.orig" "$T/nobg"
  rm "$T/nobg/background.h5"
  "$PDR" search "$T/nobg" "$Q" "$T/nobg.tsv" "${common[@]}" --align 0 2>"$T/err"
  check "background.h5 missing: search refuses (exit 1), naming the file" "[ $? -eq 1 ] && grep -q 'background.h5' '$T/err' && grep -q 'incomplete' '$T/err'"
  cp -r "$T/db.orig" "$T/old"
  sed -i '/^scores	/d' "$T/old/calibration.txt"
  "$PDR" search "$T/old" "$Q" "$T/old.tsv" "${common[@]}" 2>/dev/null
  check "a calibration without the scores line (older pdr) still opens, same answers" "[ $? -eq 0 ] && cmp -s '$T/ref.tsv' '$T/old.tsv'"
  printf 'some_future_key\tvalue\n' >>"$T/old/calibration.txt"
  "$PDR" search "$T/old" "$Q" "$T/old.tsv" "${common[@]}" 2>/dev/null
  check "unknown keys in calibration.txt are skipped" "[ $? -eq 0 ] && cmp -s '$T/ref.tsv' '$T/old.tsv'"
  cp -r "$T/db.orig" "$T/badkind"
  sed -i 's/^scores	adjusted$/scores	sideways/' "$T/badkind/calibration.txt"
  "$PDR" search "$T/badkind" "$Q" "$T/bk.tsv" "${common[@]}" 2>"$T/err"
  check "an unknown score kind is refused" "[ $? -eq 1 ] && grep -q 'scores' '$T/err'"
  "$PDR" makedb "$T/t4.fa" "$T/kdb" --model kmer3 "${common[@]}" 2>/dev/null
  check "a database of a model without background records cosine scores" "grep -q '^scores	cosine$' '$T/kdb/calibration.txt'"
  cp -r "$T/db.orig" "$T/badq"
  # two percentiles out of order (a damaged file): refused, never silently used
  awk -F'\t' -v OFS='\t' '$1=="quantiles"{t=$3; $3=$4; $4=t; if ($3 == $4) $3 = $4 + 0.5} {print}' \
      "$T/db.orig/calibration.txt" >"$T/badq/calibration.txt"
  "$PDR" search "$T/badq" "$Q" "$T/bq.tsv" "${common[@]}" 2>"$T/err"
  check "quantiles out of order in calibration.txt: refused as damaged" "[ $? -eq 1 ] && grep -q 'damaged' '$T/err'"
  cp "$T/db.orig/background.h5" "$T/kdb/"
  "$PDR" search "$T/kdb" "$Q" "$T/k.tsv" "${common[@]}" 2>"$T/err"
  check "cosine calibration with a background.h5 present: refused, naming it" "[ $? -eq 1 ] && grep -q 'background.h5' '$T/err'"
fi

# ---- 3. embed into an existing store keeps its options
"$PDR" embed "$T/t4.fa" -o "$T/r.h5" "${common[@]}" 2>/dev/null
cp "$T/r.h5" "$T/r.orig.h5"
"$PDR" embed "$T/n3.fa" -o "$T/r.h5" "${common[@]}" --fp16 2>"$T/err"
check "embed --fp16 into a float32 store: exit 1, names store and --fp16" "[ $? -eq 1 ] && grep -q 'r.h5' '$T/err' && grep -q -- '--fp16' '$T/err'"
check "  the store is unchanged, no partial dir" "cmp -s '$T/r.h5' '$T/r.orig.h5' && [ ! -e '$T/r.h5.partial' ]"
# a stored protein whose residues changed: the rerun would skip it and keep its old vector
"$PDR" embed "$T/chg.fa" -o "$T/r.h5" "${common[@]}" 2>"$T/err"
check "embed rerun with a stored protein's residues shuffled: exit 1, names store, record and id" "[ $? -eq 1 ] && grep -q \"chg.fa: record 2 ($id2): the sequence differs from the one stored under that id in $T/r.h5\" '$T/err' && grep -q 'new OUT' '$T/err'"
check "  the store is unchanged, no partial dir" "cmp -s '$T/r.h5' '$T/r.orig.h5' && [ ! -e '$T/r.h5.partial' ]"
# new records before the changed one, one part each: refused before any of them is written
cat "$T/n3.fa" "$T/chg.fa" >"$T/newchg.fa"
"$PDR" embed "$T/newchg.fa" -o "$T/r.h5" "${common[@]}" --batch-residues 1 2>"$T/err"
check "  the same after new records: exit 1, none of them embedded, no partial dir" "[ $? -eq 1 ] && grep -q 'record 5 ($id2)' '$T/err' && cmp -s '$T/r.h5' '$T/r.orig.h5' && [ ! -e '$T/r.h5.partial' ]"
"$PDR" embed - -o "$T/r.h5" "${common[@]}" <"$T/chg.fa" 2>"$T/err"
check "  the same from stdin (checked as it is read): exit 1, store unchanged" "[ $? -eq 1 ] && grep -q \"stdin: record 2 ($id2): the sequence differs\" '$T/err' && cmp -s '$T/r.h5' '$T/r.orig.h5'"
"$PDR" embed "$T/chglen.fa" -o "$T/r.h5" "${common[@]}" 2>"$T/err"
check "  a stored protein one residue shorter: exit 1, store unchanged" "[ $? -eq 1 ] && grep -q \"($id2): the sequence differs\" '$T/err' && cmp -s '$T/r.h5' '$T/r.orig.h5'"
# an interrupted run's parts are checked the same way
mkdir -p "$T/rp.h5.partial"
cp "$T/r.orig.h5" "$T/rp.h5.partial/part-000000.h5"
"$PDR" embed "$T/chg.fa" -o "$T/rp.h5" "${common[@]}" 2>"$T/err"
check "  the same over the parts of an interrupted run: exit 1, names the partial dir, part kept" "[ $? -eq 1 ] && grep -q \"($id2): the sequence differs from the one stored under that id in $T/rp.h5.partial/\" '$T/err' && cmp -s '$T/r.orig.h5' '$T/rp.h5.partial/part-000000.h5' && [ ! -e '$T/rp.h5' ]"
"$PDR" embed "$T/ext.fa" -o "$T/rp.h5" "${common[@]}" 2>"$T/err"
check "  and the unchanged FASTA resumes from them: exit 0" "[ $? -eq 0 ] && grep -q '3 embedded, 4 already stored' '$T/err' && [ ! -e '$T/rp.h5.partial' ]"
if [ $have_h5py -eq 1 ]; then
  hashes() { /usr/bin/python3 -c "import h5py, sys; f = h5py.File(sys.argv[1], 'r'); print(' '.join(map(str, f['seq_hash'][:])) if 'seq_hash' in f else 'none')" "$1" 2>/dev/null; }
  check "  every stored protein has its sequence hash, carried through the merge" "[ \"\$(hashes '$T/rp.h5' | wc -w)\" = 7 ] && [ \"\$(hashes '$T/rp.h5' | cut -d' ' -f1-4)\" = \"\$(hashes '$T/r.orig.h5')\" ]"
  # a store written before pdr kept sequence hashes: a rerun checks ids and lengths, as it did
  cp "$T/r.orig.h5" "$T/old.h5"
  /usr/bin/python3 -c "import h5py, sys; f = h5py.File(sys.argv[1], 'r+'); del f['seq_hash']; 'encoder_products' in f.attrs and f.attrs.__delitem__('encoder_products')" "$T/old.h5"
  cp "$T/old.h5" "$T/old.orig.h5"
  "$PDR" embed "$T/t4.fa" -o "$T/old.h5" "${common[@]}" 2>"$T/err"
  check "a store without /seq_hash (older pdr): the same FASTA reruns, exit 0" "[ $? -eq 0 ] && grep -q '0 embedded, 4 already stored' '$T/err' && cmp -s '$T/old.h5' '$T/old.orig.h5'"
  "$PDR" embed "$T/chglen.fa" -o "$T/old.h5" "${common[@]}" 2>"$T/err"
  check "  a stored protein of another length is refused, exit 1" "[ $? -eq 1 ] && grep -q \"($id2): the sequence differs\" '$T/err' && cmp -s '$T/old.h5' '$T/old.orig.h5'"
  "$PDR" embed "$T/ext.fa" -o "$T/old.h5" "${common[@]}" 2>"$T/err"
  check "  an extension works, exit 0, and the store stays without /seq_hash" "[ $? -eq 0 ] && grep -q '3 embedded, 4 already stored' '$T/err' && [ \"\$(nrows '$T/old.h5')\" = 7 ] && [ \"\$(hashes '$T/old.h5')\" = none ]"
  cp -r "$T/db.orig" "$T/olddb"
  /usr/bin/python3 -c "import h5py, sys; del h5py.File(sys.argv[1], 'r+')['seq_hash']" "$T/olddb/embeddings.h5"
  "$PDR" makedb "$T/chglen.fa" "$T/olddb" "${common[@]}" 2>"$T/err"
  check "makedb into a database without /seq_hash: another length refused, exit 1" "[ $? -eq 1 ] && grep -q \"$id2\" '$T/err'"
  "$PDR" makedb "$T/ext.fa" "$T/olddb" "${common[@]}" 2>"$T/err"
  check "  an extension works, exit 0, and the database answers" "[ $? -eq 0 ] && grep -q '3 embedded, 4 already stored' '$T/err' && \"$PDR\" search '$T/olddb' '$Q' - ${common[*]} >/dev/null 2>&1"
  # how the encoder's products ran is recorded per store; a store extended by a run that ran them
  # another way says "mixed" (a small CNN: the tests may run with PDR_MODEL=kmer3, which has none)
  products() { /usr/bin/python3 -c "import h5py, sys; print(h5py.File(sys.argv[1], 'r').attrs.get('encoder_products', 'none'))" "$1" 2>/dev/null; }
  PDR_CNN_PRODUCTS=sgemm "$PDR" embed "$T/t4.fa" -o "$T/k.h5" "${common[@]}" -m "$DATA/test/cnn_tiny.h5" 2>/dev/null
  check "the store records the encoder's products (sgemm)" "[ \"\$(products '$T/k.h5')\" = 'float32 (OpenBLAS sgemm)' ]"
  PDR_CNN_PRODUCTS=sgemm "$PDR" embed "$T/ext.fa" -o "$T/k.h5" "${common[@]}" -m "$DATA/test/cnn_tiny.h5" 2>/dev/null
  check "  an extension the same way keeps it" "[ \"\$(products '$T/k.h5')\" = 'float32 (OpenBLAS sgemm)' ] && [ \"\$(nrows '$T/k.h5')\" = 7 ]"
  if grep -q ' avx2' /proc/cpuinfo && grep -q ' fma' /proc/cpuinfo; then
    PDR_CNN_PRODUCTS=sgemm "$PDR" embed "$T/t4.fa" -o "$T/km.h5" "${common[@]}" -m "$DATA/test/cnn_tiny.h5" 2>/dev/null
    PDR_CNN_PRODUCTS=fma "$PDR" embed "$T/ext.fa" -o "$T/km.h5" "${common[@]}" -m "$DATA/test/cnn_tiny.h5" 2>/dev/null
    check "  an extension by the FMA kernels makes it 'mixed'" "[ \"\$(products '$T/km.h5')\" = mixed ]"
  fi
  /usr/bin/python3 -c "import h5py, sys; h5py.File(sys.argv[1], 'r+').attrs['encoder_products'] = 'x' * 100" "$T/k.h5"
  "$PDR" embed "$T/ext.fa" -o "$T/k.h5" "${common[@]}" -m "$DATA/test/cnn_tiny.h5" 2>"$T/err"
  check "  an encoder_products this pdr cannot take (100 bytes) does not make the store unreadable" "[ $? -eq 0 ] && grep -q '0 embedded, 7 already stored' '$T/err'"
  check "  the store without the attribute (older pdr) extended: still none (not recorded)" "[ \"\$(products '$T/old.h5')\" = none ]"
fi
if [ $segments -eq 1 ]; then
  "$PDR" embed "$T/n3.fa" -o "$T/r.h5" "${common[@]}" --segments 2>"$T/err"
  check "embed --segments into a store without segments: exit 1, says --segments, unchanged" "[ $? -eq 1 ] && grep -q -- '--segments' '$T/err' && cmp -s '$T/r.h5' '$T/r.orig.h5'"
  "$PDR" embed "$T/t4.fa" -o "$T/s.h5" "${common[@]}" --segments 2>/dev/null
  cp "$T/s.h5" "$T/s.orig.h5"
  "$PDR" embed "$T/n3.fa" -o "$T/s.h5" "${common[@]}" --segments --window 80 2>"$T/err"
  check "embed --window 80 into a store of window 100: exit 1, says --window, unchanged" "[ $? -eq 1 ] && grep -q -- '--window 100' '$T/err' && cmp -s '$T/s.h5' '$T/s.orig.h5'"
  "$PDR" embed "$T/n3.fa" -o "$T/s.h5" "${common[@]}" 2>"$T/err"
  check "embed without --segments into a segment store: exit 1, unchanged" "[ $? -eq 1 ] && grep -q -- '--segments' '$T/err' && cmp -s '$T/s.h5' '$T/s.orig.h5'"
  "$PDR" embed "$T/n3.fa" -o "$T/s.h5" "${common[@]}" --segments 2>"$T/err"
  check "embed with the same segment options resumes: exit 0" "[ $? -eq 0 ] && grep -q '3 embedded' '$T/err'"
fi
"$PDR" embed "$T/t4.fa" -o "$T/h.h5" "${common[@]}" --fp16 2>/dev/null
"$PDR" embed "$T/n3.fa" -o "$T/h.h5" "${common[@]}" 2>"$T/err"
check "embed without --fp16 into a float16 store: exit 1" "[ $? -eq 1 ] && grep -q 'float16' '$T/err'"
"$PDR" embed "$T/n3.fa" -o "$T/h.h5" "${common[@]}" --fp16 2>"$T/err"
check "embed with the same --fp16 resumes: exit 0" "[ $? -eq 0 ] && grep -q '3 embedded, 0 already stored' '$T/err'"
"$PDR" embed "$T/n3.fa" -o "$T/r.h5" "${common[@]}" 2>"$T/err"
check "embed with the same options appends: exit 0" "[ $? -eq 0 ] && grep -q '7 proteins in the store' '$T/err'"

# ---- 4. a run whose input cannot be read creates nothing
"$PDR" makedb "$T/nonexistent.fa" "$T/dbx" "${common[@]}" 2>"$T/err"
check "makedb of a missing FASTA: exit 1, no DBDIR created" "[ $? -eq 1 ] && grep -q 'nonexistent.fa' '$T/err' && [ ! -e '$T/dbx' ]"
"$PDR" embed "$T/nonexistent.fa" -o "$T/x.h5" "${common[@]}" 2>"$T/err"
check "embed of a missing FASTA: exit 1, no OUT, no OUT.partial" "[ $? -eq 1 ] && [ ! -e '$T/x.h5' ] && [ ! -e '$T/x.h5.partial' ]"
: >"$T/empty.fa"
"$PDR" embed "$T/empty.fa" -o "$T/y.h5" "${common[@]}" 2>"$T/err"
check "embed of an empty FASTA: exit 1, no OUT, no OUT.partial" "[ $? -eq 1 ] && grep -q 'no valid sequences' '$T/err' && [ ! -e '$T/y.h5' ] && [ ! -e '$T/y.h5.partial' ]"
# a run stopped with records stored keeps them in OUT.partial/ and a rerun resumes from there
{ cat "$T/t2.fa"; printf '>bad\nMK#V\n'; } >"$T/strict.fa"
"$PDR" embed "$T/strict.fa" -o "$T/z.h5" "${common[@]}" --strict --batch-residues 1 2>"$T/err"
check "embed --strict stopped after records were stored: exit 1, OUT.partial kept" "[ $? -eq 1 ] && ls '$T/z.h5.partial'/part-*.h5 >/dev/null 2>&1"
"$PDR" embed "$T/strict.fa" -o "$T/z.h5" "${common[@]}" 2>"$T/err"
check "  the rerun resumes from it: exit 0, 2 already stored, no partial dir" "[ $? -eq 0 ] && grep -q '0 embedded, 2 already stored' '$T/err' && [ ! -e '$T/z.h5.partial' ]"

# ---- 5. --index is checked before embedding
"$PDR" makedb "$T/ext.fa" "$T/dbi" "${common[@]}" --index Bogus 2>"$T/err"
check "makedb --index Bogus: usage error (exit 2) naming it, before embedding" "[ $? -eq 2 ] && grep -q 'Bogus' '$T/err' && ! grep -q 'embedded' '$T/err' && [ ! -e '$T/dbi' ]"

# ---- 6. DBDIR that is a file
echo keep >"$T/afile"
"$PDR" makedb "$T/t4.fa" "$T/afile" "${common[@]}" 2>"$T/err"
check "makedb into a regular file: exit 1, says it is not a directory, file kept" "[ $? -eq 1 ] && grep -q 'exists and is not a directory' '$T/err' && [ \"\$(cat '$T/afile')\" = keep ]"

# ---- 6b. one makedb at a time per DBDIR: a second one while the first runs is refused at once
# (it would remove the calibration the first just wrote); the first is unharmed. The first
# reads its targets from a pipe held open, so it is surely still running.
k6=(--model kmer3 --threads 1)
( cat "$DATA/test/small.fasta"; sleep "${PDR_UNDER_VALGRIND:+1}4" ) | "$PDR" makedb - "$T/lock6" "${k6[@]}" 2>"$T/lock6a.err" &
lock_pid=$!
for _ in $(seq 1 100); do [ -e "$T/lock6/makedb.lock" ] && break; sleep 0.1; done
"$PDR" makedb "$DATA/test/small.fasta" "$T/lock6" "${k6[@]}" 2>"$T/err"
check "a second makedb into a DBDIR being made: exit 1, says another run is writing it" "[ $? -eq 1 ] && grep -q 'another pdr run is writing it' '$T/err'"
wait "$lock_pid"
check "the first makedb finishes, its database searchable, no lock file left" "[ $? -eq 0 ] && \"$PDR\" search '$T/lock6' '$Q' - -k 1 >/dev/null 2>&1 && [ ! -e '$T/lock6/makedb.lock' ]"

# ---- 7. a resume whose parts have gaps (a part lost, or OUT removed after its merge) keeps every
# protein once, in input order, and never overwrites a part; invalid input fails over an OUT
# (kmer3: cheap under valgrind; the resume logic is the same for every model)
km=(--model kmer3 --threads 1 --batch-residues 20000)
cp "$DATA/demo/targets.fasta" "$T/all.fa"
printf '>zz_bad\nMK1V\n' >>"$T/all.fa"
"$PDR" embed "$T/all.fa" -o "$T/ref7.h5" "${km[@]}" 2>/dev/null
"$PDR" embed "$T/all.fa" -o "$T/gap.h5" "${km[@]}" --strict 2>/dev/null
nparts=$(ls "$T/gap.h5.partial" 2>/dev/null | grep -c '^part-.*\.h5$')
check "a --strict stop leaves parts to resume from ($nparts)" "[ $nparts -ge 6 ]"
rm -f "$T/gap.h5.partial/part-000000.h5" "$T/gap.h5.partial/part-000001.h5" "$T/gap.h5.partial/part-000004.h5"
"$PDR" embed "$T/all.fa" -o "$T/gap.h5" "${km[@]}" 2>"$T/err"
check "resume over parts with gaps: exit 0" "[ $? -eq 0 ]"
if [ $have_h5py -eq 1 ]; then
  same7=$(/usr/bin/python3 -c "
import h5py, numpy as np, sys
a, b = h5py.File(sys.argv[1], 'r'), h5py.File(sys.argv[2], 'r')
print(int(list(a['ids'].asstr()[:]) == list(b['ids'].asstr()[:]) and np.array_equal(a['embeddings'][:], b['embeddings'][:])))
" "$T/ref7.h5" "$T/gap.h5" 2>/dev/null)
  check "  the store equals an uninterrupted run's: every protein once, in input order" "[ '$same7' = 1 ]"
fi
cp "$T/ref7.h5" "$T/keep7.h5"
: >"$T/empty7.fa"
"$PDR" embed "$T/empty7.fa" -o "$T/ref7.h5" "${km[@]}" 2>"$T/err"
check "an empty input over an existing OUT: exit 1, OUT unchanged" "[ $? -eq 1 ] && grep -q 'no valid sequences' '$T/err' && cmp -s '$T/ref7.h5' '$T/keep7.h5'"
printf '>a\nMK1T\n>a\nMKTA\n>b\nMKT\n' >"$T/dup7.fa"
"$PDR" embed "$T/dup7.fa" -o "$T/dup7.h5" "${km[@]}" 2>/dev/null
check "an invalid record takes no id: the valid 'a' after it is stored" "[ $? -eq 0 ] && [ \"\$(nrows '$T/dup7.h5')\" = 2 ]"

# ---- 7b. a query's hits do not depend on the other queries searched with it (a pipeline splits
# its FASTA into chunks): 200 demo proteins as queries, in order and reversed, and one alone,
# give the same lines to the last digit (they differed: BLAS products over the batch rounded by
# a query's place in it). Plain database; segment databases in e2e_cli.sh.
"$PDR" makedb "$DATA/demo/targets.fasta" "$T/inv" "${common[@]}" 2>/dev/null
awk '/^>/{n++} n<=200' "$DATA/demo/targets.fasta" >"$T/q200.fa"
awk '/^>/{if (s) print s; s=$0 "\t"; next} {s=s $0} END{print s}' "$T/q200.fa" | tac | tr '\t' '\n' >"$T/q200r.fa"
awk '/^>/{n++} n==3' "$DATA/demo/targets.fasta" >"$T/q1.fa"
q1=$(head -1 "$T/q1.fa" | cut -c2- | cut -d' ' -f1)
"$PDR" search "$T/inv" "$T/q200.fa" "$T/inv1.tsv" --align 0 "${common[@]}" 2>/dev/null
"$PDR" search "$T/inv" "$T/q200r.fa" "$T/inv2.tsv" --align 0 "${common[@]}" 2>/dev/null
"$PDR" search "$T/inv" "$T/q1.fa" "$T/inv3.tsv" --align 0 "${common[@]}" 2>/dev/null
check "200 queries in order and reversed: the same hits and scores per query" "[ -s '$T/inv1.tsv' ] && cmp -s <(sort '$T/inv1.tsv') <(sort '$T/inv2.tsv')"
check "a query alone: the same lines as in the batch of 200" "[ -s '$T/inv3.tsv' ] && cmp -s <(grep \"^\$q1	\" '$T/inv1.tsv') '$T/inv3.tsv'"

# ---- 8. approximate indexes: --nprobe past the IVF's lists, a tuning that misses its target,
# and an HNSW graph asked for more hits than its tuned breadth (not under valgrind: training
# PQ codes and tuning on 1,000 queries there take many minutes; the index code is FAISS's and
# pdr's thin layer, which the Release and sanitizer runs cover)
if [ -n "${PDR_UNDER_VALGRIND:-}" ]; then
  echo "$pass passed, $fail failed (section 8 skipped under valgrind)"
  [ "$fail" -eq 0 ]
  exit
fi
kq=(--model kmer3 --threads 1)
"$PDR" makedb "$DATA/demo/targets.fasta" "$T/ivf" --index IVF32,Flat "${kq[@]}" 2>/dev/null
"$PDR" search "$T/ivf" "$Q" "$T/np32.tsv" -k 3 --align 0 --nprobe 32 "${kq[@]}" 2>/dev/null
"$PDR" search "$T/ivf" "$Q" "$T/np256.tsv" -k 3 --align 0 --nprobe 256 "${kq[@]}" 2>/dev/null
check "IVF32: --nprobe 256 gives every query its hits, as --nprobe 32 (all lists)" "[ \$(wc -l <'$T/np256.tsv') -eq 9 ] && cmp -s '$T/np32.tsv' '$T/np256.tsv'"
# --align all on an IVF database aligns every protein (it took only what the probed lists held)
n_demo=$(grep -c '^>' "$DATA/demo/targets.fasta")
"$PDR" search "$T/ivf" "$Q" "$T/ivfall.tsv" -k 5000 --align all --nprobe 2 "${kq[@]}" 2>/dev/null
check "IVF32 --align all (nprobe 2): every query gets all $n_demo proteins" "[ \$(wc -l <'$T/ivfall.tsv') -eq \$((3 * n_demo)) ] && [ \$(cut -f1 '$T/ivfall.tsv' | sort | uniq -c | awk '{print \$1}' | sort -u) = $n_demo ]"
# batch invariance on an IVF database (section 7b for Flat): the coarse step was one product
# over batches of up to 19 queries and FAISS's own loop past them
"$PDR" makedb "$DATA/demo/targets.fasta" "$T/ivfsq" --index IVF16,SQ8 "${kq[@]}" 2>/dev/null
awk '/^>/{n++} n<=300' "$DATA/demo/targets.fasta" >"$T/q300.fa"
"$PDR" search "$T/ivfsq" "$T/q300.fa" "$T/ivb1.tsv" --align 0 -k 20 "${kq[@]}" 2>/dev/null
: >"$T/ivb2.tsv"
for i in $(seq 0 9 299); do   # chunks of 9 (the old product's side of the switch)
    awk -v a="$i" '/^>/{n++} n>a && n<=a+9' "$T/q300.fa" >"$T/qchunk.fa"
    "$PDR" search "$T/ivfsq" "$T/qchunk.fa" - --align 0 -k 20 "${kq[@]}" 2>/dev/null >>"$T/ivb2.tsv"
done
check "IVF16,SQ8: 300 queries in one batch and in chunks of 9 give the same lines" "[ -s '$T/ivb1.tsv' ] && cmp -s <(sort '$T/ivb1.tsv') <(sort '$T/ivb2.tsv')"
"$PDR" makedb "$DATA/demo/targets.fasta" "$T/pq" --index IVF8,PQ4 "${kq[@]}" 2>"$T/err"
check "a tuning that cannot reach recall 0.95 says so and saves at most nlist" "grep -q 'warning: recall@10 stays below' '$T/err' && grep -q 'nprobe 8:' '$T/err'"
"$PDR" makedb "$DATA/demo/targets.fasta" "$T/hnsw" --index HNSW32 "${kq[@]}" 2>/dev/null
"$PDR" search "$T/hnsw" "$Q" "$T/h.tsv" -k 200 --align 0 "${kq[@]}" 2>/dev/null
check "HNSW: -k 200 gives 200 hits per query" "[ \$(wc -l <'$T/h.tsv') -eq 600 ]"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
