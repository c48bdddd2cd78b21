#!/usr/bin/python3
"""seg_chain.py: local homology from chains of window pairs (session 26 experiment, CPU only).

pdr's segment score is the best single adjusted window pair (100-residue windows, stride 50).
A shared domain of 200-300 residues spans several consecutive windows in both proteins, in the
same order; a chance match between unrelated proteins is usually one window pair. This script
scores a pair by the best chain of window pairs instead, on the matrix X = adjusted window
cosines - T (T a threshold), and prints the held-out ROC AUC of each score beside the shipped
ones:

  seg-adj        max X + T: the best adjusted window pair (what pdr uses now)
  diag T         best ungapped chain: maximum-sum run along one diagonal of X (Kadane); equal to
                 max X when no two consecutive pairs are both above T
  sw T G         best gapped chain: Smith-Waterman over X with gap cost G per skipped window,
                 floored at max X (so it never falls below the single best pair)
  mix*           0.4 x adjusted whole + 0.6 x the segment score (the shipped mix uses seg-adj)

Input: a pdr store with segments of the held-out FASTA and the model file whose backgrounds
adjust it (as pdr search does):

    ./build/pdr embed train/work/heldout.fasta -o /tmp/hd_seg.h5 --segments
    /usr/bin/python3 train/seg_chain.py --store /tmp/hd_seg.h5 [--model data/pdr_cnn_v1.h5]

With --teacher DIR (a teacher set never trained on, as check_teacher.py uses), the same scores on
its positives (all, remote, local) against its hard negatives instead of the Pfam pairs.
"""
import argparse, os, sys
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "bench"))
from auc import roc_auc  # noqa: E402
import eval as ev  # noqa: E402


def diag_chain(X):
    """Best sum of a contiguous run along any diagonal of X (at least one cell)."""
    na, nb = X.shape
    best = -np.inf
    for d in range(-(na - 1), nb):
        v = np.diagonal(X, offset=d)
        run, top = 0.0, -np.inf
        for x in v:
            run = x if run <= 0 else run + x
            if run > top:
                top = run
        if top > best:
            best = top
    return best


def sw_chain(X, gap):
    """Smith-Waterman over X (window pairs as residues), linear gap cost, floored at max X."""
    na, nb = X.shape
    H = np.zeros((na + 1, nb + 1))
    best = X.max()
    for i in range(1, na + 1):
        for j in range(1, nb + 1):
            h = max(0.0, H[i - 1, j - 1] + X[i - 1, j - 1], H[i - 1, j] - gap, H[i, j - 1] - gap)
            H[i, j] = h
            if h > best:
                best = h
    return best


def seg_matrix(a, b, segs, sl):
    return segs[a] @ segs[b].T - 0.5 * (sl[a][:, None] + sl[b][None, :])


VARIANTS = [("diag", 0.0, None), ("diag", 0.05, None), ("diag", -0.05, None),
            ("sw", 0.0, 0.05), ("sw", 0.05, 0.05)]


def scores_for(pairs, emb, segs, adj):
    whole, best_pair = ev.adjusted_scores(pairs, emb, segs, adj)
    out = {"adjusted": whole, "seg-adj": best_pair}
    mats = [seg_matrix(a, b, segs, adj["seg_lev"]) for a, b in pairs]
    for kind, t, g in VARIANTS:
        name = "%s %g" % (kind, t) + ("" if g is None else " g%g" % g)
        if kind == "diag":
            out[name] = np.array([diag_chain(M - t) for M in mats]) + t
        else:
            out[name] = np.array([sw_chain(M - t, g) for M in mats]) + t
    return out


def report(title, groups):
    """groups: list of (label, scores dict, labels array)."""
    names = list(groups[0][1].keys())
    print(title)
    print("%-14s %7s " % ("set", "pairs") + " ".join("%12s" % n for n in names)
          + " " + " ".join("%12s" % ("mix " + n) for n in names[1:]))
    for label, sc, y in groups:
        line = "%-14s %7d " % (label, len(y)) + " ".join("%12.4f" % roc_auc(sc[n], y) for n in names)
        line += " " + " ".join("%12.4f" % roc_auc(0.4 * sc["adjusted"] + 0.6 * sc[n], y) for n in names[1:])
        print(line, flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", required=True)
    ap.add_argument("--model", default=os.path.join(HERE, "..", "data", "pdr_cnn_v1.h5"))
    ap.add_argument("--heldout", default=os.path.join(HERE, "work", "heldout.fasta"))
    ap.add_argument("--shared", default=os.path.join(HERE, "..", "..", "shared", "data"))
    ap.add_argument("--teacher", default=None)
    ap.add_argument("--n", type=int, default=30000)
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()

    ev.require_same_model(a.store, a.model)
    emb = ev.load_store(a.store)
    segs = ev.load_store_segments(a.store)
    if segs is None:
        sys.exit("seg_chain.py: %s has no segments (pdr embed --segments)" % a.store)
    adj = ev.make_adjust(a.model, emb, segs)
    if a.teacher is None:
        present = set(ev.read_fasta(a.heldout)) & set(emb)
        bench = ev.load_pairs(a.shared, present)
        groups = []
        for name, _ in ev.DATASETS:
            pairs, labels, _total = bench[name]
            groups.append((name, scores_for(pairs, emb, segs, adj), labels))
        report("ROC AUC, held-out Pfam pairs, store %s, backgrounds of %s" % (a.store, a.model), groups)
        return
    groups = teacher_groups(a, emb, segs, adj)
    report("ROC AUC, teacher set %s (positives vs hard negatives), store %s" % (a.teacher, a.store), groups)


def teacher_groups(a, emb, segs, adj):
    """check_teacher.py's pairs: a.n positives (E <= 1e-3) and a.n hard negatives, seeded."""
    rng = np.random.default_rng(a.seed)
    P = [l.split("\t") for l in open(os.path.join(a.teacher, "pos.tsv"))]
    N = [l.split("\t") for l in open(os.path.join(a.teacher, "neg.tsv"))]
    pos = [P[i] for i in rng.choice(len(P), min(a.n, len(P)), replace=False)]
    neg = [N[i] for i in rng.choice(len(N), min(a.n, len(N)), replace=False)]
    seqlen = {x: len(s) for x, s in ev.read_fasta(os.path.join(a.teacher, "subset.fasta")).items()}
    evalue = np.array([float(p[2]) for p in pos])
    cov = np.array([(int(p[5]) - int(p[4]) + 1) / seqlen[p[0]] for p in pos])
    sp = scores_for([(p[0], p[1]) for p in pos], emb, segs, adj)
    sn = scores_for([(p[0], p[1]) for p in neg], emb, segs, adj)
    groups = []
    for label, keep in (("all", np.ones(len(pos), bool)), ("remote", evalue > 1e-10), ("local", cov < 0.5)):
        sc = {k: np.concatenate([sp[k][keep], sn[k]]) for k in sp}
        y = np.concatenate([np.ones(keep.sum()), np.zeros(len(sn["adjusted"]))])
        groups.append((label, sc, y))
    return groups


if __name__ == "__main__":
    main()
