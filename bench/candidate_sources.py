#!/usr/bin/python3
"""candidate_sources.py: would another embedding ranking choose better alignment candidates?

`pdr search --segments --align N` aligns each query's first N candidates by the combined
embedding score, mix = 0.4 whole adjusted + 0.6 best adjusted segment pair (index/pdr_segdb.h).
This script ranks every target of every query by three embedding scores, the mix, the best
segment pair alone and the whole-protein adjusted score alone (all-vs-all over a dataset's
proteins, from a pdr store made with --segments), and simulates, as bench/align_depth.py does,
the ROC AUC of aligning a union of candidates: the first a by the mix and the first b by another
score. A pair's score in a direction is the all-aligned run's combined E-value when the target is
a candidate, else the --align 0 run's embedding E-value; the pair takes the better direction.
It also prints the alignment bit scores of the labelled homologs the mix ranks beyond N, against
the non-homologous pairs': what an alignment prefilter would have to find.

usage: /usr/bin/python3 bench/candidate_sources.py DATASET STORE.h5 ALL_ALIGNED.tsv NONE_ALIGNED.tsv
           [--model data/pdr_cnn_v1.h5] [--depths 50,200,500,1000,2000] [--bits-depth 1000]
           [--shared ../shared/data]
e.g.   ./build/pdr embed bench/out/data/pfam_local.fasta -o /tmp/local_seg.h5 --segments
       /usr/bin/python3 bench/candidate_sources.py pfam_local /tmp/local_seg.h5 \\
           bench/out/work/pfam_local/pdr-seg-aall/hits.tsv bench/out/work/pfam_local/pdr-seg-emb/hits.tsv
(the two TSVs as for bench/align_depth.py).
"""
import argparse
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "train"))
import common  # noqa: E402
import align_depth  # noqa: E402
import eval as ev  # noqa: E402
from auc import roc_auc  # noqa: E402

WHOLE_WEIGHT = 0.4  # PDR_SEGDB_WHOLE_WEIGHT


def score_matrices(store, model, ids):
    """(whole adjusted [n, n], best adjusted segment pair [n, n]) over the proteins ids."""
    ev.require_same_model(store, model)
    emb = ev.load_store(store)
    segs = ev.load_store_segments(store)
    if segs is None:
        common.die("%s has no segment vectors (pdr embed --segments)" % store)
    missing = [a for a in ids if a not in emb]
    if missing:
        common.die("%s lacks %d of the dataset's proteins, e.g. %s" % (store, len(missing), missing[0]))
    adj = ev.make_adjust(model, emb, segs)
    E = np.stack([emb[a] for a in ids])
    lev = np.array([adj["lev"][a] for a in ids], np.float32)
    whole = E @ E.T - 0.5 * (lev[:, None] + lev[None, :])
    sv = np.concatenate([segs[a] for a in ids]).astype(np.float32)
    sl = np.concatenate([adj["seg_lev"][a] for a in ids]).astype(np.float32)
    cnt = np.array([len(segs[a]) for a in ids])
    starts = np.concatenate([[0], np.cumsum(cnt)[:-1]])
    n = len(ids)
    seg = np.empty((n, n), np.float32)
    for i0 in range(0, n, 48):
        i1 = min(n, i0 + 48)
        s0, s1 = starts[i0], starts[i1 - 1] + cnt[i1 - 1]
        m = sv[s0:s1] @ sv.T
        m -= 0.5 * sl[s0:s1, None]
        m -= 0.5 * sl[None, :]
        per_target = np.maximum.reduceat(m, starts, axis=1)
        seg[i0:i1] = np.maximum.reduceat(per_target, starts[i0:i1] - s0, axis=0)
    return whole, seg


def ranks(M, qi, ti):
    """1-based rank of target ti among all targets of query qi by descending M (ties: optimistic)."""
    out = np.empty(len(qi), np.int64)
    for s in range(0, len(qi), 2000):
        q, t = qi[s:s + 2000], ti[s:s + 2000]
        out[s:s + 2000] = 1 + (M[q] > M[q, t][:, None]).sum(1)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset", choices=[n for n, _ in common.DATASETS])
    ap.add_argument("store")
    ap.add_argument("all_aligned")
    ap.add_argument("none_aligned")
    ap.add_argument("--model", default=os.path.join(HERE, "..", "data", "pdr_cnn_v1.h5"))
    ap.add_argument("--depths", default="50,200,500,1000,2000")
    ap.add_argument("--bits-depth", type=int, default=1000,
                    help="N of the bit-score summary: homologs the mix ranks within / beyond N")
    ap.add_argument("--shared", default=common.DEFAULT_SHARED)
    a = ap.parse_args()
    ds = common.Dataset(a.dataset, a.shared)
    print(ds.summary(), flush=True)
    depths, full, none = align_depth.read_runs(ap, a, ds)
    ids = list(ds.proteins)
    ix = {x: i for i, x in enumerate(ids)}
    wanted = full.keys()
    whole, seg = score_matrices(a.store, a.model, ids)
    dirs = sorted(wanted)
    qi = np.array([ix[q] for q, _ in dirs])
    ti = np.array([ix[t] for _, t in dirs])
    rk = {"mix": ranks(WHOLE_WEIGHT * whole + (1 - WHOLE_WEIGHT) * seg, qi, ti), "seg": ranks(seg, qi, ti),
          "whole": ranks(whole, qi, ti)}
    e_full = np.array([full[d][1] for d in dirs])
    e_none = np.array([none[d][1] for d in dirs])
    pos = {d: i for i, d in enumerate(dirs)}
    labels = np.array([lab for _, _, lab in ds.pairs], bool)
    pi = np.array([pos[(x, y)] for x, y, _ in ds.pairs])
    pj = np.array([pos[(y, x)] for x, y, _ in ds.pairs])

    def auc(cand):
        sc = np.where(cand, e_full, e_none)
        return roc_auc(np.maximum(sc[pi], sc[pj]), labels)

    print("every pair aligned %.4f, none %.4f" % (auc(np.ones(len(dirs), bool)), auc(np.zeros(len(dirs), bool))))
    print("%6s %8s %8s %10s %10s %12s %12s" % ("N", "mix", "segment", "whole", "mix+seg", "mix/4+seg3/4",
                                               "mix+whole"))
    for n in depths:
        h, q = n // 2, n // 4
        print("%6d %8.4f %8.4f %10.4f %10.4f %12.4f %12.4f" % (
            n, auc(rk["mix"] <= n), auc(rk["seg"] <= n), auc(rk["whole"] <= n),
            auc((rk["mix"] <= h) | (rk["seg"] <= n - h)), auc((rk["mix"] <= q) | (rk["seg"] <= n - q)),
            auc((rk["mix"] <= h) | (rk["whole"] <= n - h))))
    print("(mix+seg: the first N/2 by the mix and the first N/2 by the segment pair; mix/4+seg3/4: N/4 and 3N/4)")
    lab = {}
    for x, y, l in ds.pairs:
        lab[(x, y)] = lab[(y, x)] = l
    hom = np.array([lab[d] for d in dirs])
    bits = np.array([full[d][2] for d in dirs])
    n = a.bits_depth
    print("alignment bit scores (directed pairs), N = %d:" % n)
    for name, m in (("homolog, mix rank <= N", hom & (rk["mix"] <= n)), ("homolog, mix rank > N", hom & (rk["mix"] > n)),
                    ("non-homologous", ~hom)):
        b = bits[m]
        if not len(b):
            print("  %-24s      0" % name)
            continue
        print("  %-24s %6d  median %5.1f bits; >= 40: %.3f, >= 50: %.3f, >= 70: %.3f" %
              (name, m.sum(), np.median(b), (b >= 40).mean(), (b >= 50).mean(), (b >= 70).mean()))


if __name__ == "__main__":
    main()
