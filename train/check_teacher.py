#!/usr/bin/python3
"""check_teacher.py: pdr's scores on a teacher set the model never trained on (a check that does
not touch the held-out Pfam pairs, for choices made on them).

Positives: 30,000 MMseqs2 pairs of TEACHER/pos.tsv (E <= 1e-3); negatives: 30,000 pairs of
TEACHER/neg.tsv (MMseqs2 weak hits, E > 1, and composition neighbours): near-misses of an
aligner, not random proteins. Scores, as `pdr search` computes them: cosine; adjusted (cosine
minus the mean of the two background levels); mix0.4 (0.4 x adjusted + 0.6 x the best adjusted
window pair, a segment database). ROC AUC for all positives, the remote ones (E > 1e-10) and the
local ones (alignment covers under half the first protein).

    ./build/pdr embed train/work/teacher40k_s3/subset.fasta -o /tmp/s3seg.h5 --segments
    /usr/bin/python3 train/check_teacher.py --store /tmp/s3seg.h5 [--teacher train/work/teacher40k_s3]
        [--model data/pdr_cnn_v1.h5] [--n 30000] [--seed 3] [--expand 3 [--expand-alpha 1]]

A store without segments gives the cosine and adjusted columns only. --expand K adds the scores of
query expansion (expand.py) with the subset's proteins as the database: "expanded" (cosine of the
expanded vectors) and "exp-adjusted" (minus the mean of their background levels).
"""
import argparse, os, sys
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "bench"))
from auc import roc_auc  # noqa: E402
from background import level  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", required=True, help="pdr embed --segments output for TEACHER/subset.fasta")
    ap.add_argument("--teacher", default=os.path.join(HERE, "work", "teacher40k_s3"))
    ap.add_argument("--model", default=os.path.join(HERE, "..", "data", "pdr_cnn_v1.h5"))
    ap.add_argument("--n", type=int, default=30000)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--expand", type=int, default=0)
    ap.add_argument("--expand-alpha", type=float, default=1.0)
    a = ap.parse_args()
    import h5py
    from eval import require_same_model
    require_same_model(a.store, a.model)
    with h5py.File(a.model, "r") as m:
        B = np.array(m["background"], np.float32)
        SB = np.array(m["background_segments"], np.float32)
        pct = float(m.attrs["background_percentile"])
    with h5py.File(a.store, "r") as f:
        ids = [x.decode() if isinstance(x, bytes) else str(x) for x in f["ids"][()]]
        E = np.array(f["embeddings"], np.float32)
        L = np.array(f["lengths"])
        SE = np.array(f["segments/embeddings"], np.float32)
        own = np.array(f["segments/protein"])
    E /= np.maximum(np.linalg.norm(E, axis=1, keepdims=True), 1e-12)  # stores may be float16
    pos = {x: i for i, x in enumerate(ids)}
    first = np.searchsorted(own, np.arange(len(ids) + 1))
    lev, slev = level(E, B, pct), (level(SE, SB, pct) if len(SE) else None)
    if a.expand:
        from expand import expand
        V = expand(E, lev, E, lev, a.expand, a.expand_alpha, self_index=np.arange(len(E)))
        vlev = level(V, B, pct)
    rng = np.random.default_rng(a.seed)
    P = [l.split("\t") for l in open(os.path.join(a.teacher, "pos.tsv"))]
    N = [l.split("\t") for l in open(os.path.join(a.teacher, "neg.tsv"))]
    pi = rng.choice(len(P), min(a.n, len(P)), replace=False)
    ni = rng.choice(len(N), min(a.n, len(N)), replace=False)
    pa = np.array([pos[P[i][0]] for i in pi])
    pb = np.array([pos[P[i][1]] for i in pi])
    ev = np.array([float(P[i][2]) for i in pi])
    cov = np.array([(int(P[i][5]) - int(P[i][4]) + 1) / L[pos[P[i][0]]] for i in pi])
    na = np.array([pos[N[i][0]] for i in ni])
    nb = np.array([pos[N[i][1]] for i in ni])

    def scores(x, y):
        c = np.sum(E[x] * E[y], 1)
        adj = c - (lev[x] + lev[y]) / 2
        out = {"cosine": c, "adjusted": adj}
        if slev is not None:
            seg = np.empty(len(x))
            for t, (i, j) in enumerate(zip(x, y)):
                si, sj = slice(first[i], first[i + 1]), slice(first[j], first[j + 1])
                seg[t] = (SE[si] @ SE[sj].T - 0.5 * (slev[si][:, None] + slev[sj][None, :])).max()
            out["mix0.4"] = 0.4 * adj + 0.6 * seg
        if a.expand:
            out["expanded"] = np.sum(V[x] * V[y], 1)
            out["exp-adjusted"] = out["expanded"] - (vlev[x] + vlev[y]) / 2
        return out

    sp, sn = scores(pa, pb), scores(na, nb)
    print("check_teacher.py: %s, %d positives, %d negatives; ROC AUC" % (a.teacher, len(pi), len(ni)))
    for name, sel in (("all", np.ones(len(pi), bool)), ("remote E>1e-10", ev > 1e-10), ("local cov<0.5", cov < 0.5)):
        lab = np.r_[np.ones(sel.sum()), np.zeros(len(na))].astype(bool)
        print("  %-15s %6d  " % (name, sel.sum()) +
              "  ".join("%s %.4f" % (k, roc_auc(np.r_[sp[k][sel], sn[k]], lab)) for k in sp))


if __name__ == "__main__":
    main()
