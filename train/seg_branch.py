"""seg_branch.py: a segment branch, the encoder's top blocks duplicated for segment vectors (CPU).

seg_head.py trains only a linear projection on frozen window features. This script gives segments
more capacity without touching whole-protein vectors: the last n_blocks - K blocks and the final
layer norm are copied into a branch that only segment vectors use,

    x_K   = blocks[0..K-1](embed(tokens))                  shared, frozen (cached per residue)
    whole = pool(final_ln(blocks[K..](x_K)))              unchanged
    seg   = seg_proj(pool_window(final_ln'(blocks'[K..](x_K))))       trained

initialised from the shipped weights (blocks' = blocks, final_ln' = final_ln, seg_proj = the
shipped segment projection), so step 0 reproduces the shipped segment vectors exactly. Training
uses seg_head.py's window pairs and loss (symmetric InfoNCE), on x_K cached once per set.

    /usr/bin/python3 train/seg_branch.py cache --k 5 --fasta F --out OUT.npy    # x_K, float16
    /usr/bin/python3 train/seg_branch.py train --k 5 --sets X.npy:SEGF.npz:TEACHER,... --out-branch B.pt
    /usr/bin/python3 train/seg_branch.py eval --k 5 [--branch B.pt]
Cache files: OUT.npy [total residues, d] float16 (proteins in sorted accession order,
concatenated) and OUT.npz (accs, offsets).
"""
import argparse
import copy
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
W, S = 100, 50


def cache_states(model, seqs, accs, K, out, max_tokens=65536):
    import torch
    from model import tokenize, PAD_TOKEN
    lens = np.array([len(seqs[a]) for a in accs], np.int64)
    off = np.concatenate([[0], np.cumsum(lens)])
    X = np.lib.format.open_memmap(out, mode="w+", dtype=np.float16, shape=(int(off[-1]), model.d))
    order = np.argsort(lens, kind="stable")
    i, t0 = 0, time.time()
    model.eval()
    with torch.no_grad():
        while i < len(order):
            j = i
            while j < len(order) and (j - i + 1) * max(1, lens[order[j]]) <= max_tokens:
                j += 1
            j = max(j, i + 1)
            batch = order[i:j]
            Lmax = int(max(1, lens[batch].max()))
            tok = torch.full((len(batch), Lmax), PAD_TOKEN, dtype=torch.long)
            for r, b in enumerate(batch):
                tok[r, :lens[b]] = torch.tensor(tokenize(seqs[accs[b]]), dtype=torch.long)
            mask = (tok != PAD_TOKEN).unsqueeze(-1).float()
            x = model.embed(tok) * mask
            for blk in model.blocks[:K]:
                x = blk(x, mask)
            x = x.numpy().astype(np.float16)
            for r, b in enumerate(batch):
                X[off[b]:off[b + 1]] = x[r, :lens[b]]
            if (j * 10) // len(order) != (i * 10) // len(order):
                print("  %d / %d proteins, %.0f s" % (j, len(order), time.time() - t0), flush=True)
            i = j
    X.flush()
    np.savez(out[:-4] + ".npz", accs=np.array(accs), offsets=off)


class Branch:
    """blocks'[K..], final_ln', seg_proj: the trainable segment branch."""

    def __init__(self, model, K):
        import torch
        self.blocks = torch.nn.ModuleList([copy.deepcopy(b) for b in model.blocks[K:]])
        self.ln = copy.deepcopy(model.final_ln)
        self.proj = copy.deepcopy(model.seg_proj if model.seg_proj is not None else model.proj)
        self.halo = sum(b.conv.dilation[0] * (b.conv.kernel_size[0] - 1) // 2 for b in self.blocks)

    def modules(self):
        return [self.blocks, self.ln, self.proj]

    def params(self):
        return [p for m in self.modules() for p in m.parameters()]

    def state(self):
        return {"blocks": self.blocks.state_dict(), "ln": self.ln.state_dict(), "proj": self.proj.state_dict()}

    def load(self, st):
        self.blocks.load_state_dict(st["blocks"])
        self.ln.load_state_dict(st["ln"])
        self.proj.load_state_dict(st["proj"])

    def features(self, x, mask, inner):
        """x [B, T, d] states with halo, mask [B, T, 1] (inside the protein), inner [B, T, 1]
        (inside the window) -> pooled window features [B, 2d] (before seg_proj)."""
        for blk in self.blocks:
            x = blk(x, mask)
        x = self.ln(x) * mask
        n = inner.sum(1).clamp(min=1.0)
        mean = (x * inner).sum(1) / n
        mx = x.masked_fill(inner == 0, float("-inf")).max(1).values
        import torch
        return torch.cat([mean, mx], -1)

    def embed(self, feats):
        import torch.nn.functional as F
        return F.normalize(self.proj(feats), dim=-1)


class Cache:
    def __init__(self, npy):
        z = np.load(npy[:-4] + ".npz")
        self.accs = [str(a) for a in z["accs"]]
        self.off = z["offsets"]
        self.X = np.load(npy, mmap_mode="r")
        self.X = np.ascontiguousarray(self.X)  # into memory

    def gather(self, prot, start, length, halo):
        """States of windows (protein row, start, length) with halo residues each side."""
        import torch
        T = int(length.max()) + 2 * halo
        pos = start[:, None] - halo + np.arange(T)[None, :]
        L = (self.off[prot + 1] - self.off[prot])[:, None]
        inside = (pos >= 0) & (pos < L)
        idx = np.where(inside, self.off[prot][:, None] + pos, 0)
        x = torch.from_numpy(self.X[idx].astype(np.float32))
        mask = torch.from_numpy(inside.astype(np.float32)).unsqueeze(-1)
        x = x * mask
        rel = np.arange(T)[None, :] - halo
        inner = torch.from_numpy(((rel >= 0) & (rel < length[:, None])).astype(np.float32)).unsqueeze(-1)
        return x, mask, inner


def window_feats(branch, cache, accs, max_windows=2048):
    """Every window (segment_bounds order) of the proteins accs -> (feats [n, 2d], first, cnt)."""
    import torch
    from eval import segment_bounds
    row = {a: i for i, a in enumerate(cache.accs)}
    prot, st, ln, first, cnt = [], [], [], [], []
    for a in accs:
        p = row[a]
        b = segment_bounds(int(cache.off[p + 1] - cache.off[p]), W, S)
        first.append(len(st))
        cnt.append(len(b))
        for s0, s1 in b:
            prot.append(p); st.append(s0); ln.append(s1 - s0)
    prot, st, ln = np.array(prot), np.array(st), np.array(ln)
    out = np.zeros((len(st), 2 * branch.ln.weight.shape[0]), np.float32)
    with torch.no_grad():
        for i in range(0, len(st), max_windows):
            x, m, inner = cache.gather(prot[i:i + max_windows], st[i:i + max_windows], ln[i:i + max_windows],
                                       branch.halo)
            out[i:i + max_windows] = branch.features(x, m, inner).numpy()
    return out, np.array(first), np.array(cnt)


def heldout(branch, held_cache, bg_cache, model_path, segf, shared, mix=0.4):
    """seg_head.heldout_table with this branch's segment vectors."""
    import seg_head
    w = branch.proj.weight.detach().numpy()
    b = branch.proj.bias.detach().numpy()
    accs_h, whole_h, _, _, _ = seg_head.windows_by_acc(os.path.join(segf, "heldout.npz"))
    accs_b, whole_b, _, _, _ = seg_head.windows_by_acc(os.path.join(segf, "bg.npz"))
    t0 = time.time()
    fh, firsth, cnth = window_feats(branch, held_cache, accs_h)
    fb, firstb, cntb = window_feats(branch, bg_cache, accs_b)
    print("branch features: %.0f s" % (time.time() - t0), flush=True)
    pre = {"heldout.npz": (accs_h, whole_h, fh, firsth, cnth), "bg.npz": (accs_b, whole_b, fb, firstb, cntb)}
    return seg_head.heldout_table(model_path, lambda X: X @ w.T + b, segf, shared, mix=mix, windows=pre)


def window_batch(branch, cache, ws, rng, B, H):
    """Embedded window pairs of one batch: (z, ma, mb) for train()'s step."""
    wa, wc, ma, mb = ws.batch(rng, B, H, index=True)
    w = np.concatenate([wa, wc])
    x, m, inner = cache.gather(ws.owner[w], ws.start[w], ws.length[w], branch.halo)
    return branch.embed(branch.features(x, m, inner)), ma, mb


def train(branch, sets, steps, B, H, lr, tau, seed, log_every=50, ckpt=None, embed_batch=window_batch):
    """AdamW (5% warm-up, cosine) on symmetric InfoNCE. sets: (cache, WindowSet) pairs, drawn in
    proportion to their pairs; embed_batch(branch, cache, ws, rng, B, H) -> (z [B + C, D], ma
    [B, C], mb [B, B][, extra]): B anchors then C candidates (the first B their partners), known-pair
    masks, and optionally a loss term added to the InfoNCE one."""
    import torch
    import torch.nn.functional as F
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    opt = torch.optim.AdamW(branch.params(), lr=lr, betas=(0.9, 0.98), weight_decay=0.0)
    sizes = np.array([len(s[1].pos) for s in sets], float)
    t0, run = time.time(), []
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr * min(1.0, (step + 1) / (0.05 * steps)) * 0.5 * (1 + np.cos(np.pi * step / steps))
        cache, ws = sets[rng.choice(len(sets), p=sizes / sizes.sum())]
        z, ma, mb, *extra = embed_batch(branch, cache, ws, rng, B, H)
        za, zc = z[:B], z[B:]
        la = ((za @ zc.T) / tau).masked_fill(torch.from_numpy(ma), float("-inf"))
        lb = ((zc[:B] @ za.T) / tau).masked_fill(torch.from_numpy(mb), float("-inf"))
        tgt = torch.arange(B)
        loss = 0.5 * (F.cross_entropy(la, tgt) + F.cross_entropy(lb, tgt)) + sum(extra)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(branch.params(), 1.0)
        opt.step()
        run.append(float(loss))
        if (step + 1) % log_every == 0:
            print("step %d loss %.4f (%.0f s)" % (step + 1, np.mean(run[-log_every:]), time.time() - t0), flush=True)
            if ckpt:
                torch.save({"step": step + 1, "branch": branch.state()}, ckpt)
    return branch


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cmd", choices=["cache", "train", "eval"])
    ap.add_argument("--model", default=os.path.join(HERE, "..", "data", "pdr_cnn_v1.h5"))
    ap.add_argument("--k", type=int, default=5, help="shared blocks (the branch copies the rest)")
    ap.add_argument("--fasta")
    ap.add_argument("--out")
    ap.add_argument("--sets", default="", help="comma-separated CACHE.npy:FEATURES.npz:TEACHER_DIR")
    ap.add_argument("--segf", default=os.path.join(HERE, "work", "segf"))
    ap.add_argument("--held-cache", default=None, help="default: work/segb/heldout_kK.npy")
    ap.add_argument("--bg-cache", default=None, help="default: work/segb/bg_kK.npy")
    ap.add_argument("--shared", default=os.path.join(HERE, "..", "..", "shared", "data"))
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--hard", type=int, default=128)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--tau", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--branch", default=None)
    ap.add_argument("--out-branch", default=None)
    a = ap.parse_args()
    for out_path in (a.out, a.out_branch):  # the recipe's output folders need not exist
        if out_path:
            os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    import torch
    from eval import load_h5_model, read_fasta
    torch.set_num_threads(a.threads)
    model = load_h5_model(a.model)
    if a.cmd == "cache":
        seqs = read_fasta(a.fasta)
        t0 = time.time()
        cache_states(model, seqs, sorted(seqs), a.k, a.out)
        print("%d proteins -> %s (%.0f s)" % (len(seqs), a.out, time.time() - t0))
        return
    branch = Branch(model, a.k)
    if a.branch:
        branch.load(torch.load(a.branch)["branch"])
    work = os.path.join(HERE, "work", "segb")
    hc = Cache(a.held_cache or os.path.join(work, "heldout_k%d.npy" % a.k))
    bc = Cache(a.bg_cache or os.path.join(work, "bg_k%d.npy" % a.k))
    if a.cmd == "train":
        import seg_head
        held = {l.strip() for l in open(os.path.join(a.shared, "homology", "heldout_ids.txt")) if l.strip()}
        sets = []
        for spec in a.sets.split(","):
            npy, npz, teacher = spec.split(":")
            c = Cache(npy)
            ws = seg_head.WindowSet(npz, teacher, held)
            if c.accs != ws.accs:
                sys.exit("seg_branch.py: %s and %s list different proteins" % (npy, npz))
            sets.append((c, ws))
            print("%s: %d proteins, %d residues, %d pairs" % (npy, len(c.accs), len(c.X), len(ws.pos)), flush=True)
        train(branch, sets, a.steps, a.batch, a.hard, a.lr, a.tau, a.seed, ckpt=a.out_branch)
        if a.out_branch:
            torch.save({"step": a.steps, "branch": branch.state(), "k": a.k}, a.out_branch)
    heldout(branch, hc, bc, a.model, a.segf, a.shared)


if __name__ == "__main__":
    main()
