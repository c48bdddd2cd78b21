#!/usr/bin/env bash
# e2e_cli.sh: the real pdr binary on real files: easy-search, embed (and its resume), makedb,
# search (TSV and JSON), usage and runtime errors with their exit codes.
# Env: PDR (binary), PDR_DATA (data dir), PDR_TMP (scratch). Ends with "N passed, N failed".
set -u
PDR=${PDR:-build/pdr}
DATA=${PDR_DATA:-data}
T=$(mktemp -d "${PDR_TMP:-/tmp}/e2e_cli.XXXXXX")
trap 'rm -rf "$T"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
check() { if eval "$2"; then ok; else bad "$1"; fi; }

small=$DATA/test/small.fasta
n_small=$(grep -c '^>' "$small")

# --- easy-search: every query finds itself first, TSV has 9 columns, sorted by E-value
"$PDR" easy-search "$small" "$small" "$T/hits.tsv" -k 5 --threads 2 2>"$T/err"
check "easy-search exits 0" "[ $? -eq 0 ]"
check "easy-search writes k hits per query" "[ \$(wc -l <'$T/hits.tsv') -eq $((n_small * 5)) ]"
check "9 tab-separated columns" "awk -F'\t' 'NF!=9{exit 1}' '$T/hits.tsv'"
check "E-values ascend within a query" "awk -F'\t' '\$1==q && \$4<prev{exit 1}{q=\$1;prev=\$4}' '$T/hits.tsv'"
check "every hit aligned (k <= 50, the default --align): bits are numbers" "awk -F'\t' '\$9!~/^[0-9]+[.][0-9]\$/{exit 1}' '$T/hits.tsv'"
"$PDR" easy-search "$small" "$small" "$T/hits2.tsv" -k 5 --align 2 --threads 2 2>"$T/err"
check "--align 2: two hits per query aligned, the rest '-'" "[ $? -eq 0 ] && awk -F'\t' '{n[\$1]+=(\$9!=\"-\")} END{for(q in n) if(n[q]!=2) exit 1}' '$T/hits2.tsv'"
"$PDR" easy-search "$small" "$small" "$T/hits0.tsv" -k 5 --align 0 --threads 2 2>"$T/err"
check "--align 0: no bits, hits as the embedding ranks them" "[ $? -eq 0 ] && awk -F'\t' '\$9!=\"-\"{exit 1}' '$T/hits0.tsv'"
# --align all: every database protein aligned (the same as any N at or above the database size)
"$PDR" easy-search "$small" "$small" "$T/hits_all.tsv" -k $n_small --align all --threads 2 2>"$T/err"
check "--align all: all $n_small hits of every query aligned" "[ $? -eq 0 ] && [ \$(wc -l <'$T/hits_all.tsv') -eq $((n_small * n_small)) ] && awk -F'\t' '\$9!~/^[0-9]+[.][0-9]\$/{exit 1}' '$T/hits_all.tsv'"
"$PDR" easy-search "$small" "$small" "$T/hits_n.tsv" -k $n_small --align $n_small --threads 2 2>/dev/null
check "--align all equals --align <database size>" "cmp -s '$T/hits_all.tsv' '$T/hits_n.tsv'"
"$PDR" easy-search "$small" "$small" - --align most >/dev/null 2>"$T/err"
check "--align most is a usage error naming the option and 'all'" "[ $? -eq 2 ] && grep -q -- '--align' '$T/err' && grep -q \"'all'\" '$T/err'"
# a store of a few proteins is not a whole 1 MiB chunk of /embeddings (chunks are cut to the
# rows written: parts of small batches and small stores stay small)
"$PDR" embed "$small" -o "$T/small_store.h5" --batch-residues 500 2>/dev/null
check "embed of $n_small proteins: a store under 200 KB" "[ \$(stat -c %s '$T/small_store.h5') -lt 204800 ]"
"$PDR" embed "$small" -o "$T/w.h5" --window 30 2>"$T/err"
check "embed --window without --segments is a usage error, nothing written" "[ $? -eq 2 ] && grep -q -- '--segments' '$T/err' && [ ! -e '$T/w.h5' ]"
"$PDR" embed "$small" -o "$T/w.h5" --segments --window 10 --stride 20 2>"$T/err"
check "embed --stride larger than --window is a usage error (residues in no window), nothing written" "[ $? -eq 2 ] && grep -q -- 'larger than --window' '$T/err' && [ ! -e '$T/w.h5' ]"
"$PDR" embed "$small" -o "$T/w.h5" --segments --stride 1000 2>"$T/err"
check "  also against the default window 100" "[ $? -eq 2 ] && grep -q -- '--window 100' '$T/err'"
check "each query's rank-1 hit is itself" "awk -F'\t' '\$5==1 && \$1!=\$2{exit 1}' '$T/hits.tsv'"
check "self cosine is 1" "awk -F'\t' '\$5==1 && (\$8<0.999){exit 1}' '$T/hits.tsv'"
# with a model background (the default model has one), score = cosine - mean level: the self
# score is 1 minus the query's level, below 1; without one (kmer3), score = cosine
if "$PDR" version 2>/dev/null | grep -q 'scores: background-adjusted'; then
    check "adjusted: self score below its cosine" "awk -F'\t' '\$5==1 && !(\$3<\$8){exit 1}' '$T/hits.tsv'"
else
    check "plain: score equals cosine" "awk -F'\t' '\$3!=\$8{exit 1}' '$T/hits.tsv'"
fi
check "without alignment scores descend within a query" "awk -F'\t' '\$1==q && \$3>prev+1e-9{exit 1}{q=\$1;prev=\$3}' '$T/hits0.tsv'"
check "ranks run 1..k" "awk -F'\t' '\$1!=q{r=0}{r++; if(\$5!=r) exit 1; q=\$1}' '$T/hits.tsv'"
check "no temp dir left behind" "[ -z \"\$(ls -d \${TMPDIR:-/tmp}/pdr-easy-* 2>/dev/null | head -1)\" ] || true"

# --- embed: store, then a rerun skips everything already stored
"$PDR" embed "$small" -o "$T/s.h5" 2>"$T/err"
check "embed exits 0" "[ $? -eq 0 ]"
check "embed summary line" "grep -q '$n_small embedded' '$T/err'"
"$PDR" embed "$small" -o "$T/s.h5" 2>"$T/err"
check "rerun skips stored ids" "grep -q '0 embedded, $n_small already stored' '$T/err'"
check "no partial dir after success" "[ ! -e '$T/s.h5.partial' ]"
# extra record appended: only it is embedded on rerun
{ cat "$small"; printf '>extra_1 added later\nMKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQAPILSRVGDGTQDNLSGAEKAVQVKVKALPDAQ\n'; } >"$T/more.fasta"
"$PDR" embed "$T/more.fasta" -o "$T/s.h5" 2>"$T/err"
check "rerun with one new record embeds one" "grep -q '1 embedded, $n_small already stored' '$T/err'"
check "store now holds n+1" "grep -q '$((n_small + 1)) proteins in the store' '$T/err'"

# --- invalid records: reported with record number and id, skipped; --strict makes them fatal
printf '>good1\nMKVLAAGIVGLLLAQ\n>bad1 has a digit\nMKV1LA\n>empty1\n>good2\nACDEFGHIKLMNPQRSTVWY\n' >"$T/mixed.fasta"
"$PDR" embed "$T/mixed.fasta" -o "$T/m.h5" 2>"$T/err"
check "mixed input exits 0" "[ $? -eq 0 ]"
check "bad record named in message" "grep -q 'bad1' '$T/err' && grep -q 'record 2' '$T/err'"
check "empty record named" "grep -q 'empty1' '$T/err'"
check "2 invalid counted" "grep -q '2 invalid skipped' '$T/err'"
"$PDR" embed "$T/mixed.fasta" -o "$T/m2.h5" --strict 2>"$T/err"
check "--strict exits 1" "[ $? -eq 1 ]"
check "--strict leaves no output" "[ ! -e '$T/m2.h5' ]"

# --- makedb + search, TSV and JSON, filters
"$PDR" makedb "$small" "$T/db" 2>"$T/err"
check "makedb exits 0" "[ $? -eq 0 ]"
check "makedb writes store, index, calibration, sequences" "[ -s '$T/db/embeddings.h5' ] && [ -s '$T/db/index.faiss' ] && [ -s '$T/db/calibration.txt' ] && [ -s '$T/db/sequences.h5' ]"
if "$PDR" version 2>/dev/null | grep -q 'scores: background-adjusted'; then
    check "makedb writes background levels" "[ -s '$T/db/background.h5' ]"
else
    check "no background levels without a model background" "[ ! -e '$T/db/background.h5' ]"
fi
"$PDR" search "$T/db" "$small" "$T/s.tsv" -k 3 2>"$T/err"
check "search exits 0" "[ $? -eq 0 ]"
check "search gives same top hits as easy-search" "[ \"\$(awk '\$5==1' '$T/s.tsv' | cut -f1,2)\" = \"\$(awk '\$5==1' '$T/hits.tsv' | cut -f1,2)\" ]"
"$PDR" search "$T/db" "$small" - -k 2 --format json >"$T/s.json" 2>"$T/err"
check "json output parses" "/usr/bin/python3 -c 'import json,sys; d=json.load(open(\"$T/s.json\")); assert len(d[\"results\"])==$n_small; assert all(r[\"hits\"][0][\"target\"]==r[\"query\"] and r[\"hits\"][0][\"bits\"]>20 for r in d[\"results\"])' 2>/dev/null || { command -v /usr/bin/python3 >/dev/null || true; grep -q '\"results\"' '$T/s.json'; }"
# descriptions: JSON hits carry each target's FASTA description (the header after the id)
check "json: each hit's description is its target's FASTA header after the id" "/usr/bin/python3 - '$small' '$T/s.json' <<'PY'
import json, sys
desc = {}
for line in open(sys.argv[1]):
    if line.startswith('>'):
        head = line[1:].strip().split(None, 1)
        desc[head[0]] = head[1].strip() if len(head) > 1 else ''
hits = [h for r in json.load(open(sys.argv[2]))['results'] for h in r['hits']]
assert hits and all(h['description'] == desc[h['target']] for h in hits), hits[:2]
assert any(h['description'] for h in hits)
PY"
check "tsv: still 9 columns (no description)" "awk -F'\t' 'NF!=9{exit 1}' '$T/s.tsv'"
cp -r "$T/db" "$T/db_nodesc"
/usr/bin/python3 -c "import h5py, sys; f = h5py.File(sys.argv[1], 'r+'); del f['desc']; del f['desc_offsets']" "$T/db_nodesc/sequences.h5" 2>/dev/null
"$PDR" search "$T/db_nodesc" "$small" - -k 2 --format json >"$T/nodesc.json" 2>"$T/err"
check "a database made before descriptions: json without them, exit 0" "[ $? -eq 0 ] && grep -q '\"bits\"' '$T/nodesc.json' && ! grep -q '\"description\"' '$T/nodesc.json'"
cp -r "$T/db" "$T/db_baddesc"
/usr/bin/python3 -c "import h5py, sys; f = h5py.File(sys.argv[1], 'r+'); f['desc_offsets'][1] = 10**9" "$T/db_baddesc/sequences.h5" 2>/dev/null
"$PDR" search "$T/db_baddesc" "$small" - -k 2 --format json >/dev/null 2>"$T/err"
check "damaged /desc_offsets: refused at open, exit 1, names them" "[ $? -eq 1 ] && grep -q 'desc_offsets' '$T/err'"
# --min-score at the smallest self-hit score: every self hit stays, and only hits that good
smin=$(awk -F'\t' '$5==1 && (m=="" || $3<m){m=$3} END{printf "%.4f", m - 0.0001}' "$T/s.tsv")
"$PDR" search "$T/db" "$small" - -k 5 --min-score "$smin" >"$T/min.tsv" 2>"$T/err"
check "--min-score keeps the self hits and nothing below S" "[ \$(awk -F'\t' '\$5==1' '$T/min.tsv' | wc -l) -eq $n_small ] && awk -F'\t' -v s=$smin '\$3<s{exit 1}' '$T/min.tsv'"
# -e at the largest self-hit E-value: every self hit stays, nothing weaker than it
emax=$(awk -F'\t' '$5==1 && $4>m{m=$4} END{printf "%g", m * 1.01}' "$T/s.tsv")  # printed E-values are rounded
"$PDR" search "$T/db" "$small" - -k 5 -e "$emax" >"$T/ev.tsv" 2>"$T/err"
check "-e filter keeps only hits at or below E" "awk -F'\t' -v e=$emax '\$4>e*1.0001{exit 1}' '$T/ev.tsv' && [ \$(awk -F'\t' '\$5==1' '$T/ev.tsv' | wc -l) -eq $n_small ]"
# --- segment databases (local homology): only with a model that has a segment background
if "$PDR" version 2>/dev/null | grep -q 'segment databases (--segments): available'; then
    "$PDR" makedb "$small" "$T/segdb" --segments 2>"$T/err"
    check "makedb --segments exits 0" "[ $? -eq 0 ]"
    check "segment levels written" "/usr/bin/python3 -c 'import h5py,sys; f=h5py.File(sys.argv[1]); assert f[\"segment_levels\"].shape[0] >= $n_small; assert f.attrs[\"segment_window\"] == 100' '$T/segdb/background.h5'"
    "$PDR" search "$T/segdb" "$small" "$T/seg.tsv" -k 4 2>"$T/err"
    check "search a segment database" "[ $? -eq 0 ] && [ \$(wc -l <'$T/seg.tsv') -eq $((n_small * 4)) ] && awk -F'\t' 'NF!=9{exit 1}' '$T/seg.tsv'"
    check "segment hits: E-values ascend" "awk -F'\t' '\$1==q && \$4<prev{exit 1}{q=\$1;prev=\$4}' '$T/seg.tsv'"
    check "segment scores differ from whole-protein scores" "! cmp -s <(cut -f1-3 '$T/seg.tsv') <(\"$PDR\" search '$T/db' '$small' - -k 4 2>/dev/null | cut -f1-3)"
    "$PDR" makedb "$small" "$T/segivf" --segments --index IVF4,Flat 2>"$T/err"
    check "makedb --segments --index IVF...: usage error (the search is exhaustive), nothing made" "[ $? -eq 2 ] && grep -q 'searches exhaustively' '$T/err' && [ ! -e '$T/segivf' ]"
    # easy-search all-vs-all takes the queries' vectors and segments from the database itself:
    # the same hits and scores as embedding them
    "$PDR" easy-search "$small" "$small" "$T/eseg.tsv" -k 4 --segments 2>"$T/err"
    check "easy-search --segments = makedb --segments + search" "[ $? -eq 0 ] && cmp -s <(cut -f1-3,5-8 '$T/eseg.tsv') <(cut -f1-3,5-8 '$T/seg.tsv')"
    # a query's segment hits do not depend on the other queries of its batch (e2e_db.sh 7b for
    # plain databases): 200 demo proteins against a segment database of 300, in order and reversed
    awk '/^>/{n++} n<=300' "$DATA/demo/targets.fasta" >"$T/t300.fa"
    awk '/^>/{n++} n<=200' "$DATA/demo/targets.fasta" >"$T/q200.fa"
    awk '/^>/{if (s) print s; s=$0 "\t"; next} {s=s $0} END{print s}' "$T/q200.fa" | tac | tr '\t' '\n' >"$T/q200r.fa"
    "$PDR" makedb "$T/t300.fa" "$T/seg300" --segments 2>/dev/null
    "$PDR" search "$T/seg300" "$T/q200.fa" "$T/sinv1.tsv" --align 0 2>/dev/null
    "$PDR" search "$T/seg300" "$T/q200r.fa" "$T/sinv2.tsv" --align 0 2>/dev/null
    check "segment database: 200 queries in order and reversed give the same hits and scores" "[ -s '$T/sinv1.tsv' ] && cmp -s <(sort '$T/sinv1.tsv') <(sort '$T/sinv2.tsv')"
    # a segment database searches its own copy of the vectors: index.faiss is checked by its
    # header (rows, dim) but not loaded (it held every vector a second time); so one cut after
    # FAISS's 37-byte header searches the same, in every format, and one of other rows is refused
    mkdir "$T/cut" && cp -r "$T/segdb" "$T/cut/"  # same name: JSON names the database
    head -c 37 "$T/segdb/index.faiss" >"$T/cut/segdb/index.faiss"
    "$PDR" search "$T/cut/segdb" "$small" "$T/segcut.tsv" -k 4 2>"$T/err"
    check "segment database with index.faiss cut after its header: the same hits" "[ $? -eq 0 ] && cmp -s '$T/segcut.tsv' '$T/seg.tsv'"
    "$PDR" search "$T/segdb" "$small" "$T/segj1.json" -k 4 --format json 2>/dev/null
    "$PDR" search "$T/cut/segdb" "$small" "$T/segj2.json" -k 4 --format json 2>/dev/null
    "$PDR" search "$T/segdb" "$small" "$T/segb1.tsv" -k 4 --format blast6 2>/dev/null
    "$PDR" search "$T/cut/segdb" "$small" "$T/segb2.tsv" -k 4 --format blast6 2>/dev/null
    check "... and the same JSON and blast6" "[ -s '$T/segj1.json' ] && cmp -s '$T/segj1.json' '$T/segj2.json' && [ -s '$T/segb1.tsv' ] && cmp -s '$T/segb1.tsv' '$T/segb2.tsv'"
    cp "$T/seg300/index.faiss" "$T/cut/segdb/index.faiss"
    "$PDR" search "$T/cut/segdb" "$small" - -k 2 >/dev/null 2>"$T/err"
    check "a segment database whose index.faiss has other rows is refused, naming both counts" "[ $? -eq 1 ] && grep -q 'index has 300 rows of dim 256 but the store has $n_small' '$T/err'"
    rm "$T/cut/segdb/index.faiss"
    "$PDR" search "$T/cut/segdb" "$small" - -k 2 >/dev/null 2>"$T/err"
    check "a segment database without index.faiss is refused, naming it" "[ $? -eq 1 ] && grep -q 'index.faiss' '$T/err'"
    cp -r "$T/segdb" "$T/segnolev"
    /usr/bin/python3 -c 'import h5py,sys; f=h5py.File(sys.argv[1], "r+"); del f["segment_levels"]' "$T/segnolev/background.h5"
    "$PDR" search "$T/segnolev" "$small" - -k 2 >/dev/null 2>"$T/err"
    check "a segment database that lost its segment levels is refused (not searched as a plain one)" "[ $? -eq 1 ] && grep -q 'no segment_levels' '$T/err'"
    cp -r "$T/segdb" "$T/segneg"
    /usr/bin/python3 -c 'import h5py,sys; f=h5py.File(sys.argv[1], "r+"); f["segments/protein"][0] = -1' "$T/segneg/embeddings.h5"
    "$PDR" search "$T/segneg" "$small" - -k 2 >/dev/null 2>"$T/err"
    check "a segment store whose first segment belongs to protein -1 is refused (it wrote before its buffer)" "[ $? -eq 1 ] && grep -q 'segment 0 belongs to protein -1' '$T/err'"
else
    "$PDR" makedb "$small" "$T/segdb" --segments 2>"$T/err"
    check "makedb --segments without a segment background: exit 1, says so" "[ $? -eq 1 ] && grep -q 'no background of segment windows' '$T/err'"
fi
# --- query expansion (makedb --expand): needs a model background (the default model has one)
# families: each small.fasta protein and 3 copies with 15% of residues substituted (fixed seed),
# so that every protein has homologs to be moved towards
awk 'BEGIN{srand(11); aa="ACDEFGHIKLMNPQRSTVWY"} /^>/{id=substr($1,2); next} {seq[id]=seq[id] $0}
     END{for (id in seq) {print ">" id; print seq[id]; for (c=1; c<=3; c++) {s=""; n=length(seq[id])
         for (i=1; i<=n; i++) s=s (rand()<0.15 ? substr(aa,int(rand()*20)+1,1) : substr(seq[id],i,1))
         print ">" id "_v" c; print s}}}' "$small" >"$T/fam.fasta"
fam=$T/fam.fasta
n_fam=$(grep -c '^>' "$fam")
if "$PDR" version 2>/dev/null | grep -q 'scores: background-adjusted'; then
    "$PDR" makedb "$fam" "$T/fdb" 2>"$T/err"
    check "makedb of the families" "[ $? -eq 0 ]"
    "$PDR" makedb "$fam" "$T/xdb" --expand 2>"$T/err"
    check "makedb --expand exits 0 and writes the expansion" "[ $? -eq 0 ] && [ -s '$T/xdb/expansion.h5' ] && [ -s '$T/xdb/index_expanded.faiss' ] && [ -s '$T/xdb/calibration_expanded.txt' ] && grep -q 'expanded $n_fam proteins' '$T/err'"
    check "expansion.h5: original vectors = the store's, expanded ones unit length and moved" "/usr/bin/python3 -c '
import h5py, numpy as np, sys
x = h5py.File(sys.argv[1]); e = h5py.File(sys.argv[2])
o, v = x[\"original\"][:], x[\"expanded\"][:]
assert np.array_equal(o, e[\"embeddings\"][:].astype(np.float32))
assert np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-4) and x[\"levels\"].shape == (len(o),)
assert (np.abs(v - o).max(axis=1) > 1e-3).sum() > len(o) // 2 and x.attrs[\"neighbours\"] == 3
' '$T/xdb/expansion.h5' '$T/xdb/embeddings.h5'"
    # copies of a protein are skipped as neighbours on the exact cosine, whatever the index, and
    # however many copies there are (once: only the first 5 looked at, the codes' cosine used)
    "$PDR" makedb "$fam" "$T/xsq" --expand --index SQ8 >/dev/null 2>"$T/err"
    check "makedb --expand --index SQ8: the same expansion as Flat (copies judged on exact vectors)" "[ $? -eq 0 ] && /usr/bin/python3 -c '
import h5py, numpy as np, sys
a, b = h5py.File(sys.argv[1])[\"expanded\"][:], h5py.File(sys.argv[2])[\"expanded\"][:]
assert np.abs(a - b).max() < 1e-3, np.abs(a - b).max(axis=1)
' '$T/xdb/expansion.h5' '$T/xsq/expansion.h5'"
    awk 'NR<=2{h[NR]=$0} {print} END{for (c=1; c<=9; c++) {print h[1] "_copy" c; print h[2]}}' "$fam" >"$T/famc.fasta"
    "$PDR" makedb "$T/famc.fasta" "$T/xcp" --expand >/dev/null 2>"$T/err"
    check "a protein with 9 identical copies is still expanded (and so are its copies)" "[ $? -eq 0 ] && /usr/bin/python3 -c '
import h5py, numpy as np, sys
x = h5py.File(sys.argv[1]); o, v = x[\"original\"][:], x[\"expanded\"][:]
moved = np.abs(v - o).max(axis=1) > 1e-3
assert moved[0] and moved[-9:].all(), moved
' '$T/xcp/expansion.h5'"
    "$PDR" search "$T/xdb" "$fam" "$T/x.tsv" -k 4 --align 0 2>"$T/err"
    check "expanded search: every query finds itself first" "[ $? -eq 0 ] && [ \$(wc -l <'$T/x.tsv') -eq $((n_fam * 4)) ] && awk -F'\t' '\$5==1 && \$1!=\$2{exit 1}' '$T/x.tsv'"
    "$PDR" search "$T/xdb" "$fam" "$T/nx.tsv" -k 4 --align 0 --no-expand 2>"$T/err"
    check "--no-expand gives the plain database's hits" "[ $? -eq 0 ] && cmp -s '$T/nx.tsv' <(\"$PDR\" search '$T/fdb' '$fam' - -k 4 --align 0 2>/dev/null)"
    check "expanded scores differ from plain ones" "! cmp -s <(cut -f1-3 '$T/x.tsv') <(cut -f1-3 '$T/nx.tsv')"
    "$PDR" easy-search "$fam" "$fam" "$T/ex.tsv" -k 4 --align 0 --expand 2>"$T/err"
    check "easy-search --expand = makedb --expand + search" "[ $? -eq 0 ] && cmp -s <(cut -f1-3,5-8 '$T/ex.tsv') <(cut -f1-3,5-8 '$T/x.tsv')"
    cp -r "$T/xdb" "$T/xbroken" && rm "$T/xbroken/calibration_expanded.txt"
    "$PDR" search "$T/xbroken" "$fam" - -k 2 >/dev/null 2>"$T/err"
    check "an interrupted expansion is refused, naming the missing file" "[ $? -eq 1 ] && grep -q 'calibration_expanded.txt' '$T/err' && grep -q 'makedb --expand' '$T/err'"
    cp -r "$T/xdb" "$T/xnoexp" && rm "$T/xnoexp/expansion.h5"
    "$PDR" search "$T/xnoexp" "$fam" - -k 2 >/dev/null 2>"$T/err"
    check "an expansion without expansion.h5 is refused (not searched unexpanded)" "[ $? -eq 1 ] && grep -q 'expansion.h5' '$T/err' && grep -q 'makedb --expand' '$T/err'"
    "$PDR" makedb "$fam" "$T/xdb" 2>"$T/err"
    check "makedb without --expand removes a stale expansion" "[ $? -eq 0 ] && [ ! -e '$T/xdb/expansion.h5' ] && [ ! -e '$T/xdb/calibration_expanded.txt' ]"
    "$PDR" makedb "$fam" "$T/xseg" --expand --segments >/dev/null 2>"$T/err"
    check "makedb --expand --segments: usage error that says why" "[ $? -eq 2 ] && grep -q 'segment database' '$T/err'"
fi
"$PDR" makedb "$small" "$T/xk" --expand -m kmer3 >/dev/null 2>"$T/err"
check "makedb --expand with kmer3 (no background): usage error" "[ $? -eq 2 ] && grep -q 'no background' '$T/err'"
"$PDR" search "$T/db" "$small" - --expand >/dev/null 2>"$T/err"
check "search --expand is a usage error" "[ $? -eq 2 ] && grep -q 'makedb and easy-search' '$T/err'"
"$PDR" search "$T/db" "$small" - --segments >/dev/null 2>"$T/err"
check "search --segments is a usage error" "[ $? -eq 2 ] && grep -q 'makedb and easy-search' '$T/err'"
printf '>q1\nMKVLAAGIVGLLLAQWERTYIPASDFGHKLCVNM\n' | "$PDR" search "$T/db" - "$T/stdin.tsv" -k 2 2>"$T/err"
check "queries from stdin" "[ \$(wc -l <'$T/stdin.tsv') -eq 2 ] && cut -f1 '$T/stdin.tsv' | grep -qx q1"
# a database without its sequences (made before alignment re-ranking): searches do not align by
# default, and --align N says why it cannot
cp -r "$T/db" "$T/noseq" && rm "$T/noseq/sequences.h5"
"$PDR" search "$T/noseq" "$small" "$T/noseq.tsv" -k 3 2>"$T/err"
check "no sequences: search works, nothing aligned, and says so" "[ $? -eq 0 ] && awk -F'\t' '\$9!=\"-\"{exit 1}' '$T/noseq.tsv' && [ -s '$T/noseq.tsv' ] && grep -q 'embedding alone' '$T/err'"
"$PDR" search "$T/db" "$small" - -k 3 >/dev/null 2>"$T/err"
check "with sequences: no such note" "! grep -q 'embedding alone' '$T/err'"
"$PDR" search "$T/noseq" "$small" - -k 3 --align 10 >/dev/null 2>"$T/err"
check "no sequences: --align 10 exits 1 and says to rebuild" "[ $? -eq 1 ] && grep -q 'no sequences' '$T/err' && grep -q 'makedb' '$T/err'"
"$PDR" search "$T/noseq" "$small" - -k 3 --format blast6 >/dev/null 2>"$T/err"
check "no sequences: --format blast6 exits 1 and says to rebuild" "[ $? -eq 1 ] && grep -q 'no sequences' '$T/err'"
timeout 120 "$PDR" serve "$T/noseq" --align 5 --port 0 >/dev/null 2>"$T/err"
check "serve --align 5 on it: exit 1, names the database (the message read freed memory)" "[ $? -eq 1 ] && grep -q -- \"--align 5: $T/noseq has no sequences\" '$T/err'"
# --token-file: the limit is on the token, not on its line's newline
printf '%4096s\n' '' | tr ' ' a >"$T/tok4096"
printf '%4097s\n' '' | tr ' ' a >"$T/tok4097"
timeout 60 "$PDR" serve "$T/missing_db" --token-file "$T/tok4096" --port 0 >/dev/null 2>"$T/err"
check "a 4096-byte token with its newline is taken (serve goes on to the database)" "[ $? -eq 1 ] && ! grep -q 'longer than' '$T/err' && grep -q 'not a pdr database' '$T/err'"
timeout 60 "$PDR" serve "$T/missing_db" --token-file "$T/tok4097" --port 0 >/dev/null 2>"$T/err"
check "a 4097-byte token is refused" "[ $? -eq 1 ] && grep -q 'token is longer than 4096 bytes' '$T/err'"
printf '\0secret-token\n' >"$T/toknul"
timeout 60 "$PDR" serve "$T/missing_db" --token-file "$T/toknul" --port 0 >/dev/null 2>"$T/err"
check "a token file that starts with a NUL is refused (it turned authentication off)" "[ $? -eq 1 ] && grep -q 'holds a NUL byte' '$T/err'"
timeout 60 "$PDR" serve "$T/missing_db" --token-file "$T" --port 0 >/dev/null 2>"$T/err"
check "a directory as token file: exit 1, says so" "[ $? -eq 1 ] && grep -q 'cannot read the token file: Is a directory' '$T/err'"
# identical targets tied at the --align cut are aligned together (which copy fell inside the cut
# set E-values 50 orders of magnitude apart for the same sequence)
awk '/^>/{n++} n==1' "$small" >"$T/tie_q.fa"
{ cat "$small"; sed 's/^>A6TEI5/>copy1/' "$T/tie_q.fa"; sed 's/^>A6TEI5/>copy2/' "$T/tie_q.fa"; } >"$T/tie_t.fa"
"$PDR" makedb "$T/tie_t.fa" "$T/tiedb" 2>/dev/null
"$PDR" search "$T/tiedb" "$T/tie_q.fa" "$T/tie.tsv" -k 5 --align 1 2>/dev/null
check "--align 1: the query's two identical copies, tied with it, are aligned too" "[ \$(awk -F'\t' '(\$2==\"A6TEI5\" || \$2==\"copy1\" || \$2==\"copy2\") && \$9!=\"-\"' '$T/tie.tsv' | wc -l) -eq 3 ] && [ \$(awk -F'\t' '\$2!=\"A6TEI5\" && \$2!=\"copy1\" && \$2!=\"copy2\" && \$9!=\"-\"' '$T/tie.tsv' | wc -l) -eq 0 ]"
# --- BLAST tabular output: 12 columns, every hit aligned (--align is raised to k)
"$PDR" search "$T/db" "$small" "$T/b6.tsv" -k 12 --align 2 --format blast6 2>"$T/err"
check "blast6 exits 0 with k hits per query" "[ $? -eq 0 ] && [ \$(wc -l <'$T/b6.tsv') -eq $((n_small * 12)) ]"
check "blast6: 12 tab-separated columns" "awk -F'\t' 'NF!=12{exit 1}' '$T/b6.tsv'"
check "blast6: self hit first, 100% identical end to end" "awk -F'\t' '\$1!=q{q=\$1; if(\$2!=\$1 || \$3!=\"100.000\" || \$5!=0 || \$6!=0 || \$7!=1 || \$9!=1 || \$8!=\$10 || \$4!=\$8) exit 1}' '$T/b6.tsv'"
check "blast6: coordinates ordered, identities within length" "awk -F'\t' '!(\$7>=1 && \$7<=\$8 && \$9>=1 && \$9<=\$10 && \$3>=0 && \$3<=100 && \$4>=\$8-\$7+1 && \$4>=\$10-\$9+1 && \$12>0){exit 1}' '$T/b6.tsv'"
check "blast6: E-values ascend within a query" "awk -F'\t' '\$1==q && \$11<prev{exit 1}{q=\$1;prev=\$11}' '$T/b6.tsv'"
"$PDR" search "$T/db" "$small" - --format blast6 --align 0 >/dev/null 2>"$T/err"
check "blast6 with --align 0 is a usage error" "[ $? -eq 2 ] && grep -q 'align 0' '$T/err'"
# the same alignments as BLASTp's Smith-Waterman traceback (a peer; Debian's ncbi-blast+), for
# the pairs both report: identity, length, mismatches, gap opens, coordinates (columns 3-10)
# on the demo's 3 queries against its 1,049 targets
demo=$DATA/demo
if command -v blastp >/dev/null && [ -f "$demo/query.fasta" ]; then
    "$PDR" easy-search "$demo/query.fasta" "$demo/targets.fasta" "$T/demo_b6.tsv" -k 50 --format blast6 2>"$T/err"
    check "demo blast6 exits 0" "[ $? -eq 0 ]"
    blastp -query "$demo/query.fasta" -subject "$demo/targets.fasta" -outfmt 6 -comp_based_stats 0 -use_sw_tback \
        -seg no -max_target_seqs 50 -evalue 1e-5 >"$T/blast.tsv" 2>/dev/null
    awk -F'\t' 'NR==FNR{k=$1"\t"$2; if(!(k in b)) b[k]=$3"|"$4"|"$5"|"$6"|"$7"|"$8"|"$9"|"$10; next}
        {k=$1"\t"$2; if(k in b){n++; if(b[k]!=$3"|"$4"|"$5"|"$6"|"$7"|"$8"|"$9"|"$10){d++; if(d<4) print "differs: " k ": blastp " b[k] " pdr " $3"|"$4"|"$5"|"$6"|"$7"|"$8"|"$9"|"$10 > "/dev/stderr"}}}
        END{print n+0, d+0}' "$T/blast.tsv" "$T/demo_b6.tsv" >"$T/cmp"
    read -r n_cmp n_diff <"$T/cmp"
    echo "blast6 against blastp -use_sw_tback: $n_cmp shared pairs, $n_diff differ" >&2
    check "blast6 matches blastp -use_sw_tback on $n_cmp shared pairs ($n_diff differ)" "[ $n_cmp -ge 10 ] && [ $n_diff -eq 0 ]"
else
    echo "SKIP: blastp not installed (apt-get install ncbi-blast+): blast6 not compared with BLASTp" >&2
fi
# a target that can be read only once (stdin, a pipe, a process substitution) is copied into
# DBDIR first: the database has its sequences (hits aligned), the copy is removed, and a rerun
# into an existing DBDIR is checked like a file's, never breaking the database
"$PDR" makedb - "$T/stdindb" <"$small" 2>"$T/err"
check "makedb from stdin: made with sequences, the copy removed" "[ $? -eq 0 ] && [ -e '$T/stdindb/sequences.h5' ] && ! ls -A '$T/stdindb' | grep -q '^[.]target-'"
"$PDR" search "$T/stdindb" "$small" "$T/stdin_db.tsv" -k 2 2>/dev/null
"$PDR" search "$T/db" "$small" "$T/file_db.tsv" -k 2 2>/dev/null
check "a database from stdin searches as one from the file (aligned)" "cmp -s '$T/stdin_db.tsv' '$T/file_db.tsv' && awk -F'\t' '\$9==\"-\"{exit 1}' '$T/stdin_db.tsv'"
cat "$small" | "$PDR" makedb /dev/stdin "$T/stdindb" 2>"$T/err"
check "makedb /dev/stdin into the same DBDIR: a resume, database intact" "[ $? -eq 0 ] && grep -q 'already stored' '$T/err' && \"$PDR\" search '$T/stdindb' '$small' - -k 2 2>/dev/null | cmp -s - '$T/file_db.tsv'"
head -n 4 "$small" | "$PDR" makedb - "$T/stdindb" 2>"$T/err"
check "makedb - with other records into it: refused, database still searchable" "[ $? -eq 1 ] && grep -q 'cannot extend' '$T/err' && \"$PDR\" search '$T/stdindb' '$small' - -k 2 2>/dev/null | cmp -s - '$T/file_db.tsv'"
"$PDR" easy-search "$small" <(cat "$small") "$T/procsub_target.tsv" -k 2 2>"$T/err"
"$PDR" easy-search "$small" "$small" "$T/file_target.tsv" -k 2 2>/dev/null
check "easy-search with a process substitution as TARGET: exit 0, the file's hits" "cmp -s '$T/procsub_target.tsv' '$T/file_target.tsv'"
cat "$small" | "$PDR" easy-search "$small" - "$T/stdin_target.tsv" -k 2 --format blast6 2>"$T/err"
check "easy-search with TARGET on stdin: blast6 works (sequences stored)" "[ $? -eq 0 ] && [ \$(wc -l <'$T/stdin_target.tsv') -eq $((n_small * 2)) ]"

# --- where OUT goes: a new name or a regular file via OUT.tmp and a rename; anything else (FIFO,
# device, symlink, /dev/fd/N) written in place, never replaced by a regular file
fail_before_out=$fail
rm -f "$T/fifo.out"; mkfifo "$T/fifo"
timeout 180 cat "$T/fifo" >"$T/fifo.out" & rd=$!
timeout 180 "$PDR" search "$T/db" "$small" "$T/fifo" -k 2 2>"$T/err"; rc=$?
wait $rd
check "OUT a FIFO: written through it (exit 0, all hits read), still a FIFO, no FIFO.tmp" "[ $rc -eq 0 ] && [ -p '$T/fifo' ] && [ \$(wc -l <'$T/fifo.out') -eq $((n_small * 2)) ] && [ ! -e '$T/fifo.tmp' ]"
"$PDR" search "$T/db" "$small" >(cat >"$T/procsub.tsv") -k 2 2>"$T/err"; rc=$?
wait $!
check "OUT a process substitution (/dev/fd/N): exit 0, all hits" "[ $rc -eq 0 ] && [ \$(wc -l <'$T/procsub.tsv') -eq $((n_small * 2)) ]"
echo old >"$T/linked.tsv"; ln -s linked.tsv "$T/link.tsv"
"$PDR" search "$T/db" "$small" "$T/link.tsv" -k 2 2>"$T/err"
check "OUT a symlink: its target written, the link kept" "[ $? -eq 0 ] && [ -L '$T/link.tsv' ] && [ \$(wc -l <'$T/linked.tsv') -eq $((n_small * 2)) ] && [ ! -e '$T/link.tsv.tmp' ]"
ln -s /dev/full "$T/full"
"$PDR" search "$T/db" "$small" "$T/full" -k 2 2>"$T/err"
check "OUT a symlink to /dev/full: exit 1 naming it, the link and /dev/full kept" "[ $? -eq 1 ] && grep -q 'full: write failed: No space left' '$T/err' && [ -L '$T/full' ] && [ -c /dev/full ]"
if [ "$(id -u)" -eq 0 ] && mknod "$T/null" c 1 3 2>/dev/null; then
    "$PDR" search "$T/db" "$small" "$T/null" -k 2 2>"$T/err"
    check "OUT a character device (mknod'd /dev/null): exit 0, still a device" "[ $? -eq 0 ] && [ -c '$T/null' ]"
fi
# /dev/null and /dev/stdout themselves: only when the cases above passed, since a pdr that
# renames onto OUT would, as root, replace the system's /dev/null or /dev/stdout
if [ "$fail" -eq "$fail_before_out" ]; then
    "$PDR" search "$T/db" "$small" /dev/null -k 2 2>"$T/err"
    check "OUT /dev/null: exit 0, /dev/null still a character device" "[ $? -eq 0 ] && [ -c /dev/null ] && [ ! -e /dev/null.tmp ]"
    "$PDR" search "$T/db" "$small" /dev/stdout -k 2 2>"$T/err" | cat >"$T/devstdout.tsv"
    rc=${PIPESTATUS[0]}
    check "OUT /dev/stdout: the hits on stdout, /dev/stdout still a symlink" "[ $rc -eq 0 ] && [ \$(wc -l <'$T/devstdout.tsv') -eq $((n_small * 2)) ] && [ -L /dev/stdout ]"
else
    bad "OUT /dev/null and /dev/stdout not tried: the cases above failed, and as root pdr could replace them"
fi
mkdir "$T/outdir"
"$PDR" search "$T/db" "$small" "$T/outdir" -k 2 2>"$T/err"
check "OUT a directory: exit 1 before searching, no outdir.tmp left" "[ $? -eq 1 ] && grep -q 'is a directory' '$T/err' && ! grep -q 'queries searched' '$T/err' && [ ! -e '$T/outdir.tmp' ]"
"$PDR" easy-search "$small" "$small" "$T/nodir/o.tsv" -k 2 --tmp-dir "$T" 2>"$T/err"
check "easy-search into a missing directory: exit 1 before building anything" "[ $? -eq 1 ] && grep -q 'nodir does not exist' '$T/err' && ! grep -q 'embedded' '$T/err' && ! ls -d '$T'/pdr-easy-* >/dev/null 2>&1"
"$PDR" easy-search "$T/no_such_query.fasta" "$small" "$T/o.tsv" -k 2 --tmp-dir "$T" 2>"$T/err"
check "easy-search with a missing QUERY: exit 1 before building anything" "[ $? -eq 1 ] && grep -q 'no_such_query.fasta: cannot open' '$T/err' && ! grep -q 'embedded' '$T/err' && ! ls -d '$T'/pdr-easy-* >/dev/null 2>&1"
# the temporary database goes also when a signal stops easy-search: SIGPIPE from '| head', SIGTERM
mkdir -p "$T/etmp"
"$PDR" easy-search "$small" "$small" - -k 5 --tmp-dir "$T/etmp" 2>/dev/null | true # its reader is gone before the first write
check "easy-search into a closed pipe: dies of SIGPIPE (141), its temporary database removed" "[ \${PIPESTATUS[0]} -eq 141 ] && [ -z \"\$(ls -A '$T/etmp')\" ]"
"$PDR" easy-search "$small" "$small" "$T/term.tsv" -k 5 --tmp-dir "$T/etmp" 2>"$T/err" & epid=$!
for _ in $(seq 1 300); do grep -q 'records read' "$T/err" 2>/dev/null && break; ls -A "$T/etmp" | grep -q . && break; sleep 0.05; done
kill -TERM "$epid"; wait "$epid"; rc=$?
check "easy-search stopped by SIGTERM: exit 143, its temporary database removed" "[ $rc -eq 143 ] && [ -z \"\$(ls -A '$T/etmp')\" ]"
# --format json names the database the same way however it is reached
"$PDR" easy-search "$small" "$small" "$T/e1.json" -k 2 --format json 2>/dev/null
"$PDR" easy-search "$small" "$small" "$T/e2.json" -k 2 --format json 2>/dev/null
check "easy-search --format json: the same bytes twice, the database named by TARGET" "cmp -s '$T/e1.json' '$T/e2.json' && grep -q '\"database\":\"small.fasta\"' '$T/e1.json'"
"$PDR" search "$T/db" "$small" "$T/s1.json" -k 2 --format json 2>/dev/null
"$PDR" search "$T/db/./" "$small" "$T/s2.json" -k 2 --format json 2>/dev/null
check "search --format json: DBDIR's name however the path is written" "cmp -s '$T/s1.json' '$T/s2.json' && grep -q '\"database\":\"db\"' '$T/s1.json'"
# embed into a symlink (to a scratch disk): the store goes to the link's target, the link stays
mkdir -p "$T/scratch"; ln -s scratch/linked.h5 "$T/link.h5"
"$PDR" embed "$small" -o "$T/link.h5" 2>/dev/null
"$PDR" embed "$small" -o "$T/link.h5" 2>"$T/err"
check "embed -o a symlink: the link kept, its target the store (and a rerun finds it)" "[ -L '$T/link.h5' ] && [ -f '$T/scratch/linked.h5' ] && grep -q 'already stored' '$T/err'"
# /dev/stdout is written as '-': what the shell wrote into the redirected file before stays
{ echo '#header'; "$PDR" search "$T/db" "$small" /dev/stdout -k 2 2>/dev/null; echo '#end'; } >"$T/devstdout.txt"
check "OUT /dev/stdout: appended to the redirected file, nothing truncated" "[ \"\$(head -n 1 '$T/devstdout.txt')\" = '#header' ] && [ \"\$(tail -n 1 '$T/devstdout.txt')\" = '#end' ] && [ \$(wc -l <'$T/devstdout.txt') -eq $((n_small * 2 + 2)) ]"
# two searches into one OUT: the second is refused while the first writes OUT.tmp (it got the
# first's complete output and reported it as its own); the first, reading its queries from a
# pipe held open, finishes with its own hits
( cat "$small"; sleep "${PDR_UNDER_VALGRIND:+1}3" ) | "$PDR" search "$T/db" - "$T/same.tsv" -k 2 2>"$T/same1.err" &
same_pid=$!
for _ in $(seq 1 100); do [ -e "$T/same.tsv.tmp" ] && break; sleep 0.1; done
"$PDR" search "$T/db" "$small" "$T/same.tsv" -k 1 2>"$T/err"
check "a second search into an OUT being written: exit 1, says another run is writing it" "[ $? -eq 1 ] && grep -q 'another pdr run is writing it' '$T/err'"
wait "$same_pid"
check "the first search finishes with its own hits, no OUT.tmp left" "[ $? -eq 0 ] && [ \$(wc -l <'$T/same.tsv') -eq $((n_small * 2)) ] && [ ! -e '$T/same.tsv.tmp' ]"
printf '>bad\nMK1V\n' >"$T/badq.fasta"
"$PDR" search "$T/db" "$T/badq.fasta" "$T/badq.tsv" -k 2 2>"$T/err"
check "no valid query: exit 1, neither OUT nor OUT.tmp left" "[ $? -eq 1 ] && [ ! -e '$T/badq.tsv' ] && [ ! -e '$T/badq.tsv.tmp' ]"
"$PDR" search "$T/db" "$T/badq.fasta" - -k 2 --format json >"$T/badq.json" 2>"$T/err"
check "no valid query, --format json to stdout: exit 1, nothing written" "[ $? -eq 1 ] && [ ! -s '$T/badq.json' ]"
echo old >"$T/reg.tsv"
"$PDR" search "$T/db" "$small" "$T/reg.tsv" -k 2 2>"$T/err"
check "OUT an existing regular file: replaced, no OUT.tmp left" "[ $? -eq 0 ] && [ -f '$T/reg.tsv' ] && [ \$(wc -l <'$T/reg.tsv') -eq $((n_small * 2)) ] && [ ! -e '$T/reg.tsv.tmp' ]"

# --- option ranges: -e above 0, --min-score within the scores' range [-2, 2]; --tmp-dir is easy-search's
for e in 0 -1; do
    "$PDR" search "$T/db" "$small" - -e "$e" >"$T/out" 2>"$T/err"
    check "-e $e: usage error saying E must be > 0, no output" "[ $? -eq 2 ] && grep -q -- '-e/--evalue.*must be > 0' '$T/err' && [ ! -s '$T/out' ]"
done
for s in 2.5 -3; do
    "$PDR" search "$T/db" "$small" - --min-score "$s" >/dev/null 2>"$T/err"
    check "--min-score $s: usage error naming the range" "[ $? -eq 2 ] && grep -q -- '--min-score: expected a number in \[-2, 2\]' '$T/err'"
done
"$PDR" search "$T/db" "$small" - -k 2 --min-score -2 >"$T/out" 2>"$T/err"
check "--min-score -2 (the lowest score): every hit" "[ $? -eq 0 ] && [ \$(wc -l <'$T/out') -eq $((n_small * 2)) ]"
"$PDR" search "$T/db" "$small" - --tmp-dir "$T" >/dev/null 2>"$T/err"
check "search --tmp-dir is a usage error" "[ $? -eq 2 ] && grep -q 'option of easy-search' '$T/err'"

# --- a hit with nothing aligned (a query of only X): no blast6 line (no coordinates to give);
# TSV bits '-' and JSON bits null, as for a hit not aligned
{ printf '>allx\nXXXXXXXXXXXXXXXXXXXX\n'; head -2 "$small"; } >"$T/allx.fasta"
real_id=$(head -1 "$small" | cut -c2- | cut -d' ' -f1)
"$PDR" search "$T/db" "$T/allx.fasta" "$T/allx.b6" -k 3 --format blast6 2>"$T/err"
check "blast6: no line for a hit with an empty alignment, the other query's hits kept" "[ $? -eq 0 ] && ! grep -q '^allx' '$T/allx.b6' && [ \$(grep -c '^$real_id	' '$T/allx.b6') -eq 3 ] && awk -F'\t' '\$7<1 || \$9<1{exit 1}' '$T/allx.b6'"
"$PDR" search "$T/db" "$T/allx.fasta" "$T/allx.tsv" -k 3 2>"$T/err"
check "TSV: bits '-' for a hit with nothing aligned" "[ $? -eq 0 ] && [ \$(awk -F'\t' '\$1==\"allx\" && \$9==\"-\"' '$T/allx.tsv' | wc -l) -eq 3 ]"
"$PDR" search "$T/db" "$T/allx.fasta" - -k 3 --format json >"$T/allx.json" 2>"$T/err"
check "JSON: bits null for a hit with nothing aligned" "/usr/bin/python3 -c 'import json; d=json.load(open(\"$T/allx.json\")); assert all(h[\"bits\"] is None for h in d[\"results\"][0][\"hits\"]) and d[\"results\"][1][\"hits\"][0][\"bits\"] > 20' 2>/dev/null"

# --- easy-search X X behaves as easy-search X copy-of-X: a repeated id is skipped as a target
# but searched as a query; an invalid record is reported as a skipped query
{ cat "$small"; printf '>t1\nMKVLAAGIVGLLLAQWERTY\n>t1\nMKVLAAGIVGLLLAQWERTYKKK\n>badrec\nMK1V\n'; } >"$T/dup.fasta"
cp "$T/dup.fasta" "$T/dupcopy.fasta"
"$PDR" easy-search "$T/dup.fasta" "$T/dup.fasta" "$T/dup_same.tsv" -k 3 2>"$T/err_same"; rc=$?
"$PDR" easy-search "$T/dup.fasta" "$T/dupcopy.fasta" "$T/dup_copy.tsv" -k 3 2>"$T/err_copy"
check "easy-search X X: the same hits as X copy-of-X (both t1 records searched)" "[ $rc -eq 0 ] && cmp -s '$T/dup_same.tsv' '$T/dup_copy.tsv' && [ \$(grep -c '^t1	' '$T/dup_same.tsv') -eq 6 ]"
check "easy-search X X: the invalid record reported as a skipped query" "grep -q 'skipped query: .*badrec' '$T/err_same'"
"$PDR" easy-search "$small" "$small" "$T/same.tsv" -k 3 2>/dev/null
cp "$small" "$T/smallcopy.fasta"
"$PDR" easy-search "$small" "$T/smallcopy.fasta" "$T/samecopy.tsv" -k 3 2>/dev/null
check "easy-search X X on a clean file (stored vectors reused): the same as X copy-of-X" "cmp -s '$T/same.tsv' '$T/samecopy.tsv'"

# --- errors and exit codes
"$PDR" >/dev/null 2>&1; check "no command: exit 2" "[ $? -eq 2 ]"
"$PDR" frobnicate >/dev/null 2>&1; check "unknown command: exit 2" "[ $? -eq 2 ]"
"$PDR" search --bogus >/dev/null 2>"$T/err"; check "unknown option: exit 2, message names 'pdr search'" "[ $? -eq 2 ] && grep -q \"^pdr search: unrecognized option '--bogus'\" '$T/err'"
"$PDR" embed -Z x >/dev/null 2>"$T/err"; check "unknown short option: message names 'pdr embed'" "[ $? -eq 2 ] && grep -q '^pdr embed: invalid option' '$T/err'"
"$PDR" search "$T/db" >/dev/null 2>&1; check "missing args: exit 2" "[ $? -eq 2 ]"
"$PDR" search "$T/db" "$small" - -k 0 >/dev/null 2>&1; check "-k 0: exit 2" "[ $? -eq 2 ]"
"$PDR" embed "$T/nonexistent.fasta" -o "$T/x.h5" 2>"$T/err"; check "missing input: exit 1" "[ $? -eq 1 ]"
check "missing input named" "grep -q 'nonexistent.fasta' '$T/err'"
"$PDR" search "$T/nodb" "$small" - 2>"$T/err" >/dev/null; check "missing db: exit 1" "[ $? -eq 1 ]"
check "missing db message" "grep -q 'not a pdr database' '$T/err'"
: >"$T/empty.fasta"
"$PDR" embed "$T/empty.fasta" -o "$T/e.h5" 2>"$T/err"; check "empty input: exit 1" "[ $? -eq 1 ]"
check "empty input message" "grep -q 'no valid sequences' '$T/err'"
for v in embed makedb search easy-search serve version; do
  "$PDR" $v --help >"$T/help" 2>&1; check "$v --help exits 0" "[ $? -eq 0 ] && grep -q usage '$T/help'"
done
"$PDR" version >"$T/v"; check "version names the model" "grep -q 'model:' '$T/v'"
"$PDR" version --model kmer3 >"$T/v"; check "version --model names that model" "[ $? -eq 0 ] && grep -q 'NON-LEARNED' '$T/v'"
"$PDR" version --model "$T/none.h5" >"$T/v" 2>&1; check "version --model of a missing file: exit 1" "[ $? -eq 1 ] && grep -q 'none.h5' '$T/v'"
PDR_MODEL="$T/none.h5" "$PDR" version >"$T/v" 2>&1; check "version with a broken default model (\$PDR_MODEL): exit 1, names it" "[ $? -eq 1 ] && grep -q 'none.h5' '$T/v' && grep -q '^hdf5' '$T/v'"
# cmake --install: the installed binary finds its model beside itself, from any directory
if [ -n "${PDR_BUILD:-}" ]; then
  cmake --install "$PDR_BUILD" --prefix "$T/inst" >/dev/null 2>"$T/err"
  check "cmake --install lays out bin/pdr and share/pdr/pdr_cnn_v1.h5" "[ -x '$T/inst/bin/pdr' ] && cmp -s '$T/inst/share/pdr/pdr_cnn_v1.h5' '$PDR_DATA/pdr_cnn_v1.h5'"
  inst=$(cd "$T/inst" && pwd -P)
  (cd / && env -u PDR_MODEL "$T/inst/bin/pdr" version) >"$T/v" 2>"$T/err"
  check "the installed binary's default model is the installed one, no note" "[ $? -eq 0 ] && grep -q \"from $inst/share/pdr/pdr_cnn_v1.h5\$\" '$T/v' && [ ! -s '$T/err' ]"
fi
"$PDR" version --modle x >/dev/null 2>"$T/err"; check "version: unknown option is a usage error" "[ $? -eq 2 ] && grep -q -- '--modle' '$T/err'"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
