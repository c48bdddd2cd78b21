#!/usr/bin/python3
"""align_depth.py: the all-vs-all ROC AUC that `pdr search --align N` would give, for many N, from
two runs: one with every pair aligned (--align all) and one with none (--align 0).

pdr aligns a query's first N candidates by embedding rank; an aligned pair's E-value combines
both signals, an unaligned one keeps the embedding's. So for each listed pair and direction
(query -> target): the target's rank in the --align 0 run (column 5) decides; rank <= N takes
the E-value of the all-aligned run, otherwise that of the --align 0 run. The pair's score is the
larger -log10 E of its two directions, and the AUC follows the protocol of auc.py. Both runs must
be all-vs-all with -k at least the database size (peers.py's pdr-seg-aall and pdr-seg-emb with
--keep-hits, or pdr easy-search F F OUT -k N ...), on the same database and model.

usage: /usr/bin/python3 bench/align_depth.py DATASET ALL_ALIGNED.tsv NONE_ALIGNED.tsv
           [--depths 50,200,500,1000,2000,3000] [--shared ../shared/data]
e.g.   /usr/bin/python3 bench/align_depth.py pfam_local \\
           bench/out/work/pfam_local/pdr-seg-aall/hits.tsv bench/out/work/pfam_local/pdr-seg-emb/hits.tsv
"""
import argparse
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from auc import roc_auc  # noqa: E402


def read_directed(path, wanted):
    """-> {(query, target): (rank, -log10 E, bits or 0 when not aligned)} for the directed pairs in
    wanted."""
    out = {}
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            w = line.rstrip("\n").split("\t")
            if len(w) < 6:
                common.die("%s: line %d: expected pdr's TSV (query, target, score, evalue, rank, ...)" %
                           (path, lineno))
            key = (w[0], w[1])
            if key in wanted:
                bits = float(w[8]) if len(w) > 8 and w[8] != "-" else 0.0
                out[key] = (int(w[4]), -math.log10(max(float(w[3]), 1e-300)), bits)
    return out


def read_runs(ap, a, ds):
    """(depths, all-aligned and none-aligned read_directed of the dataset's pairs, both directions)."""
    try:
        depths = [int(x) for x in a.depths.split(",") if x.strip()]
    except ValueError:
        ap.error("--depths: comma-separated integers, got %r" % a.depths)
    wanted = set()
    for x, y, _ in ds.pairs:
        wanted.add((x, y))
        wanted.add((y, x))
    aligned = read_directed(a.all_aligned, wanted)
    plain = read_directed(a.none_aligned, wanted)
    missing = sum(1 for d in wanted if d not in plain or d not in aligned)
    if missing:
        common.die("%d directed pairs are missing from a run: both must be all-vs-all with -k >= the database "
                   "size" % missing)
    return depths, aligned, plain


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset", choices=[n for n, _ in common.DATASETS])
    ap.add_argument("all_aligned")
    ap.add_argument("none_aligned")
    ap.add_argument("--depths", default="50,200,500,1000,2000,3000")
    ap.add_argument("--shared", default=common.DEFAULT_SHARED)
    a = ap.parse_args()
    ds = common.Dataset(a.dataset, a.shared)
    print(ds.summary())
    depths, aligned, plain = read_runs(ap, a, ds)
    labels = np.array([hom for _, _, hom in ds.pairs])
    print("%-8s %s" % ("--align", "ROC AUC"))
    for n in depths + [None]:
        scores = np.empty(len(ds.pairs))
        for i, (x, y, _) in enumerate(ds.pairs):
            best = -np.inf
            for d in ((x, y), (y, x)):
                rank, e_plain, _ = plain[d]
                best = max(best, aligned[d][1] if n is None or rank <= n else e_plain)
            scores[i] = best
        print("%-8s %.4f" % ("all" if n is None else n, roc_auc(scores, labels)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
