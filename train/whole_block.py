#!/usr/bin/python3
"""whole_block.py: fine-tune the encoder's top block(s) for whole proteins on cached states (CPU; session 28).

whole_head.py retrains only the whole-protein projection on frozen features (session 27). This
script gives the same teacher pairs one more layer of reach: the last n_blocks - K blocks, the final
layer norm and the whole-protein projection are trained, on the block-K states cached once per
protein by `seg_branch.py cache` (float16),

    x_K   = blocks[0..K-1](embed(tokens))                  frozen, cached per residue
    whole = proj(pool(final_ln(blocks[K..](x_K))))         trained (seg_branch.Branch, whole proj)

starting from the shipped weights (step 0 reproduces the shipped table exactly). The loss is
whole_head.py's: seg_head.py's pair sampler on whole proteins, symmetric InfoNCE, hard negatives.
Long proteins are cropped to --crop residues in training only. Segment vectors pool the same final
states, so the evaluation recomputes both whole and window features through the new top and
keeps the shipped segment projection. --keep L (session 29) adds a term that keeps the starting
weights' similarities within each batch (learning without forgetting).

    /usr/bin/python3 train/seg_branch.py cache --k 5 --fasta F --out OUT.npy    # each set, heldout, bg
    /usr/bin/python3 train/whole_block.py --segf train/work/segf27 --cache-dir train/work/segb28 \
        --sets s9p:train/work/teacher20k_s9_prof3,s26p:train/work/teacher20k_s26_prof3 --out B.pt
    /usr/bin/python3 train/whole_block.py --segf train/work/segf27 --cache-dir train/work/segb28 --branch B.pt --eval-only
Set NAME means CACHE_DIR/NAME_k5.npy (states) and SEGF/NAME.npz (seg_features.py: proteins, windows).
"""
import argparse
import copy
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "bench"))


def whole_feats(branch, cache, prot, crop=0, rng=None, chunk_residues=32768):
    """Pooled features [len(prot), 2d] of whole proteins (rows of cache), through the branch.
    crop > 0: proteins longer than crop are cut to a random crop-residue piece (training).
    Proteins are run in length-sorted chunks, so little compute goes to padding."""
    import torch
    L = (cache.off[prot + 1] - cache.off[prot]).astype(np.int64)
    start = np.zeros(len(prot), np.int64)
    if crop:
        long_ = L > crop
        start[long_] = (rng.random(int(long_.sum())) * (L[long_] - crop + 1)).astype(np.int64)
        L = np.minimum(L, crop)
    order = np.argsort(L, kind="stable")
    out = [None] * len(prot)
    i = 0
    while i < len(order):
        j = i + 1
        while j < len(order) and (j - i + 1) * (L[order[j]] + 2 * branch.halo) <= chunk_residues:
            j += 1
        sel = order[i:j]
        x, m, inner = cache.gather(prot[sel], start[sel], L[sel], branch.halo)
        f = branch.features(x, m, inner)
        for r, k in enumerate(sel):
            out[k] = f[r]
        i = j
    return torch.stack(out)


def whole_batch(crop, local_frac, window_frac=0.0, seg_proj=None, keep=0.0, old=None, tau=0.1):
    """seg_branch.train's embed_batch for whole proteins (cropped to crop residues). window_frac:
    that share of the batches are window pairs instead (seg_branch.py's), embedded with the frozen
    segment projection seg_proj (torch Linear), so that the segment vectors, which pool the same
    top, keep their training signal. keep > 0: plus keep x KL(old || new) of the anchors' softmax
    over the candidates (temperature tau), old being the frozen branch of --model on the same crops:
    the batch's similarity structure of the starting weights is kept where the pairs do not move it
    (learning without forgetting)."""
    import torch
    import torch.nn.functional as F
    from seg_branch import window_batch

    def embed(branch, cache, ws, rng, B, H):
        if window_frac and rng.random() < window_frac:
            proj, branch.proj = branch.proj, seg_proj
            try:
                return window_batch(branch, cache, ws, rng, B, H)
            finally:
                branch.proj = proj
        a, cand, ma, mb = ws.batch(rng, B, H, local_frac, whole=True, index=True)
        prot = np.concatenate([a, cand])
        rng_old = copy.deepcopy(rng) if keep else None  # the same crops for the kept branch
        z = branch.embed(whole_feats(branch, cache, prot, crop, rng))
        if not keep:
            return z, ma, mb
        with torch.no_grad():
            zo = old.embed(whole_feats(old, cache, prot, crop, rng_old))
        lo = F.log_softmax(zo[:B] @ zo[B:].T / tau, dim=1)
        ln = F.log_softmax(z[:B] @ z[B:].T / tau, dim=1)
        return z, ma, mb, keep * F.kl_div(ln, lo, log_target=True, reduction="batchmean")
    return embed


def heldout(branch, seg_proj, held_cache, bg_cache, model_path, segf, shared, by_label):
    """seg_head.heldout_table with whole and window features through the branch."""
    import torch
    import seg_head
    from seg_branch import window_feats
    w = branch.proj.weight.detach().numpy()
    b = branch.proj.bias.detach().numpy()
    sw, sb = seg_proj
    pre, t0 = {}, time.time()
    for name, cache in (("heldout.npz", held_cache), ("bg.npz", bg_cache)):
        accs = seg_head.windows_by_acc(os.path.join(segf, name))[0]
        row = {a: i for i, a in enumerate(cache.accs)}
        prot = np.array([row[a] for a in accs])
        with torch.no_grad():
            wh = np.concatenate([whole_feats(branch, cache, prot[i:i + 4096]).numpy()
                                 for i in range(0, len(prot), 4096)])
        fw, first, cnt = window_feats(branch, cache, accs)
        pre[name] = (accs, wh, fw, first, cnt)
    print("branch features: %.0f s" % (time.time() - t0), flush=True)
    return seg_head.heldout_table(model_path, lambda X: X @ sw.T + sb, segf, shared, windows=pre,
                                  whole_head=lambda X: X @ w.T + b, by_label=by_label)


def install(model_path, branch, K, out, note):
    """Write model_path's weights with the branch's top blocks, final layer norm and whole-protein
    projection (seg_head.install's way: new model_version, PyTorch references in OUT_ref.h5; add
    the background samples with background.py afterwards)."""
    import torch
    from eval import load_h5_model
    from seg_head import write_installed
    m = load_h5_model(model_path)
    with torch.no_grad():
        for i, blk in enumerate(branch.blocks):
            m.blocks[K + i].load_state_dict(blk.state_dict())
        m.final_ln.load_state_dict(branch.ln.state_dict())
        m.proj.load_state_dict(branch.proj.state_dict())
    write_installed(model_path, m, out, out[:-3] + "_ref.h5", note)


def whole_branch(model, K):
    """seg_branch.Branch of the top blocks with the whole-protein projection (the one trained here)."""
    from seg_branch import Branch
    branch = Branch(model, K)
    branch.proj = copy.deepcopy(model.proj)
    return branch


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.path.join(HERE, "..", "data", "pdr_cnn_v1.h5"))
    ap.add_argument("--k", type=int, default=5, help="frozen blocks (the rest is trained)")
    ap.add_argument("--segf", required=True, help="seg_features.py folder: heldout.npz, bg.npz, bg.fasta, SET.npz")
    ap.add_argument("--cache-dir", required=True, help="seg_branch.py cache files NAME_kK.npy")
    ap.add_argument("--sets", default="", help="comma-separated NAME:TEACHER_DIR")
    ap.add_argument("--shared", default=os.path.join(HERE, "..", "..", "shared", "data"))
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--hard", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--tau", type=float, default=0.1)
    ap.add_argument("--crop", type=int, default=600)
    ap.add_argument("--window-frac", type=float, default=0.0,
                    help="share of batches made of window pairs (frozen segment projection) instead of proteins")
    ap.add_argument("--local-frac", type=float, default=0.0,
                    help="share of pairs drawn from the teacher's local ones (alignment < half a protein)")
    ap.add_argument("--keep", type=float, default=0.0,
                    help="weight of the term that keeps the starting weights' in-batch similarities (KL)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--branch", default=None, help="start from (or, with --eval-only, evaluate) this branch")
    ap.add_argument("--alpha", type=float, default=1.0,
                    help="use the blend old + alpha (branch - old) of --branch with the starting weights")
    ap.add_argument("--out", default=None, help="branch checkpoint (written every 25 steps)")
    ap.add_argument("--eval-only", action="store_true")
    ap.add_argument("--by-label", action="store_true")
    ap.add_argument("--install", default=None, metavar="OUT.h5",
                    help="write the model with --branch's weights (and OUT_ref.h5), evaluate nothing")
    ap.add_argument("--note", default="", help="appended to the description attribute by --install")
    a = ap.parse_args()
    for out_path in (a.out, a.install):  # the recipe's output folders need not exist
        if out_path:
            os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    import torch
    import seg_head
    from eval import load_h5_model
    from seg_branch import Cache, train
    torch.set_num_threads(a.threads)
    model = load_h5_model(a.model)
    frozen_seg = copy.deepcopy(model.seg_proj).requires_grad_(False)
    seg_proj = (frozen_seg.weight.numpy(), frozen_seg.bias.numpy())
    branch = whole_branch(model, a.k)
    if a.branch:
        branch.load(torch.load(a.branch)["branch"])
        if a.alpha != 1.0:  # old + alpha (new - old), parameter by parameter
            old = whole_branch(model, a.k)
            with torch.no_grad():
                for p, q in zip(branch.params(), old.params()):
                    p.copy_(q + a.alpha * (p - q))
    if a.install:
        return install(a.model, branch, a.k, a.install, a.note)
    path = lambda name: os.path.join(a.cache_dir, "%s_k%d.npy" % (name, a.k))
    if not a.eval_only:
        held = {l.strip() for l in open(os.path.join(a.shared, "homology", "heldout_ids.txt")) if l.strip()}
        sets = []
        for spec in a.sets.split(","):
            name, teacher = spec.split(":")
            c = Cache(path(name))
            ws = seg_head.WindowSet(os.path.join(a.segf, name + ".npz"), teacher, held)
            if c.accs != ws.accs:
                sys.exit("whole_block.py: %s and %s list different proteins" % (path(name), name))
            sets.append((c, ws))
            print("%s: %d proteins, %d residues, %d pairs" % (name, len(c.accs), len(c.X), len(ws.pos)), flush=True)
        train(branch, sets, a.steps, a.batch, a.hard, a.lr, a.tau, a.seed, log_every=25, ckpt=a.out,
              embed_batch=whole_batch(a.crop, a.local_frac, a.window_frac, frozen_seg, a.keep,
                                      whole_branch(model, a.k) if a.keep else None, a.tau))
        if a.out:
            torch.save({"step": a.steps, "branch": branch.state(), "k": a.k}, a.out)
        del sets
    heldout(branch, seg_proj, Cache(path("heldout")), Cache(path("bg")), a.model, a.segf, a.shared, a.by_label)


if __name__ == "__main__":
    main()
