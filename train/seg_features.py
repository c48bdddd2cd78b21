"""seg_features.py: cache the pooled window features of a teacher set, for training a segment head.

For every protein of SET/subset.fasta the frozen encoder (a model file) computes the final hidden
states once; every window (W, stride S: the rule of eval.segment_bounds, which pdr uses) is pooled
to v = concat(mean, max) [2d], the input of the projection. Written to OUT (npz): feats [n, 2d]
float16, owner [n] int32 (row of accs), start [n] int32, length [n] int32, accs [m], whole [m, 2d]
float32 (the same pooling over the whole protein).

usage: /usr/bin/python3 train/seg_features.py --set train/work/teacher40k --out train/work/segf/teacher40k.npz
       /usr/bin/python3 train/seg_features.py --fasta train/work/heldout.fasta --out train/work/segf/heldout.npz
       /usr/bin/python3 train/seg_features.py --background --out train/work/segf/bg.npz
(--background: the model's background proteins, background.py's rule: 4,096 pool proteins of
length 30..2000, seed 1; their FASTA is written beside OUT as bg.fasta, in background order.)
"""
import argparse
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def window_features(model, seqs, accs, W=100, S=50, max_tokens=65536, log_every=5000):
    import torch
    from model import tokenize, PAD_TOKEN
    from eval import segment_bounds
    order = sorted(range(len(accs)), key=lambda i: len(seqs[accs[i]]))
    feats, owner, start, length = [], [], [], []
    whole = np.zeros((len(accs), 2 * model.d), np.float32)
    i, t0, done = 0, time.time(), 0
    model.eval()
    with torch.no_grad():
        while i < len(order):
            j = i
            while j < len(order) and (j - i + 1) * max(1, len(seqs[accs[order[j]]])) <= max_tokens:
                j += 1
            j = max(j, i + 1)
            batch = order[i:j]
            Lmax = max(1, max(len(seqs[accs[b]]) for b in batch))
            tok = torch.full((len(batch), Lmax), PAD_TOKEN, dtype=torch.long)
            for k, b in enumerate(batch):
                t = tokenize(seqs[accs[b]])
                tok[k, :len(t)] = torch.tensor(t, dtype=torch.long)
            x, mask = model.hidden(tok)
            nw = mask.sum(1).clamp(min=1.0)
            wm = x.sum(1) / nw
            wx = x.masked_fill(mask == 0, float("-inf")).max(1).values
            whole[batch] = torch.cat([wm, wx], -1).numpy()
            rows, st, ln = [], [], []
            for k, b in enumerate(batch):
                for (s0, s1) in segment_bounds(len(seqs[accs[b]]), W, S):
                    rows.append(k); st.append(s0); ln.append(s1 - s0); owner.append(b)
            Wm = max(ln)
            idx = torch.tensor(st).unsqueeze(1) + torch.arange(Wm)
            valid = (torch.arange(Wm).unsqueeze(0) < torch.tensor(ln).unsqueeze(1)).unsqueeze(-1).float()
            xs = x[torch.tensor(rows).unsqueeze(1), idx.clamp(max=Lmax - 1)]
            n = valid.sum(1).clamp(min=1.0)
            mean = (xs * valid).sum(1) / n
            mx = xs.masked_fill(valid == 0, float("-inf")).max(1).values
            feats.append(torch.cat([mean, mx], -1).numpy().astype(np.float16))
            start += st; length += ln
            done += len(batch)
            if done // log_every != (done - len(batch)) // log_every:
                print("  %d / %d proteins, %.0f s" % (done, len(order), time.time() - t0), flush=True)
            i = j
    return (np.concatenate(feats), np.array(owner, np.int32), np.array(start, np.int32),
            np.array(length, np.int32), whole)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.path.join(HERE, "..", "data", "pdr_cnn_v1.h5"))
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--set", help="teacher set folder (subset.fasta)")
    src.add_argument("--fasta", help="any FASTA")
    src.add_argument("--background", action="store_true", help="the background proteins (above)")
    ap.add_argument("--pool", default=os.path.join(HERE, "work", "train_pool.fasta"))
    ap.add_argument("--heldout-ids", default=os.path.join(HERE, "..", "..", "shared", "data", "homology",
                                                           "heldout_ids.txt"))
    ap.add_argument("--out", required=True)
    ap.add_argument("--window", type=int, default=100)
    ap.add_argument("--stride", type=int, default=50)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    for out_path in (a.out,):  # the recipe's output folders need not exist
        if out_path:
            os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    import torch
    from eval import load_h5_model, read_fasta
    torch.set_num_threads(a.threads)
    if a.background:
        from background import background_accessions
        held = {l.strip() for l in open(a.heldout_ids) if l.strip()}
        pool = read_fasta(a.pool)
        pick = background_accessions(pool, 4096, 1, held)
        with open(os.path.join(os.path.dirname(os.path.abspath(a.out)), "bg.fasta"), "w") as f:
            for x in pick:
                f.write(">%s\n%s\n" % (x, pool[x]))
        seqs = {x: pool[x] for x in pick}
    else:
        seqs = read_fasta(a.fasta or os.path.join(a.set, "subset.fasta"))
    accs = sorted(seqs)
    m = load_h5_model(a.model)
    t0 = time.time()
    f, o, s, l, w = window_features(m, seqs, accs, a.window, a.stride)
    np.savez(a.out, feats=f, owner=o, start=s, length=l, accs=np.array(accs), whole=w)
    print("%d proteins, %d windows, %.0f s -> %s" % (len(accs), len(f), time.time() - t0, a.out))


if __name__ == "__main__":
    main()
