"""seg_head.py: train a projection for segment vectors on the frozen encoder (CPU, minutes).

pdr's segment vectors (windows of 100 residues, stride 50) were pooled from the encoder's final
hidden states and projected with the whole-protein projection, which was never trained on
windows. This script trains a separate segment projection on cached window features
(train/seg_features.py), with the encoder frozen:

    seg(v) = normalize(seg_proj_w v + seg_proj_b)                  v = concat(mean, max) of a window

initialised from the whole-protein projection (so step 0 is the shipped segment vector).
Positives: for a teacher pair (MMseqs2, E <= 1e-3, with alignment coordinates), a random aligned
position u of protein a, the window of a whose centre is nearest u, and the window of b nearest
the position the alignment maps u to. Candidates: every other pair's b-window in the batch and
random windows of the teacher's hard-negative proteins; candidates from the anchor's own protein
or a known teacher partner are masked. Loss: symmetric InfoNCE (tau). The model file gets
/seg_proj_w, /seg_proj_b (export), and its /background_segments is recomputed with them.

    /usr/bin/python3 train/seg_head.py --sets train/work/segf/teacher40k.npz:train/work/teacher40k,... \
        --steps 3000 --out-head H.npz            # train, then evaluate on the held-out pairs
    /usr/bin/python3 train/seg_head.py --eval-only [--head H.npz]    # the held-out table only
"""
import argparse
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

W, S = 100, 50


def load_proj(model_path):
    import h5py
    with h5py.File(model_path, "r") as f:
        return np.array(f["proj_w"], np.float32), np.array(f["proj_b"], np.float32)


class WindowSet:
    """Window features of one teacher set, sorted by protein then start, with its pairs."""

    def __init__(self, npz, teacher, heldout):
        z = np.load(npz)
        self.accs = [str(x) for x in z["accs"]]
        bad = [x for x in self.accs if x in heldout]
        if bad:
            sys.exit("seg_head.py: held-out protein %s in %s" % (bad[0], npz))
        order = np.lexsort((z["start"], z["owner"]))
        self.feats = z["feats"][order]
        self.whole = z["whole"].astype(np.float16) if "whole" in z else None
        self.owner = z["owner"][order].astype(np.int64)
        self.start = z["start"][order]
        self.length = z["length"][order]
        ends = self.start + self.length
        m = len(self.accs)
        self.wfirst = np.searchsorted(self.owner, np.arange(m))
        self.wcount = np.bincount(self.owner, minlength=m)
        self.plen = ends[self.wfirst + self.wcount - 1]  # the last window ends at the protein's end
        idx = {a: i for i, a in enumerate(self.accs)}
        P = []
        with open(os.path.join(teacher, "pos.tsv")) as f:
            for line in f:
                t = line.split("\t")
                P.append((idx[t[0]], idx[t[1]], int(t[4]) - 1, int(t[5]), int(t[6]) - 1, int(t[7])))
        self.pos = np.array(P, np.int64)
        N = []
        with open(os.path.join(teacher, "neg.tsv")) as f:
            for line in f:
                t = line.split("\t")
                N.append((idx[t[0]], idx[t[1]]))
        self.neg = np.array(N, np.int64)
        a, b = self.pos[:, 0], self.pos[:, 1]
        self.m = m
        P = self.pos
        # local pairs: the alignment covers under half of one of the two proteins
        self.local = np.nonzero(((P[:, 3] - P[:, 2]) < 0.5 * self.plen[a]) | ((P[:, 5] - P[:, 4]) < 0.5 * self.plen[b]))[0]
        k = np.minimum(a, b) * m + np.maximum(a, b)  # known pairs as a bitmap over m x m
        self.bits = np.zeros((m * m + 7) // 8, np.uint8)
        np.bitwise_or.at(self.bits, k >> 3, (1 << (k & 7)).astype(np.uint8))

    def window_at(self, p, u):
        """Index of protein p's window whose centre is nearest residue position u."""
        i = np.clip(np.rint((u - W / 2) / S).astype(np.int64), 0, self.wcount[p] - 1)
        return self.wfirst[p] + i

    def known(self, x, y):
        """[len(x), len(y)] bool: same protein or a teacher positive pair."""
        lo, hi = np.minimum(x[:, None], y[None, :]), np.maximum(x[:, None], y[None, :])
        k = lo * self.m + hi
        return ((self.bits[k >> 3] >> (k & 7)) & 1).astype(bool) | (lo == hi)

    def batch(self, rng, B, H, local_frac=0.0, whole=False, index=False):
        pick = rng.integers(len(self.pos), size=B)
        loc = rng.random(B) < local_frac
        pick[loc] = self.local[rng.integers(len(self.local), size=int(loc.sum()))]
        r = self.pos[pick]
        swap = rng.random(B) < 0.5
        r[swap] = r[swap][:, [1, 0, 4, 5, 2, 3]]
        a, b, qs, qe, ts, te = r.T
        u = qs + rng.random(B) * np.maximum(qe - qs - 1, 0)
        v = ts + (u - qs) * (te - ts - 1) / np.maximum(qe - qs - 1, 1)
        wa, wb = self.window_at(a, u), self.window_at(b, v)
        n = self.neg[rng.integers(len(self.neg), size=H)].reshape(-1)
        wn = self.wfirst[n] + (rng.random(len(n)) * self.wcount[n]).astype(np.int64)
        cand = np.concatenate([b, n])
        mask_a = self.known(a, cand)
        mask_a[np.arange(B), np.arange(B)] = False
        mask_b = self.known(b, a)
        mask_b[np.arange(B), np.arange(B)] = False
        if index and whole:  # protein rows (anchors, candidates)
            return a, cand, mask_a, mask_b
        if index:  # window rows (anchors, candidates) instead of features
            return wa, np.concatenate([wb, wn]), mask_a, mask_b
        if whole:  # whole-protein features of the same pairs and negatives
            return self.whole[a], self.whole[cand], mask_a, mask_b
        return self.feats[wa], self.feats[np.concatenate([wb, wn])], mask_a, mask_b


class SegHead:
    """normalize(w v + b [+ w2 gelu(w1 v + b1)]): linear, or with a residual MLP (experiment)."""

    def __init__(self, w, b, hidden=0):
        import torch
        self.w = torch.nn.Parameter(torch.from_numpy(w.copy()))
        self.b = torch.nn.Parameter(torch.from_numpy(b.copy()))
        self.mlp = None
        if hidden:
            g = torch.Generator().manual_seed(0)
            self.mlp = [torch.nn.Parameter(torch.randn(hidden, w.shape[1], generator=g) / np.sqrt(w.shape[1])),
                        torch.nn.Parameter(torch.zeros(hidden)),
                        torch.nn.Parameter(torch.zeros(w.shape[0], hidden))]

    def __call__(self, v):
        import torch.nn.functional as F
        e = v @ self.w.T + self.b
        if self.mlp:
            e = e + F.gelu(v @ self.mlp[0].T + self.mlp[1]) @ self.mlp[2].T
        return F.normalize(e, dim=-1)

    def params(self):
        return [self.w, self.b] + (self.mlp or [])


def train(sets, w0, b0, steps, B, H, lr, tau, seed, log_every=200, hidden=0, local_frac=0.0, whole=False):
    """The trained SegHead. Experiments (train/README.md): hidden > 0 adds a residual MLP,
    local_frac samples that share of pairs from the local ones, whole trains on whole proteins."""
    import torch
    import torch.nn.functional as F
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    head = SegHead(w0, b0, hidden)
    opt = torch.optim.AdamW(head.params(), lr=lr, betas=(0.9, 0.98), weight_decay=0.0)
    sizes = np.array([len(s.pos) for s in sets], float)
    t0, run = time.time(), []
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr * min(1.0, (step + 1) / (0.05 * steps)) * 0.5 * (1 + np.cos(np.pi * step / steps))
        s = sets[rng.choice(len(sets), p=sizes / sizes.sum())]
        fa, fc, ma, mb = s.batch(rng, B, H, local_frac, whole)
        za = head(torch.from_numpy(fa.astype(np.float32)))
        zc = head(torch.from_numpy(fc.astype(np.float32)))
        la = (za @ zc.T) / tau
        la = la.masked_fill(torch.from_numpy(ma), float("-inf"))
        lb = (zc[:B] @ za.T) / tau
        lb = lb.masked_fill(torch.from_numpy(mb), float("-inf"))
        tgt = torch.arange(B)
        loss = 0.5 * (F.cross_entropy(la, tgt) + F.cross_entropy(lb, tgt))
        opt.zero_grad()
        loss.backward()
        opt.step()
        run.append(float(loss))
        if (step + 1) % log_every == 0:
            print("step %d loss %.4f (%.0f s)" % (step + 1, np.mean(run[-log_every:]), time.time() - t0), flush=True)
    return head


def windows_by_acc(npz_path):
    z = np.load(npz_path)
    accs = [str(x) for x in z["accs"]]
    order = np.lexsort((z["start"], z["owner"]))
    feats, owner = z["feats"][order].astype(np.float32), z["owner"][order]
    first = np.searchsorted(owner, np.arange(len(accs)))
    cnt = np.bincount(owner, minlength=len(accs))
    return accs, z["whole"], feats, first, cnt


def heldout_table(model_path, head, segf, shared, mix=0.4, pct_default=98.0, out=sys.stdout, whole_head=None,
                  windows=None, by_label=False):
    """The held-out AUC table (eval.evaluate) with segment vectors head(v) (numpy [n, 2d] ->
    [n, out_dim], normalized here). windows: file name -> windows_by_acc's tuple, for window
    features made elsewhere (seg_branch.py); default: read SEGF/heldout.npz and SEGF/bg.npz.
    by_label adds eval.evaluate_by_label's table."""
    windows = windows or {}
    load = lambda name: windows[name] if name in windows else windows_by_acc(os.path.join(segf, name))
    import h5py
    from eval import load_pairs, evaluate
    from background import level
    pw, pb = load_proj(model_path)
    with h5py.File(model_path, "r") as f:
        Bg = np.array(f["background"], np.float32)
        pct = float(f.attrs.get("background_percentile", pct_default))
    accs, whole, feats, first, cnt = load("heldout.npz")
    bench = load_pairs(shared, set(accs))
    need = set()
    for name in bench:
        for p in bench[name][0]:
            need.update(p)
    ix = {a: i for i, a in enumerate(accs)}
    nrm = lambda X: X / np.linalg.norm(X, axis=-1, keepdims=True)
    E = nrm(whole_head(whole) if whole_head else whole @ pw.T + pb)
    Sg = nrm(head(feats))
    emb = {a: E[ix[a]] for a in need}
    segs = {a: Sg[first[ix[a]]:first[ix[a]] + cnt[ix[a]]] for a in need}
    # segment background: the background proteins' windows in /background's order, 4,096 of them
    baccs, bwhole, bfe, bfirst, bcnt = load("bg.npz")
    bix = {a: i for i, a in enumerate(baccs)}
    pick = [l[1:].split()[0] for l in open(os.path.join(segf, "bg.fasta")) if l.startswith(">")]
    if whole_head:  # the whole-protein background with the new projection (background.py's order)
        Bg = nrm(whole_head(bwhole[[bix[a] for a in pick]]))
    allw = np.concatenate([bfe[bfirst[bix[a]]:bfirst[bix[a]] + bcnt[bix[a]]] for a in pick])
    allw = nrm(head(allw))
    SB = allw[np.random.default_rng(1).choice(len(allw), min(4096, len(allw)), replace=False)]
    la = list(need)
    lev = dict(zip(la, level(np.stack([emb[a] for a in la]), Bg, pct)))
    seg_lev = {a: level(segs[a], SB, pct) for a in la}
    res = evaluate(bench, emb, segs, out=out, adj={"lev": lev, "seg_lev": seg_lev}, mix=mix)
    if by_label:
        from eval import load_kinds, evaluate_by_label
        evaluate_by_label(bench, load_kinds(shared, set(accs)), emb, segs, {"lev": lev, "seg_lev": seg_lev}, mix, out)
    return res, SB


def install(model_path, w, b, out, ref_out, note, whole=False):
    """Write a model file = model_path's weights + the segment projection (w, b) (whole=True: the
    whole-protein projection instead, train/whole_head.py), with a new model_version, and its
    PyTorch reference embeddings (export.py). The background samples are not copied: add them
    with train/background.py (the segment one changes with the head, the whole one with the
    projection)."""
    import torch
    from eval import load_h5_model
    m = load_h5_model(model_path)
    if whole:
        with torch.no_grad():
            m.proj.weight.copy_(torch.as_tensor(w))
            m.proj.bias.copy_(torch.as_tensor(b))
    else:
        m.add_segment_projection(w, b)
    write_installed(model_path, m, out, ref_out, note)


def write_installed(model_path, m, out, ref_out, note):
    """Write the changed model m (read from model_path) to out with a new model_version, the
    description of model_path plus note, and its PyTorch references to ref_out (export.py)."""
    import h5py
    from export import write_model, write_ref, default_ref_seqs
    m.eval()
    with h5py.File(model_path, "r") as f:
        name, desc = str(f.attrs["model_name"]), str(f.attrs["description"])
    version = write_model(m, out, name, desc.rstrip() + " " + note)
    write_ref(m, ref_out, version, default_ref_seqs(1))
    print("wrote %s and %s: model_version %s, %d params" % (out, ref_out, version, m.n_params()))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.path.join(HERE, "..", "data", "pdr_cnn_v1.h5"))
    ap.add_argument("--sets", default="", help="comma-separated FEATURES.npz:TEACHER_DIR")
    ap.add_argument("--segf", default=os.path.join(HERE, "work", "segf"),
                    help="folder with heldout.npz, bg.npz, bg.fasta (seg_features.py)")
    ap.add_argument("--shared", default=os.path.join(HERE, "..", "..", "shared", "data"))
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--hard", type=int, default=256)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--tau", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--mix", type=float, default=0.4)
    ap.add_argument("--eval-only", action="store_true")
    ap.add_argument("--head", default=None, help="head to evaluate (npz w, b); default: the whole projection")
    ap.add_argument("--out-head", default=None)
    ap.add_argument("--install", default=None, metavar="OUT.h5",
                    help="write the model with the head here (and OUT_ref.h5), then evaluate nothing")
    ap.add_argument("--note", default="", help="appended to the description attribute by --install")
    a = ap.parse_args()
    for out_path in (a.out_head, a.install):  # the recipe's output folders need not exist
        if out_path:
            os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    import torch
    torch.set_num_threads(a.threads)
    w, b = load_proj(a.model)
    if a.head:
        z = np.load(a.head)
        w, b = z["w"], z["b"]
    if a.install:
        install(a.model, w, b, a.install, a.install[:-3] + "_ref.h5", a.note)
        return
    if not a.eval_only:
        held = {l.strip() for l in open(os.path.join(a.shared, "homology", "heldout_ids.txt")) if l.strip()}
        sets = []
        for spec in a.sets.split(","):
            npz, teacher = spec.split(":")
            t0 = time.time()
            sets.append(WindowSet(npz, teacher, held))
            s = sets[-1]
            print("%s: %d proteins, %d windows, %d pairs, %d negatives (%.0f s)" %
                  (npz, s.m, len(s.feats), len(s.pos), len(s.neg), time.time() - t0), flush=True)
        head = train(sets, w, b, a.steps, a.batch, a.hard, a.lr, a.tau, a.seed)
        w, b = head.w.detach().numpy().copy(), head.b.detach().numpy().copy()
        if a.out_head:
            np.savez(a.out_head, w=w, b=b)
    heldout_table(a.model, lambda X: X @ w.T + b, a.segf, a.shared, mix=a.mix)


if __name__ == "__main__":
    main()
