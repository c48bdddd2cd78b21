#!/usr/bin/python3
"""query_speed.py: the cost of one search as a user runs it (a few queries against a database
built beforehand), pdr's alignment depths against BLASTp, MMseqs2 and DIAMOND, in one run.

peers.py scores all-vs-all runs (every pair, ROC AUC) and counts database building in each
tool's time. This script instead times what a pipeline step pays per query batch: Q queries drawn
from a dataset (seeded) are searched against all of that dataset's proteins, k hits per query,
each tool's database built first and timed apart. Per tool it prints the search's wall and CPU
time, both as ratios to BLASTp's in the same run, and what the k hits hold: the share of the
queries' labelled homolog pairs (from the dataset's pair file) that are among them, and the
labelled non-homologous pairs among them.

Tools (k = --k, T = --threads; DB = the dataset's proteins). pdr and BLASTp stop at E = 10 (BLAST's
default); MMseqs2 and DIAMOND keep their own default cut-off (E = 0.001):
  pdr, pdr-a1000, pdr-aall          pdr search DB Q -k k -e 10 --align 50 | 1000 | all
  pdr-seg, pdr-seg-a1000, pdr-seg-aall   the same on a segment database (makedb --segments)
  blastp       blastp -evalue 10 -max_target_seqs k -max_hsps 1 (BLAST's default E-value)
  mmseqs-s7.5  mmseqs search -s 7.5 --max-seqs k against a createdb database
  diamond      diamond blastp --ultra-sensitive -k k

usage: /usr/bin/python3 bench/query_speed.py [--dataset pfam_local] [--queries 100] [--seed 21]
           [--k 50] [--threads 2] [--tools pdr,pdr-seg-aall,blastp,...] [--pdr build/pdr]
           [--model M] [--shared ../shared/data]
Writes bench/out/query_speed_<dataset>.tsv; works under bench/out/qs_work/ (removed at the end).
"""
import argparse
import os
import random
import shutil
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import common  # noqa: E402

REFERENCE = "blastp"
PDR_TOOLS = [("pdr", False, "50"), ("pdr-a1000", False, "1000"), ("pdr-aall", False, "all"),
             ("pdr-seg", True, "50"), ("pdr-seg-a1000", True, "1000"), ("pdr-seg-aall", True, "all")]
ALL_TOOLS = [t[0] for t in PDR_TOOLS] + ["blastp", "mmseqs-s7.5", "diamond"]


def write_queries(ds, seqs, n, seed, path):
    rng = random.Random(seed)
    picked = rng.sample(ds.proteins, min(n, len(ds.proteins)))
    with open(path, "w") as f:
        for x in picked:
            f.write(">%s\n%s\n" % (x, seqs[x]))
    return picked


def read_hits(path, qcol=0, tcol=1):
    """-> {query: set(targets)} of a tabular hits file (self hits dropped)."""
    out = {}
    with open(path) as f:
        for line in f:
            if line.startswith("#"):
                continue
            w = line.split()
            if len(w) > max(qcol, tcol) and w[qcol] != w[tcol]:
                out.setdefault(w[qcol], set()).add(w[tcol])
    return out


def hit_counts(ds, queries, hits):
    """-> (labelled homolog pairs of the queries found in their hits, of how many; labelled
    non-homologous pairs found)."""
    qset = set(queries)
    found = total = false = 0
    seen = set()
    for a, b, hom in ds.pairs:
        for q, t in ((a, b), (b, a)):
            if q not in qset or (q, t) in seen:
                continue
            seen.add((q, t))
            got = t in hits.get(q, ())
            if hom:
                total += 1
                found += got
            else:
                false += got
    return found, total, false


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="pfam_local", choices=[n for n, _ in common.DATASETS])
    ap.add_argument("--shared", default=common.DEFAULT_SHARED, help="shared data dir (default ../shared/data)")
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--seed", type=int, default=21)
    ap.add_argument("--k", type=int, default=50)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--pdr", default=common.default_pdr())
    ap.add_argument("--model", default=None)
    ap.add_argument("--tools", default=",".join(ALL_TOOLS))
    a = ap.parse_args()
    tools = [t.strip() for t in a.tools.split(",") if t.strip()]
    bad = [t for t in tools if t not in ALL_TOOLS]
    if bad:
        ap.error("unknown tool(s) %s; known: %s" % (", ".join(bad), ", ".join(ALL_TOOLS)))
    if a.queries < 1 or a.k < 1 or a.threads < 1:
        ap.error("--queries, --k and --threads must be positive")

    seqs = common.read_fasta(common.sequence_source(a.shared))
    ds = common.Dataset(a.dataset, a.shared, seqs)
    work = os.path.join(common.OUT, "qs_work")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    qfa = os.path.join(work, "queries.fasta")
    queries = write_queries(ds, seqs, a.queries, a.seed, qfa)
    th, k = str(a.threads), str(a.k)
    print("query_speed.py: %s; %d threads per tool; pdr = %s" % (time.strftime("%Y-%m-%d %H:%M"), a.threads, a.pdr))
    print("  " + ds.summary())
    print("  %d queries (seed %d, %d residues), k = %d; pdr %s" % (
        len(queries), a.seed, sum(len(seqs[q]) for q in queries), a.k, common.pdr_model_line(a.pdr, a.model)))
    print("  " + common.cpu_note(), flush=True)

    model = ["--model", a.model] if a.model else []
    builds = {}  # database name -> (build argv list, path)
    pdr_db = {False: os.path.join(work, "pdrdb"), True: os.path.join(work, "pdrdb_seg")}
    rows = []

    def build(name, steps):
        """-> the timed build of database `name` (once per run), or None when its program is missing."""
        prog = steps[0][0]
        if not common.which(prog) and not os.access(prog, os.X_OK):
            return None
        if name in builds:
            return builds[name]
        r = common.add_runs([common.run_timed(argv) for argv in steps])
        builds[name] = r
        if r["rc"] != 0:
            print("  build %s FAILED: %s" % (name, r["stderr"].strip().splitlines()[-1:]), flush=True)
        else:
            print("  build %-9s %.1f s wall, %.1f s CPU" % (name, r["wall_s"], r["cpu_s"]), flush=True)
        return r

    for tool in tools:
        out = os.path.join(work, tool + ".tsv")
        pdr_spec = next((t for t in PDR_TOOLS if t[0] == tool), None)
        if pdr_spec:
            _, seg, align = pdr_spec
            db = pdr_db[seg]
            b = build("pdr-seg" if seg else "pdr", [[a.pdr, "makedb", ds.fasta, db, "--threads", th] +
                                                    (["--segments"] if seg else []) + model])
            argv = [a.pdr, "search", db, qfa, out, "-k", k, "-e", "10", "--align", align, "--threads", th]
            cols = (0, 1)
        elif tool == "blastp":
            db = os.path.join(work, "blastdb")
            b = build("blast", [["makeblastdb", "-in", ds.fasta, "-dbtype", "prot", "-out", db]])
            argv = ["blastp", "-query", qfa, "-db", db, "-evalue", "10", "-max_hsps", "1", "-max_target_seqs", k,
                    "-outfmt", "6 qseqid sseqid bitscore evalue", "-num_threads", th, "-mt_mode", "1", "-out", out]
            cols = (0, 1)
        elif tool == "mmseqs-s7.5":
            db = os.path.join(work, "mmdb")
            b = build("mmseqs", [["mmseqs", "createdb", ds.fasta, db, "-v", "1"],
                                 ["mmseqs", "createindex", db, os.path.join(work, "mmidx"), "-s", "7.5", "--threads",
                                  th, "-v", "1"]])
            argv = ["mmseqs", "easy-search", qfa, db, out, os.path.join(work, "mmtmp"), "-s", "7.5", "--max-seqs",
                    k, "--threads", th, "--format-output", "query,target,bits,evalue", "-v", "1"]
            cols = (0, 1)
        else:  # diamond
            db = os.path.join(work, "dmnd")
            b = build("diamond", [["diamond", "makedb", "--in", ds.fasta, "-d", db, "--threads", th, "--quiet"]])
            argv = ["diamond", "blastp", "-q", qfa, "-d", db, "-o", out, "--ultra-sensitive", "-k", k, "--threads",
                    th, "--tmpdir", work, "--quiet", "--outfmt", "6", "qseqid", "sseqid", "bitscore", "evalue"]
            cols = (0, 1)
        row = {"tool": tool, "status": "ok", "load1": os.getloadavg()[0], "command": " ".join(argv)}
        if b is None:
            row["status"] = "missing"
        elif b["rc"] != 0:
            row["status"] = "build failed"
        else:
            r = common.run_timed(argv)
            if r["rc"] != 0:
                row["status"] = "failed (exit %d): %s" % (r["rc"], " ".join(r["stderr"].strip().splitlines()[-1:]))
            else:
                found, total, false = hit_counts(ds, queries, read_hits(out, *cols))
                row.update(wall_s=r["wall_s"], cpu_s=r["cpu_s"], maxrss_mb=r["maxrss_mb"], found=found, total=total,
                           false=false)
                print("  %-13s %.1f s wall, %.1f s CPU; homolog pairs in the top %d: %d of %d" % (
                    tool, r["wall_s"], r["cpu_s"], a.k, found, total), flush=True)
        rows.append(row)

    ref = next((r for r in rows if r["tool"] == REFERENCE and r["status"] == "ok"), None)
    print()
    print("%s: %d queries against %d proteins, k = %d" % (ds.name, len(queries), len(ds.proteins), a.k))
    print("%-13s %8s %8s %9s %9s %10s %10s %5s  %s" % ("tool", "wall s", "CPU s", "wall/bl", "CPU/bl", "homologs",
                                                       "nonhom", "load", "status"))
    for r in rows:
        ok = r["status"] == "ok"
        wr = r["wall_s"] / ref["wall_s"] if ok and ref else float("nan")
        cr = r["cpu_s"] / ref["cpu_s"] if ok and ref else float("nan")
        r["wall_ratio_vs_blastp"], r["cpu_ratio_vs_blastp"] = wr, cr
        hom = "%.1f%%" % (100.0 * r["found"] / max(1, r["total"])) if ok else "-"
        print("%-13s %8s %8s %9s %9s %10s %10s %5.1f  %s" % (
            r["tool"], "%.1f" % r["wall_s"] if ok else "-", "%.1f" % r["cpu_s"] if ok else "-",
            "-" if wr != wr else "%.3f" % wr, "-" if cr != cr else "%.3f" % cr, hom,
            str(r["false"]) if ok else "-", r["load1"], r["status"]))
    if ref is None:
        print("(no ratios: blastp did not run)")
    print("homologs = labelled homolog pairs of the queries found among their k hits (either tool's own order);"
          " nonhom = labelled non-homologous pairs among them; wall/bl, CPU/bl = ratio to blastp in this run;"
          " database building is not counted")
    path = os.path.join(common.OUT, "query_speed_%s.tsv" % ds.name)
    cols = ["tool", "status", "wall_s", "cpu_s", "maxrss_mb", "wall_ratio_vs_blastp", "cpu_ratio_vs_blastp", "found",
            "total", "false", "load1", "command"]
    with open(path + ".tmp", "w") as f:
        f.write("\t".join(cols) + "\n")
        for r in rows:
            f.write("\t".join(("%.6g" % r[c]) if isinstance(r.get(c), float) else str(r.get(c, "")) for c in cols)
                    + "\n")
    os.replace(path + ".tmp", path)
    print("written: %s" % os.path.relpath(path, common.REPO))
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
