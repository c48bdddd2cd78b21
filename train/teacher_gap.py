#!/usr/bin/python3
"""teacher_gap.py: what a second teacher knows that the student does not (session 26).

Two teachers mined over the same subset (e.g. mine_teacher.py's single search and its
three-iteration profile search, --iterations 3) and a pdr store of that subset. Prints how their
positive pairs overlap, how many of the first teacher's hard negatives the second calls
homologous, and the student's ROC AUC (adjusted score, as pdr search reports it) for each kind of
positive against the negatives both teachers agree on. A high AUC on the pairs only the second
teacher finds means the student already ranks them; a low one, that the second teacher holds
signal the student has not learnt (or that its extra pairs are wrong: independent labels decide).

    ./build/pdr embed train/work/teacher20k_s7/subset.fasta -o /tmp/s7.h5 --segments
    /usr/bin/python3 train/teacher_gap.py --store /tmp/s7.h5 --first train/work/teacher20k_s7 \
        --second train/work/teacher20k_s7_prof3
"""
import argparse, os, sys
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "bench"))
from auc import roc_auc  # noqa: E402
import eval as ev  # noqa: E402


def read_pos(path):
    """{(a, b) unordered: evalue}."""
    out = {}
    for line in open(path):
        f = line.rstrip("\n").split("\t")
        if len(f) >= 3:
            out[tuple(sorted(f[:2]))] = float(f[2])
    return out


def read_neg(path):
    out = {}
    for line in open(path):
        f = line.rstrip("\n").split("\t")
        if len(f) >= 3:
            out[tuple(sorted(f[:2]))] = f[2]
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", required=True)
    ap.add_argument("--first", required=True, help="teacher directory (pos.tsv, neg.tsv, subset.fasta)")
    ap.add_argument("--second", required=True, help="teacher directory over the same subset")
    ap.add_argument("--model", default=os.path.join(HERE, "..", "data", "pdr_cnn_v1.h5"))
    ap.add_argument("--n", type=int, default=30000, help="pairs sampled per kind (seeded)")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()

    s1 = set(ev.read_fasta(os.path.join(a.first, "subset.fasta")))
    s2 = set(ev.read_fasta(os.path.join(a.second, "subset.fasta")))
    if s1 != s2:
        sys.exit("teacher_gap.py: %s and %s are not over the same proteins" % (a.first, a.second))
    p1, p2 = read_pos(os.path.join(a.first, "pos.tsv")), read_pos(os.path.join(a.second, "pos.tsv"))
    n1, n2 = read_neg(os.path.join(a.first, "neg.tsv")), read_neg(os.path.join(a.second, "neg.tsv"))
    both = set(p1) & set(p2)
    only2, only1 = set(p2) - set(p1), set(p1) - set(p2)
    weak1 = {k for k, v in n1.items() if v == "weak"}
    print("positives: first %d, second %d, both %d, only first %d, only second %d" % (
        len(p1), len(p2), len(both), len(only1), len(only2)))
    print("first's weak-hit negatives: %d, of which the second calls homologous %d (%.1f%%)" % (
        len(weak1), len(weak1 & set(p2)), 100.0 * len(weak1 & set(p2)) / max(1, len(weak1))))

    ev.require_same_model(a.store, a.model)
    emb = ev.load_store(a.store)
    adj = ev.make_adjust(a.model, emb, None)

    def score(pairs):
        return ev.adjusted_scores(pairs, emb, None, adj)[0]

    rng = np.random.default_rng(a.seed)

    def sample(keys):
        keys = sorted(keys)
        if len(keys) > a.n:
            keys = [keys[i] for i in rng.choice(len(keys), a.n, replace=False)]
        return keys

    negs = sample((set(n1) & set(n2)) - set(p1) - set(p2))
    sn = score(negs)
    print("negatives both teachers agree on: %d sampled; student adjusted score mean %.3f" % (len(negs), sn.mean()))
    print("%-38s %7s %10s %8s" % ("positives", "pairs", "mean adj", "ROC AUC"))
    groups = [("both teachers", sample(both)), ("only the first", sample(only1)),
              ("only the second", sample(only2))]
    o2 = sorted(only2)
    for lo, hi in ((0, 1e-10), (1e-10, 1e-5), (1e-5, 1e-3)):
        groups.append(("only the second, E in [%g, %g)" % (lo, hi), sample([k for k in o2 if lo <= p2[k] < hi])))
    groups.append(("first's weak negatives, second positive", sample(weak1 & set(p2))))
    for label, pairs in groups:
        if not pairs:
            print("%-38s %7d" % (label, 0))
            continue
        sp = score(pairs)
        y = np.r_[np.ones(len(sp)), np.zeros(len(sn))]
        print("%-38s %7d %10.3f %8.4f" % (label, len(pairs), sp.mean(), roc_auc(np.r_[sp, sn], y)), flush=True)


if __name__ == "__main__":
    main()
