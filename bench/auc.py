#!/usr/bin/python3
"""auc.py: pair ROC AUC of a search tool's hits, by the protocol of ../shared/data/README.md.

Every listed pair gets the tool's score for it, the larger of the two directions (a->b, b->a);
a pair the tool did not report in either direction gets the tool's lowest score, here a value
below every score it reported, so that all unreported pairs tie at the bottom. The AUC is the
Mann-Whitney statistic over all pairs (homolog = positive), ties counted one half.

As a script: AUC of one hits file against one dataset, e.g.
  /usr/bin/python3 bench/auc.py pfam_max50 hits.m8 --score-col 12     (BLAST -outfmt 6: bitscore)
  /usr/bin/python3 bench/auc.py pfam_max50 pdr.tsv                      (pdr: score is column 3)
  /usr/bin/python3 bench/auc.py pfam_nomax50 m8 --evalue --by-label --cut 1e-3   (per label, E-values)
  /usr/bin/python3 bench/auc.py --selftest
"""
import argparse
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def roc_auc(scores, labels):
    """Rank-based ROC AUC (Mann-Whitney U); tied scores share their average rank."""
    s = np.asarray(scores, np.float64)
    y = np.asarray(labels, bool)
    npos, nneg = int(y.sum()), int((~y).sum())
    if npos == 0 or nneg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ss = s[order]
    bounds = np.flatnonzero(np.diff(ss) != 0) + 1
    starts = np.concatenate([[0], bounds])
    ends = np.concatenate([bounds, [len(s)]])
    ranks = np.empty(len(s), np.float64)
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    return float((ranks[y].sum() - npos * (npos + 1) / 2.0) / (npos * nneg))


class PairScorer:
    """Collects the best score per listed pair from hit lines of any tabular format."""

    def __init__(self, pairs):
        self.pairs = pairs
        # both orientations map to one slot per unordered pair
        self.slot = {}
        for a, b, _ in pairs:
            key = (a, b) if a <= b else (b, a)
            if key not in self.slot:
                self.slot[key] = len(self.slot)
        self.best = np.full(len(self.slot), -np.inf)
        self.lowest = np.inf  # lowest score the tool reported for any hit, listed pair or not
        self.n_hits = 0

    def add(self, q, t, score):
        self.n_hits += 1
        if score < self.lowest:
            self.lowest = score
        i = self.slot.get((q, t) if q <= t else (t, q))
        if i is not None and score > self.best[i]:
            self.best[i] = score

    def read(self, path, qcol=0, tcol=1, scol=2, comment="#", evalue=False):
        """Hits file, whitespace- or tab-separated, 0-based columns. With evalue, the score column
        holds E-values (smaller is better) and the score is -log10(max(E, 1e-300))."""
        slot, best = self.slot, self.best
        lowest, n = self.lowest, 0
        need = max(qcol, tcol, scol) + 1
        with open(path) as f:
            for line in f:
                if line.startswith(comment):
                    continue
                w = line.split(None, need)
                if len(w) < need:
                    continue
                s = float(w[scol])
                if evalue:
                    s = -math.log10(max(s, 1e-300))
                n += 1
                if s < lowest:
                    lowest = s
                q, t = w[qcol], w[tcol]
                i = slot.get((q, t) if q <= t else (t, q))
                if i is not None and s > best[i]:
                    best[i] = s
        self.lowest, self.n_hits = lowest, self.n_hits + n
        return self

    def pair_scores(self):
        """-> (score of every listed pair, in order, unreported ones at the floor; reported mask)."""
        floor = (self.lowest if np.isfinite(self.lowest) else 0.0) - 1.0
        idx = [self.slot[(a, b) if a <= b else (b, a)] for a, b, _ in self.pairs]
        best = self.best[idx]
        return np.where(np.isfinite(best), best, floor), np.isfinite(best)

    def result(self):
        """-> dict(auc, n_pairs, n_scored (pairs the tool reported), n_hits)."""
        scores, scored = self.pair_scores()
        labels = [h for _, _, h in self.pairs]
        return {"auc": roc_auc(scores, labels), "n_pairs": len(self.pairs), "n_scored": int(scored.sum()),
                "n_hits": self.n_hits}


def selftest():
    ok = True

    def check(name, got, want):
        nonlocal ok
        good = abs(got - want) < 1e-12
        ok &= good
        print("%s %s: got %.6f want %.6f" % ("ok  " if good else "FAIL", name, got, want))

    check("perfect separation", roc_auc([0.9, 0.8, 0.1, 0.2], [1, 1, 0, 0]), 1.0)
    check("inverted", roc_auc([0.1, 0.2, 0.9, 0.8], [1, 1, 0, 0]), 0.0)
    check("all tied", roc_auc([1, 1, 1, 1], [1, 0, 1, 0]), 0.5)
    # pos {3, 1}, neg {2, 2}: pairs (3>2) x2 = 2, (1<2) x2 = 0 -> 2/4
    check("hand count", roc_auc([3, 1, 2, 2], [1, 1, 0, 0]), 0.5)
    # pos {2}, neg {2, 1}: tie 0.5 + win 1 -> 1.5/2
    check("tie counts half", roc_auc([2, 2, 1], [1, 0, 0]), 0.75)
    ps = PairScorer([("A", "B", True), ("C", "D", False), ("A", "C", False), ("B", "D", True)])
    ps.add("B", "A", 50.0)   # reverse direction counts for (A, B)
    ps.add("A", "B", 20.0)   # the larger direction wins
    ps.add("C", "D", 30.0)
    ps.add("X", "Y", 10.0)   # unlisted hit: sets the tool's floor only
    r = ps.result()          # scores: AB 50, CD 30, AC 9 (floor), BD 9 (floor)
    # pos {50, 9} vs neg {30, 9}: 1 + 1 + 0 + 0.5
    check("pair max and floor", r["auc"], 2.5 / 4.0)
    check("pairs scored", r["n_scored"], 2)
    sc, rep = ps.pair_scores()
    check("pair scores in order", float(np.abs(sc - np.array([50.0, 30.0, 9.0, 9.0])).max()), 0.0)
    check("reported mask", float((rep == np.array([True, True, False, False])).all()), 1.0)
    print("selftest", "passed" if ok else "FAILED")
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset", nargs="?")
    ap.add_argument("hits", nargs="?")
    ap.add_argument("--shared", default=None, help="shared data dir (default ../shared/data)")
    ap.add_argument("--query-col", type=int, default=1, help="1-based column of the query id (1)")
    ap.add_argument("--target-col", type=int, default=2, help="1-based column of the target id (2)")
    ap.add_argument("--score-col", type=int, default=3, help="1-based column of the score (3)")
    ap.add_argument("--evalue", action="store_true", help="the score column holds E-values (smaller is better)")
    ap.add_argument("--by-label", action="store_true", help="also each homolog label (hom-pfam, hom-clan, "
                    "hom-mixed, localhom) against the nonhom pairs: AUC and the share reported at --cut")
    ap.add_argument("--cut", type=float, default=None, help="with --by-label: the share of pairs scored >= CUT "
                    "(with --evalue: E <= CUT), e.g. a teacher's positive cut-off 1e-3")
    ap.add_argument("--selftest", action="store_true")
    a = ap.parse_args()
    if a.selftest:
        return selftest()
    if not a.dataset or not a.hits:
        ap.error("need DATASET and HITS (or --selftest)")
    import common
    ds = common.Dataset(a.dataset, a.shared or common.DEFAULT_SHARED)
    print(ds.summary())
    ps = PairScorer(ds.pairs).read(a.hits, a.query_col - 1, a.target_col - 1, a.score_col - 1, evalue=a.evalue)
    r = ps.result()
    print("AUC %.4f over %d pairs (%d reported by the tool, %d hit lines)" % (r["auc"], r["n_pairs"],
                                                                              r["n_scored"], r["n_hits"]))
    if a.by_label:
        by_label(ds, ps, a.cut, a.evalue)
    return 0


def by_label(ds, ps, cut, evalue):
    """Per homolog label: AUC against the nonhom pairs, share reported, share at the cut-off."""
    scores, reported = ps.pair_scores()
    kinds = np.array(ds.kinds)
    neg = kinds == "nonhom"
    thr = None if cut is None else (-math.log10(max(cut, 1e-300)) if evalue else cut)
    print("%-10s %6s %8s %9s" % ("label", "pairs", "AUC", "reported") +
          ("" if thr is None else " %12s" % ("at E<=%g" % cut if evalue else "at >=%g" % cut)))
    for lab in sorted(set(ds.kinds)):
        sel = kinds == lab
        auc = float("nan") if lab == "nonhom" else roc_auc(scores[sel | neg], kinds[sel | neg] == lab)
        line = "%-10s %6d %8.4f %8.1f%%" % (lab, int(sel.sum()), auc, 100.0 * reported[sel].mean())
        if thr is not None:
            line += " %11.1f%%" % (100.0 * (reported[sel] & (scores[sel] >= thr)).mean())
        print(line)


if __name__ == "__main__":
    sys.exit(main())
