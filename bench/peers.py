#!/usr/bin/python3
"""peers.py: pdr against MMseqs2, DIAMOND, BLASTp and phmmer on the Pfam homology pair sets, in one run.

For each dataset: all-vs-all of the dataset's proteins (bench/out/data/NAME.fasta, built from the
2014 UniProt corpus, see common.py) with every tool, each with a permissive E-value cut-off and a
hit limit of at least the number of proteins, so that every pair can be scored; then per tool the
pair ROC AUC (protocol of ../shared/data/README.md, see auc.py), wall time, CPU time (user+sys of
the tool and the children it waited for) and peak RSS (largest process). Database building
counts in the tool's time (pdr: embedding the database; makeblastdb; diamond makedb; MMseqs2's
easy-search builds its own). Scores: pdr's combined E-value (embedding + alignment of the best
100 candidates; pdr-emb and pdr-seg-emb: the embedding score alone), bit score for the aligners,
the larger of the two directions. A tool that is not installed is reported as missing.

Prints one table per dataset plus ratios against MMseqs2 -s 7.5 and writes
bench/out/peers_<dataset>.tsv.

usage: /usr/bin/python3 bench/peers.py [--dataset pfam_max50|pfam_local|pfam_nomax50|all]
           [--shared ../shared/data] [--threads 2] [--pdr build/pdr] [--model M]
           [--tools pdr,mmseqs-s7.5,mmseqs,diamond,blastp,phmmer] [--blast-evalue 1000]
           [--phmmer-max] [--keep-hits]
"""
import argparse
import os
import shutil
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import common  # noqa: E402
from auc import PairScorer  # noqa: E402

REFERENCE = "mmseqs-s7.5"


class Tool:
    """One benchmarked configuration. steps(fasta, work, n) -> list of (argv, stdout_path|None);
    hits: path of the tabular output; cols: 0-based (query, target, score) columns; evalue: the
    score column is an E-value (ranked by -log10 E)."""

    def __init__(self, name, programs, steps, hits, cols, comment="#", evalue=False):
        self.name, self.programs, self.steps, self.hits, self.cols = name, programs, steps, hits, cols
        self.comment, self.evalue = comment, evalue


def make_tools(a):
    th = str(a.threads)

    def pdr_steps_with(extra):
        def steps(fa, w, n):
            cmd = [a.pdr, "easy-search", fa, fa, os.path.join(w, "hits.tsv"), "-k", str(n), "--threads", th,
                   "--tmp-dir", w] + extra
            if a.model:
                cmd += ["--model", a.model]
            return [(cmd, None)]
        return steps
    pdr_steps = pdr_steps_with([])

    def mmseqs_steps(sens, iterations=1):
        def steps(fa, w, n):
            cmd = ["mmseqs", "easy-search", fa, fa, os.path.join(w, "hits.m8"), os.path.join(w, "tmp"),
                   "-e", "1e6", "--max-seqs", str(n), "--threads", th,
                   "--format-output", "query,target,bits,evalue", "-v", "1"]
            if sens is not None:
                cmd[6:6] = ["-s", sens]
            if iterations > 1:  # iterative profile search, the teacher that issue #3 suggests
                cmd[6:6] = ["--num-iterations", str(iterations)]
            return [(cmd, None)]
        return steps

    def diamond_steps(fa, w, n):
        db = os.path.join(w, "db")
        return [(["diamond", "makedb", "--in", fa, "-d", db, "--threads", th, "--quiet"], None),
                (["diamond", "blastp", "-q", fa, "-d", db, "-o", os.path.join(w, "hits.tsv"), "--ultra-sensitive",
                  "--evalue", "1e6", "-k", str(n), "--threads", th, "--tmpdir", w, "--quiet",
                  "--outfmt", "6", "qseqid", "sseqid", "bitscore", "evalue"], None)]

    def blast_steps(fa, w, n):
        db = os.path.join(w, "db")
        # -mt_mode 1 splits the work by query: the default splits by database, which leaves
        # threads idle on a database this small. -max_hsps 1: only the best HSP per pair counts.
        # -evalue: 1e6 costs far more than 1000 (every junk alignment is traced back), and 1000
        # already costs 20x the time of 10 (pfam_max50, 200 queries: 5.5 s at 10, 127 s at 1000)
        return [(["makeblastdb", "-in", fa, "-dbtype", "prot", "-out", db], None),
                (["blastp", "-query", fa, "-db", db, "-evalue", a.blast_evalue, "-max_hsps", "1",
                  "-max_target_seqs", str(n),
                  "-outfmt", "6 qseqid sseqid bitscore evalue", "-num_threads", th, "-mt_mode", "1",
                  "-out", os.path.join(w, "hits.tsv")], None)]

    def phmmer_steps(fa, w, n):
        cmd = ["phmmer", "--cpu", th, "-E", "1e6", "--noali", "-o", "/dev/null",
               "--tblout", os.path.join(w, "hits.tbl")]
        if a.phmmer_max:
            cmd.append("--max")
        return [(cmd + [fa, fa], None)]

    return [
        # pdr's default: embedding search, the 50 best candidates per query aligned, ranked by the
        # combined E-value (column 4)
        Tool("pdr", [a.pdr], pdr_steps, "hits.tsv", (0, 1, 3), evalue=True),
        Tool("pdr-a100", [a.pdr], pdr_steps_with(["--align", "100"]), "hits.tsv", (0, 1, 3), evalue=True),
        # a segment database (makedb --segments): whole + best segment pair, for local homology
        Tool("pdr-seg", [a.pdr], pdr_steps_with(["--segments"]), "hits.tsv", (0, 1, 3), evalue=True),
        # more candidates aligned per query: more of the pairs the embedding ranks low get the
        # alignment's evidence
        Tool("pdr-a1000", [a.pdr], pdr_steps_with(["--align", "1000"]), "hits.tsv", (0, 1, 3), evalue=True),
        Tool("pdr-seg-a1000", [a.pdr], pdr_steps_with(["--segments", "--align", "1000"]), "hits.tsv", (0, 1, 3),
             evalue=True),
        # every pair aligned (exhaustive Smith-Waterman, as ssearch): the ceiling of the re-ranking
        Tool("pdr-aall", [a.pdr], pdr_steps_with(["--align", "all"]), "hits.tsv", (0, 1, 3), evalue=True),
        Tool("pdr-seg-aall", [a.pdr], pdr_steps_with(["--segments", "--align", "all"]), "hits.tsv", (0, 1, 3),
             evalue=True),
        # the embedding alone (--align 0): its score, column 3
        Tool("pdr-emb", [a.pdr], pdr_steps_with(["--align", "0"]), "hits.tsv", (0, 1, 2)),
        Tool("pdr-seg-emb", [a.pdr], pdr_steps_with(["--segments", "--align", "0"]), "hits.tsv", (0, 1, 2)),
        # query expansion (makedb --expand): database and queries moved towards their 3 best hits
        Tool("pdr-x", [a.pdr], pdr_steps_with(["--expand"]), "hits.tsv", (0, 1, 3), evalue=True),
        Tool("pdr-x-emb", [a.pdr], pdr_steps_with(["--expand", "--align", "0"]), "hits.tsv", (0, 1, 2)),
        Tool("pdr-x-a1000", [a.pdr], pdr_steps_with(["--expand", "--align", "1000"]), "hits.tsv", (0, 1, 3),
             evalue=True),
        Tool("mmseqs-s7.5", ["mmseqs"], mmseqs_steps("7.5"), "hits.m8", (0, 1, 2)),
        Tool("mmseqs", ["mmseqs"], mmseqs_steps(None), "hits.m8", (0, 1, 2)),
        Tool("mmseqs-prof3", ["mmseqs"], mmseqs_steps("7.5", 3), "hits.m8", (0, 1, 2)),
        Tool("diamond", ["diamond"], diamond_steps, "hits.tsv", (0, 1, 2)),
        Tool("blastp", ["makeblastdb", "blastp"], blast_steps, "hits.tsv", (0, 1, 2)),
        # --tblout: target, t-acc, query, q-acc, full-sequence E-value, full-sequence score, ...
        Tool("phmmer" + ("-max" if a.phmmer_max else ""), ["phmmer"], phmmer_steps, "hits.tbl", (2, 0, 5)),
    ]


def installed(prog):
    return os.access(prog, os.X_OK) if os.sep in prog else common.which(prog) is not None


def run_tool(tool, ds, work_root, keep_hits):
    w = os.path.join(work_root, ds.name, tool.name)
    shutil.rmtree(w, ignore_errors=True)  # databases are rebuilt inside the timed run
    os.makedirs(w)
    row = {"tool": tool.name, "dataset": ds.name, "status": "ok", "auc": float("nan"), "n_scored": 0,
           "n_pairs": len(ds.pairs), "n_hits": 0, "wall_s": float("nan"), "cpu_s": float("nan"),
           "maxrss_mb": float("nan"), "load1": os.getloadavg()[0], "command": ""}
    missing = [p for p in tool.programs if not installed(p)]
    if missing:
        row["status"] = "missing (%s)" % ", ".join(missing)
        print("  %-12s missing: %s" % (tool.name, ", ".join(missing)), flush=True)
        return row
    steps = tool.steps(ds.fasta, w, len(ds.proteins))
    row["command"] = " && ".join(" ".join(argv) for argv, _ in steps).replace(common.REPO + "/", "")
    print("  %-12s %s" % (tool.name, row["command"]), flush=True)
    runs = []
    for argv, out in steps:
        r = common.run_timed(argv)
        runs.append(r)
        if r["rc"] != 0:
            break
    t = common.add_runs(runs)
    row.update(wall_s=t["wall_s"], cpu_s=t["cpu_s"], maxrss_mb=t["maxrss_mb"])
    if t["rc"] != 0:
        row["status"] = "failed (exit %d)" % t["rc"]
        tail = t["stderr"].strip().splitlines()[-5:]
        print("  %-12s FAILED, exit %d:\n    %s" % (tool.name, t["rc"], "\n    ".join(tail)), flush=True)
        return row
    hits = os.path.join(w, tool.hits)
    if not os.path.exists(hits):
        row["status"] = "failed (no output)"
        return row
    q, tcol, s = tool.cols
    r = PairScorer(ds.pairs).read(hits, q, tcol, s, tool.comment, evalue=tool.evalue).result()
    row.update(auc=r["auc"], n_scored=r["n_scored"], n_hits=r["n_hits"])
    if not keep_hits:
        shutil.rmtree(w, ignore_errors=True)
    return row


def fmt(x, spec):
    return "-" if x != x else spec % x  # NaN -> '-'


def print_table(ds, rows, model_line):
    ref = next((r for r in rows if r["tool"] == REFERENCE and r["status"] == "ok"), None)
    print()
    print("%s (%d proteins, %d pairs with both proteins present of %d listed: %d homolog, %d nonhom)" % (
        ds.name, len(ds.proteins), len(ds.pairs), ds.n_listed, ds.n_pos, ds.n_neg))
    head = ("tool", "AUC", "pairs hit", "wall s", "CPU s", "peak RSS MB", "wall/mm7.5", "AUC-mm7.5", "load", "status")
    print("%-12s %7s %10s %8s %8s %11s %10s %9s %5s  %s" % head)
    for r in rows:
        ok = r["status"] == "ok"
        ratio = r["wall_s"] / ref["wall_s"] if ref and ok else float("nan")
        dauc = r["auc"] - ref["auc"] if ref and ok else float("nan")
        r["wall_ratio_vs_mmseqs_s7.5"], r["auc_minus_mmseqs_s7.5"] = ratio, dauc
        frac = "%.1f%%" % (100.0 * r["n_scored"] / max(1, r["n_pairs"])) if ok else "-"
        print("%-12s %7s %10s %8s %8s %11s %10s %9s %5.1f  %s" % (
            r["tool"], fmt(r["auc"], "%.4f"), frac, fmt(r["wall_s"], "%.1f"), fmt(r["cpu_s"], "%.1f"),
            fmt(r["maxrss_mb"], "%.0f"), fmt(ratio, "%.3f"), fmt(dauc, "%+.4f"), r["load1"], r["status"]))
    if ref is None:
        print("(no ratios: %s did not run)" % REFERENCE)
    print("pdr " + model_line)
    print("pairs hit = share of the pairs the tool reported (the rest get its lowest score); load = 1-min "
          "load average when the tool started (%d CPUs)" % (os.cpu_count() or 0))


def write_tsv(path, rows):
    cols = ["dataset", "tool", "status", "auc", "n_pairs", "n_scored", "n_hits", "wall_s", "cpu_s", "maxrss_mb",
            "wall_ratio_vs_mmseqs_s7.5", "auc_minus_mmseqs_s7.5", "load1", "command", "note"]
    with open(path + ".tmp", "w") as f:
        f.write("\t".join(cols) + "\n")
        for r in rows:
            vals = []
            for c in cols:
                v = r.get(c, "")
                vals.append(("%.6g" % v) if isinstance(v, float) else str(v))
            f.write("\t".join(vals) + "\n")
    os.replace(path + ".tmp", path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    names = [n for n, _ in common.DATASETS]
    ap.add_argument("--dataset", default="pfam_max50", choices=names + ["all"])
    ap.add_argument("--shared", default=common.DEFAULT_SHARED, help="shared data dir (default ../shared/data)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--pdr", default=common.default_pdr(), help="pdr binary (default $PDR, build/pdr, build-main/pdr)")
    ap.add_argument("--model", default=None, help="passed to pdr as --model (default: pdr's default model)")
    ap.add_argument("--tools", default=None, help="comma-separated subset of: pdr, pdr-a100, pdr-seg, pdr-a1000, pdr-seg-a1000, "
                    "pdr-aall, pdr-seg-aall, pdr-emb, pdr-seg-emb, pdr-x, pdr-x-emb, pdr-x-a1000, mmseqs-s7.5, mmseqs, "
                    "mmseqs-prof3, diamond, blastp, phmmer (default all; an unknown name lists them)")
    ap.add_argument("--blast-evalue", default="1000", help="blastp -evalue (default 1000)")
    ap.add_argument("--phmmer-max", action="store_true", help="phmmer --max (no heuristic filters; slow)")
    ap.add_argument("--keep-hits", action="store_true", help="keep each tool's output under bench/out/work")
    a = ap.parse_args()
    tools = make_tools(a)
    if a.tools:
        want = [t.strip() for t in a.tools.split(",") if t.strip()]
        known = {t.name.replace("-max", "") if t.name.startswith("phmmer") else t.name: t for t in tools}
        bad = [t for t in want if t not in known]
        if bad:
            ap.error("unknown tool(s) %s; known: %s" % (", ".join(bad), ", ".join(known)))
        tools = [known[t] for t in want]

    seqs = common.read_fasta(common.sequence_source(a.shared))
    work = os.path.join(common.OUT, "work")
    datasets = names if a.dataset == "all" else [a.dataset]
    print("peers.py: %s; %d threads per tool; pdr = %s%s" % (time.strftime("%Y-%m-%d %H:%M"), a.threads, a.pdr,
                                                             (" --model " + a.model) if a.model else ""))
    model_line = common.pdr_model_line(a.pdr, a.model) if installed(a.pdr) else "model: - (pdr missing)"
    print("  pdr " + model_line)
    print("  " + common.cpu_note(), flush=True)
    for name in datasets:
        ds = common.Dataset(name, a.shared, seqs)
        print(ds.summary(), flush=True)
        path = os.path.join(common.OUT, "peers_%s.tsv" % name)
        rows = []
        for t in tools:
            r = run_tool(t, ds, work, a.keep_hits)
            r["note"] = model_line if t.name.startswith("pdr") else ""
            rows.append(r)
            if r["status"] == "ok":
                print("  %-12s AUC %.4f, %.1f s wall, %.1f s CPU, %.0f MB" % (r["tool"], r["auc"], r["wall_s"],
                                                                          r["cpu_s"], r["maxrss_mb"]), flush=True)
            write_tsv(path, rows)  # partial results survive an interrupted run
        print_table(ds, rows, model_line)
        write_tsv(path, rows)
        print("written: %s" % os.path.relpath(path, common.REPO), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
