#!/usr/bin/python3
"""evalue_check.py: are pdr's E-values honest? Observed false hits against the number expected.

pdr's E-value of a hit is E = N * P(S >= score): the expected number of non-homologous database
proteins scoring at least that high, N the database size. So for one non-homologous
(query, target) pair, P(E <= t) = t / N, and a set of M known non-homologous directed pairs
should give about M * t / N hits with E <= t. Two sets of known non-homologs:

  labelled  the pairs of DATASET (default pfam_nomax50) labelled 'nonhom', both directions, both
            proteins in the database; expected = M * t / N. Real proteins, real pairs: the test
            the issue asks for, but M is modest, so the counts at E <= 1 are small.
  shuffled  Q held-out proteins with their residues shuffled (same length and composition, no
            homolog anywhere); every hit is false; expected = Q * t (the sum over queries of
            the threshold). Many more events, but an easier null than real proteins.

The database is the held-out proteins (every accession of heldout_ids.txt that has a sequence;
--db dataset uses only DATASET's proteins). pdr makedb fits the
null once; pdr search reports up to -k hits per query with E <= the largest threshold. A query
whose every one of k hits passes that threshold may have lost hits to the limit: they are
counted and reported (raise -k if any).

The target is observed/expected within 2x (0.5 to 2) at E <= 1. Prints one table, writes
bench/out/evalue_check_<dataset>[_seg|_x].tsv (--segments, --expand).

The labels are Pfam's, and a pair labelled non-homologous can still share a real similarity (a
domain or repeat the labels do not name). So each labelled pair that pdr reports at E <= 1 is
also aligned by BLASTp (pairwise, `-dbsize` the database's residues, its default scoring and
composition statistics): the pairs BLASTp reports at E <= 1 too are listed and counted apart
(`--no-blast`: skip; needs ncbi-blast+).

usage: /usr/bin/python3 bench/evalue_check.py [--dataset pfam_nomax50] [--db heldout|dataset]
           [--model M] [--pdr build/pdr] [--threads 2] [-k 1000] [--shuffled 2000] [--seed 1]
           [--segments]   (a segment database: pdr makedb --segments)
           [--expand]     (query expansion: pdr makedb --expand) [--no-blast] [--keep]
"""
import argparse
import math
import os
import random
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import common  # noqa: E402

THRESHOLDS = (0.1, 1.0, 10.0, 100.0)


def poisson_ci(n, z=1.959964):
    """Approximate 95% interval of a Poisson mean from an observed count (Wilson-Hilferty)."""
    lo = 0.0 if n == 0 else n * (1 - 1 / (9 * n) - z / (3 * math.sqrt(n))) ** 3
    m = n + 1
    hi = m * (1 - 1 / (9 * m) + z / (3 * math.sqrt(m))) ** 3
    return lo, hi


def write_fasta(path, items):
    with open(path + ".tmp", "w") as f:
        for acc, seq in items:
            f.write(">%s\n%s\n" % (acc, seq))
    os.replace(path + ".tmp", path)


def run(argv, what):
    print("  $ " + " ".join(argv).replace(common.REPO + "/", ""), flush=True)
    r = common.run_timed(argv)
    if r["rc"] != 0:
        common.die("%s failed (exit %d):\n%s" % (what, r["rc"], r["stderr"][-2000:]))
    print("    %.1f s wall, %.1f s CPU, %.0f MB peak RSS" % (r["wall_s"], r["cpu_s"], r["maxrss_mb"]), flush=True)
    return r


def read_hits(path, emax):
    """pdr TSV -> ({query: {target: evalue}} for evalue <= emax, {query: (lines, largest evalue)})."""
    hits, lines = {}, {}
    with open(path) as f:
        for line in f:
            w = line.split("\t")
            q, t, e = w[0], w[1], float(w[3])
            n, last = lines.get(q, (0, 0.0))
            lines[q] = (n + 1, max(last, e))
            if e <= emax:
                hits.setdefault(q, {})[t] = e
    return hits, lines


def blastp_evalue(a_seq, b_seq, dbsize, work):
    """BLASTp's E-value of the best local alignment of two sequences in a database of dbsize
    residues (its default scoring and composition statistics), or None without a hit."""
    qa, qb = os.path.join(work, "bq.fasta"), os.path.join(work, "bs.fasta")
    write_fasta(qa, [("a", a_seq)])
    write_fasta(qb, [("b", b_seq)])
    r = subprocess.run(["blastp", "-query", qa, "-subject", qb, "-dbsize", str(dbsize), "-outfmt", "6 evalue",
                        "-max_hsps", "1"], capture_output=True, text=True)
    if r.returncode != 0:
        common.die("blastp failed (exit %d): %s" % (r.returncode, r.stderr[-500:]))
    lines = r.stdout.split()
    return float(lines[0]) if lines else None


def blast_cross_check(flagged, seqs, dbsize, exp_per_e, work):
    """List the labelled pairs pdr reports at E <= 1 with BLASTp's E-value for the same pair."""
    if not shutil.which("blastp"):
        print("(no blastp: the labelled pairs at E <= 1 are not cross-checked; install ncbi-blast+)")
        return
    cache = {}
    print()
    print("Labelled non-homologous pairs pdr reports at E <= 1, and BLASTp's E-value for each pair "
          "(pairwise, -dbsize %d):" % dbsize)
    for al, pairs in flagged.items():
        both = 0
        for q, d, e in pairs:
            key = tuple(sorted((q, d)))
            if key not in cache:
                cache[key] = blastp_evalue(seqs[q], seqs[d], dbsize, work)
            be = cache[key]
            both += be is not None and be <= 1.0
            print("  --align %-4s %-12s %-12s pdr E %-10.3g BLASTp E %s" % (al, q, d, e, "-" if be is None else "%.3g" % be))
        exp = exp_per_e * 1.0
        print("  --align %s: %d of %d also at BLASTp E <= 1 (similarity the labels miss); the other %d against "
              "%.2f expected: %.2fx" % (al, both, len(pairs), len(pairs) - both, exp, (len(pairs) - both) / exp))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="pfam_nomax50", choices=[n for n, _ in common.DATASETS])
    ap.add_argument("--db", default="heldout", choices=["heldout", "dataset"],
                    help="database: all held-out proteins (default) or the dataset's proteins")
    ap.add_argument("--shared", default=common.DEFAULT_SHARED)
    ap.add_argument("--pdr", default=common.default_pdr())
    ap.add_argument("--model", default=None, help="passed to pdr makedb as --model")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("-k", type=int, default=1000, help="hits per query asked of pdr search (default 1000)")
    ap.add_argument("--shuffled", type=int, default=2000, help="shuffled queries (0: skip; default 2000)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--segments", action="store_true", help="pdr makedb --segments (whole + segment scores)")
    ap.add_argument("--expand", action="store_true", help="pdr makedb --expand (query expansion)")
    ap.add_argument("--align", default="default",
                    help="comma-separated --align values to check on one database, e.g. 10,0 "
                         "(default: pdr's own default)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (database and hits)")
    ap.add_argument("--no-blast", action="store_true",
                    help="do not cross-check the labelled pairs pdr reports at E <= 1 with BLASTp")
    a = ap.parse_args()
    if not os.access(a.pdr, os.X_OK):
        common.die("%s: no pdr binary (build it, or pass --pdr)" % a.pdr)
    emax = max(THRESHOLDS)

    seqs = common.read_fasta(common.sequence_source(a.shared))
    ds = common.Dataset(a.dataset, a.shared, seqs)
    print(ds.summary())
    work = os.path.join(common.OUT, "work", "evalue_%s_%s" % (a.dataset, a.db))
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    if a.db == "heldout":
        held = set()
        hp = os.path.join(a.shared, "homology", "heldout_ids.txt")
        with open(hp) as f:
            held = {x.strip() for x in f if x.strip()}
        db_ids = [x for x in seqs if x in held]
        db_fasta = os.path.join(work, "db.fasta")
        write_fasta(db_fasta, ((x, seqs[x]) for x in db_ids))
    else:
        db_ids, db_fasta = list(ds.proteins), ds.fasta
    n_db = len(db_ids)
    in_db = set(db_ids)

    # directed non-homologous pairs, deduplicated; queries are their first members
    directed = set()
    homolog = set()
    for x, y, hom in ds.pairs:
        if x == y or x not in in_db or y not in in_db:
            continue
        (homolog if hom else directed).update({(x, y), (y, x)})
    conflict = directed & homolog
    directed -= conflict
    queries = sorted({q for q, _ in directed})
    q_fasta = os.path.join(work, "queries.fasta")
    write_fasta(q_fasta, ((q, seqs[q]) for q in queries))

    rng = random.Random(a.seed)
    shuf_ids = rng.sample(db_ids, min(a.shuffled, n_db)) if a.shuffled > 0 else []
    s_fasta = os.path.join(work, "shuffled.fasta")
    items = []
    for x in shuf_ids:
        s = list(seqs[x])
        rng.shuffle(s)
        items.append(("shuf_" + x, "".join(s)))
    write_fasta(s_fasta, items)

    print("evalue_check.py: %s; database %d proteins (%s); %d labelled non-homologous directed pairs "
          "over %d queries%s; %d shuffled queries; pdr = %s%s" % (
              time.strftime("%Y-%m-%d %H:%M"), n_db, a.db, len(directed), len(queries),
              (" (%d pairs labelled both ways dropped)" % len(conflict)) if conflict else "", len(items), a.pdr,
              (" --model " + a.model) if a.model else ""))
    model_line = common.pdr_model_line(a.pdr, a.model)
    print("  pdr " + model_line)
    print("  " + common.cpu_note(), flush=True)
    dbdir = os.path.join(work, "db_seg" if a.segments else "db_x" if a.expand else "db")
    mk = [a.pdr, "makedb", db_fasta, dbdir, "--threads", str(a.threads)]
    if a.model:
        mk += ["--model", a.model]
    if a.segments:
        mk.append("--segments")
    if a.expand:
        mk.append("--expand")
    run(mk, "pdr makedb")
    with open(os.path.join(dbdir, "calibration_expanded.txt" if a.expand else "calibration.txt")) as f:
        cal = dict(line.rstrip("\n").split("\t", 1) for line in f if "\t" in line)
    print("  calibration: n_null %s, threshold (99th pct) %s, lambda %s" % (
        cal.get("n_null", "?"), cal.get("threshold", "?"), cal.get("lambda", "?")))

    rows = []

    def search(fasta, name, align):
        out = os.path.join(work, "%s_align%s.tsv" % (name, align))
        cmd = [a.pdr, "search", dbdir, fasta, out, "-k", str(a.k), "-e", "%g" % emax, "--threads", str(a.threads)]
        if align != "default":
            cmd += ["--align", align]
        run(cmd, "pdr search (%s)" % name)
        hits, lines = read_hits(out, emax)
        # hits are sorted by score, so E grows down the list: a query with k lines whose k-th
        # E-value is <= t may have had further hits with E <= t cut off by -k
        truncated = lambda t: sum(1 for n, last in lines.values() if n >= a.k and last <= t)
        return hits, truncated

    aligns = [x.strip() for x in a.align.split(",") if x.strip()]
    flagged = {}  # align -> [(query, target, pdr E)] labelled pairs at E <= 1
    for al in aligns:
        hits, trunc = search(q_fasta, "labelled", al)
        for t in THRESHOLDS:
            obs = sum(1 for q, d in directed if hits.get(q, {}).get(d, math.inf) <= t)
            rows.append((al, "labelled", len(directed), n_db, t, obs, len(directed) * t / n_db, trunc(t)))
        flagged[al] = sorted((q, d, hits[q][d]) for q, d in directed if hits.get(q, {}).get(d, math.inf) <= 1.0)
        if items:
            shits, strunc = search(s_fasta, "shuffled", al)
            for t in THRESHOLDS:
                obs = sum(1 for h in shits.values() for e in h.values() if e <= t)
                rows.append((al, "shuffled", len(items), n_db, t, obs, len(items) * t, strunc(t)))

    print()
    print("E-value honesty, %s, database %d proteins; pdr %s" % (a.dataset, n_db, model_line))
    print("%-8s %-9s %8s %6s %8s %10s %8s %14s  %s" % ("--align", "null set", "trials", "E <=", "observed", "expected",
                                                   "obs/exp", "ratio 95% CI", "verdict"))
    tsv = ["align\tnull_set\ttrials\tn_db\tE_threshold\tobserved\texpected\tratio\tratio_lo\tratio_hi\t"
           "truncated_queries"]
    for al, kind, trials, n, t, obs, exp, tr in rows:
        lo, hi = poisson_ci(obs)
        ratio = obs / exp if exp > 0 else float("nan")
        verdict = "within 2x" if 0.5 <= ratio <= 2 else ("too many false hits" if ratio > 2 else "conservative")
        if t != 1.0:
            verdict = ""
        print("%-8s %-9s %8d %6g %8d %10.2f %8.2f %6.2f - %-6.2f  %s" % (
            al, kind, trials, t, obs, exp, ratio, lo / exp, hi / exp, verdict + (" (lower bound: -k)" if tr else "")))
        tsv.append("%s\t%s\t%d\t%d\t%g\t%d\t%.6g\t%.6g\t%.6g\t%.6g\t%d" % (al, kind, trials, n, t, obs, exp, ratio,
                                                                      lo / exp, hi / exp, tr))
    for al, kind, trials, n, t, obs, exp, tr in rows:
        if tr:
            print("WARNING: --align %s, %s, E <= %g: %d queries filled all k=%d hits below that E-value, so the observed "
                  "count is a lower bound; raise -k" % (al, kind, t, tr, a.k))
    print("trials: directed non-homologous pairs (labelled) or queries (shuffled); expected = trials * t / N "
          "(labelled) or trials * t (shuffled); verdict at E <= 1 against the 2x target")
    if not a.no_blast and any(flagged.values()):
        blast_cross_check(flagged, seqs, sum(len(seqs[x]) for x in db_ids), len(directed) / n_db, work)
    path = os.path.join(common.OUT, "evalue_check_%s%s.tsv" % (a.dataset, "_seg" if a.segments else
                                                              "_x" if a.expand else ""))
    with open(path + ".tmp", "w") as f:
        f.write("\n".join(tsv) + "\n")
    os.replace(path + ".tmp", path)
    print("written: %s" % os.path.relpath(path, common.REPO))
    if not a.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
