#!/usr/bin/python3
"""whole_head.py: retrain the whole-protein projection on a frozen encoder (CPU, minutes; session 27).

The encoder's last step is linear: e = normalize(proj_w v + proj_b), v = concat(mean, max) of the
final hidden states. With the encoder frozen, v is cached once per protein (seg_features.py, its
`whole` array) and only (proj_w, proj_b) is trained, starting from the shipped projection, on a
teacher's pairs (seg_head.py's sampler and symmetric InfoNCE, whole proteins). The question it
answers: does a profile-search teacher's extra (remote, clan-level) pairs move the whole-protein
vectors towards the Pfam labels when only the projection may change? The pdr C code would need no
change (the projection is a tensor of the model file).

For each blend alpha, the projection W0 + alpha (W1 - W0) is evaluated on:
  - the held-out Pfam pairs (seg_head.heldout_table: whole, adjusted, segment mix; by label with
    --by-label), the background recomputed with the new projection;
  - a check set never trained on (--check: its features and one or two teacher folders over the
    same proteins): check_teacher.py's 30,000 positives / 30,000 negatives (cosine and adjusted;
    all, remote E > 1e-10, local cov < 0.5), and, with a second teacher, teacher_gap.py's
    student AUC on the pairs only the second teacher finds.

    /usr/bin/python3 train/seg_features.py --fasta train/work/heldout.fasta --out train/work/segf27/heldout.npz
    /usr/bin/python3 train/seg_features.py --background --out train/work/segf27/bg.npz
    /usr/bin/python3 train/seg_features.py --set train/work/teacher20k_s26_prof3 --out train/work/segf27/s26p.npz
    /usr/bin/python3 train/seg_features.py --set train/work/teacher20k_s7 --out train/work/segf27/s7.npz
    /usr/bin/python3 train/whole_head.py --segf train/work/segf27 \
        --sets train/work/segf27/s26p.npz:train/work/teacher20k_s26_prof3 --steps 1000 --lr 3e-4 \
        --check train/work/segf27/s7.npz:train/work/teacher20k_s7:train/work/teacher20k_s7_prof3 \
        --alpha 0,0.5,1 --out-head /tmp/wh.npz
"""
import argparse
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "bench"))


def nrm(X):
    return X / np.linalg.norm(X, axis=-1, keepdims=True)


def bg_whole(segf):
    """Whole-protein features of the background proteins, in background.py's order."""
    z = np.load(os.path.join(segf, "bg.npz"))
    ix = {str(a): i for i, a in enumerate(z["accs"])}
    pick = [l[1:].split()[0] for l in open(os.path.join(segf, "bg.fasta")) if l.startswith(">")]
    return z["whole"][[ix[a] for a in pick]].astype(np.float32)


class CheckSet:
    """A check set never trained on, read once: check_teacher.py's sampled pairs (and teacher_gap.py's
    profile-only pairs against the agreed negatives); aucs() scores them for one projection."""

    def __init__(self, spec, n=30000, seed=7):
        from teacher_gap import read_pos, read_neg
        parts = spec.split(":")
        z = np.load(parts[0])
        accs = [str(a) for a in z["accs"]]
        pos = {a: i for i, a in enumerate(accs)}
        self.whole = z["whole"].astype(np.float32)
        rng = np.random.default_rng(seed)
        P = [l.split("\t") for l in open(os.path.join(parts[1], "pos.tsv"))]
        N = [l.split("\t") for l in open(os.path.join(parts[1], "neg.tsv"))]
        pi = rng.choice(len(P), min(n, len(P)), replace=False)
        ni = rng.choice(len(N), min(n, len(N)), replace=False)
        self.pa, self.pb = np.array([pos[P[i][0]] for i in pi]), np.array([pos[P[i][1]] for i in pi])
        ev = np.array([float(P[i][2]) for i in pi])
        # coverage of the first protein: alignment span / its length (the length is kept by the
        # window table: the last window ends at the protein's end)
        plen = np.zeros(len(accs), np.int64)
        np.maximum.at(plen, z["owner"], z["start"] + z["length"])
        cov = np.array([(int(P[i][5]) - int(P[i][4]) + 1) / plen[pos[P[i][0]]] for i in pi])
        self.na, self.nb = np.array([pos[N[i][0]] for i in ni]), np.array([pos[N[i][1]] for i in ni])
        self.groups = (("all", np.ones(len(pi), bool)), ("remote", ev > 1e-10), ("local", cov < 0.5))
        self.second = None
        if len(parts) > 2:  # pairs only the second teacher finds, against negatives both agree on
            p1, p2 = read_pos(os.path.join(parts[1], "pos.tsv")), read_pos(os.path.join(parts[2], "pos.tsv"))
            n1, n2 = read_neg(os.path.join(parts[1], "neg.tsv")), read_neg(os.path.join(parts[2], "neg.tsv"))
            r2 = np.random.default_rng(1)

            def sample(keys):
                keys = sorted(keys)
                pick = [keys[i] for i in r2.choice(len(keys), min(n, len(keys)), replace=False)]
                return np.array([pos[k[0]] for k in pick]), np.array([pos[k[1]] for k in pick])

            neg = sample((set(n1) & set(n2)) - set(p1) - set(p2))
            self.second = (sample(set(p2) - set(p1)), neg)

    def aucs(self, f, bgv, pct):
        """f: features [n, 2d] -> projected (unnormalized) vectors."""
        from auc import roc_auc
        from background import level
        E = nrm(f(self.whole))
        lev = level(E, nrm(f(bgv)), pct)

        def sc(x, y):
            c = np.sum(E[x] * E[y], 1)
            return {"cosine": c, "adjusted": c - (lev[x] + lev[y]) / 2}

        sp, sn = sc(self.pa, self.pb), sc(self.na, self.nb)
        out = {}
        for name, sel in self.groups:
            lab = np.r_[np.ones(sel.sum()), np.zeros(len(self.na))].astype(bool)
            for k in sp:
                out["%s %s" % (name, k)] = roc_auc(np.r_[sp[k][sel], sn[k]], lab)
        if self.second:
            s2, s0 = (sc(*pairs)["adjusted"] for pairs in self.second)
            out["second-only adjusted"] = roc_auc(np.r_[s2, s0], np.r_[np.ones(len(s2)), np.zeros(len(s0))])
        return out


def blend(w0, b0, w1, b1, mlp, al):
    """The projection W0 + al (W1 - W0) (and al times the MLP's output) as a function of features."""
    w, b = w0 + al * (w1 - w0), b0 + al * (b1 - b0)
    if not mlp:
        return lambda X: X @ w.T + b

    def f(X):
        import torch
        import torch.nn.functional as F
        h = F.gelu(torch.from_numpy(np.ascontiguousarray(X @ mlp[0].T + mlp[1], np.float32))).numpy()
        return X @ w.T + b + al * (h @ mlp[2].T)
    return f


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.path.join(HERE, "..", "data", "pdr_cnn_v1.h5"))
    ap.add_argument("--segf", required=True, help="folder with heldout.npz, bg.npz, bg.fasta (seg_features.py)")
    ap.add_argument("--sets", default="", help="comma-separated FEATURES.npz:TEACHER_DIR to train on")
    ap.add_argument("--check", default="", help="FEATURES.npz:TEACHER_DIR[:SECOND_TEACHER_DIR], never trained on")
    ap.add_argument("--shared", default=os.path.join(HERE, "..", "..", "shared", "data"))
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--hard", type=int, default=256)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--tau", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--alpha", default="0,1", help="comma-separated blends W0 + alpha (W1 - W0) to evaluate")
    ap.add_argument("--hidden", type=int, default=0,
                    help="experiment: add a residual MLP with this many hidden units (needs C support to ship)")
    ap.add_argument("--head", default=None, help="a trained projection (npz w, b) instead of training")
    ap.add_argument("--out-head", default=None)
    ap.add_argument("--by-label", action="store_true")
    ap.add_argument("--install", default=None, metavar="OUT.h5",
                    help="write the model with the projection of the first --alpha (and OUT_ref.h5), evaluate nothing")
    ap.add_argument("--note", default="", help="appended to the description attribute by --install")
    a = ap.parse_args()
    for out_path in (a.out_head, a.install):  # the recipe's output folders need not exist
        if out_path:
            os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    import h5py
    import torch
    import seg_head as sh
    torch.set_num_threads(a.threads)
    w0, b0 = sh.load_proj(a.model)
    with h5py.File(a.model, "r") as f:
        sw, sb = np.array(f["seg_proj_w"], np.float32), np.array(f["seg_proj_b"], np.float32)
        pct = float(f.attrs["background_percentile"])
    mlp = None
    if a.head:
        z = np.load(a.head)
        w1, b1 = z["w"], z["b"]
        mlp = [z["m0"], z["m1"], z["m2"]] if "m0" in z else None
    else:
        held = {l.strip() for l in open(os.path.join(a.shared, "homology", "heldout_ids.txt")) if l.strip()}
        sets = []
        for spec in a.sets.split(","):
            npz, teacher = spec.split(":")
            t0 = time.time()
            sets.append(sh.WindowSet(npz, teacher, held))
            print("%s: %d proteins, %d pairs, %d negatives (%.0f s)" % (
                npz, sets[-1].m, len(sets[-1].pos), len(sets[-1].neg), time.time() - t0), flush=True)
        head = sh.train(sets, w0, b0, a.steps, a.batch, a.hard, a.lr, a.tau, a.seed, whole=True, hidden=a.hidden)
        w1, b1 = head.w.detach().numpy().copy(), head.b.detach().numpy().copy()
        mlp = [p.detach().numpy().copy() for p in head.mlp] if head.mlp else None
        if a.out_head:
            np.savez(a.out_head, w=w1, b=b1, **({"m%d" % i: m for i, m in enumerate(mlp)} if mlp else {}))
    alphas = [float(x) for x in a.alpha.split(",")]
    if a.install:
        if mlp:
            sys.exit("whole_head.py: --install of a head with an MLP is not supported (the C code has none)")
        al = alphas[0]
        sh.install(a.model, w0 + al * (w1 - w0), b0 + al * (b1 - b0), a.install, a.install[:-3] + "_ref.h5", a.note,
                   whole=True)
        return
    bgv = bg_whole(a.segf) if a.check else None
    check = CheckSet(a.check) if a.check else None
    seg = lambda X: X @ sw.T + sb
    for al in alphas:
        f = blend(w0, b0, w1, b1, mlp, al)
        print("== alpha %.2f" % al, flush=True)
        if check:
            r = check.aucs(f, bgv, pct)
            print("check: " + "  ".join("%s %.4f" % kv for kv in r.items()), flush=True)
        sh.heldout_table(a.model, seg, a.segf, a.shared, whole_head=f, by_label=a.by_label)


if __name__ == "__main__":
    main()
