#!/usr/bin/python3
"""residue_sw.py: local alignment of per-residue hidden states (session 26 experiment, CPU only).

Would the encoder's residue-level states align a shared domain where one vector per window
cannot? For a seeded sample of one dataset's held-out pairs, this script takes the final hidden
states of both proteins (model.hidden: after the last layer norm, d = 128), centres them on a
global mean and normalises them, scores residue pairs as z = (cos - mu) / sd - C (mu, sd: the
cosine of random residue pairs), and runs Smith-Waterman with affine gaps (train/residue_sw.c,
compiled into train/work/) over that matrix. It prints the ROC AUC of the alignment score beside
the shipped scores on the same pairs (adjusted whole protein, best adjusted window pair, mix0.4),
for a few (C, gap open, gap extend) settings.

    ./build/pdr embed train/work/heldout.fasta -o /tmp/hd_seg.h5 --segments
    /usr/bin/python3 train/residue_sw.py --store /tmp/hd_seg.h5 [--dataset pfam_local] [--pairs 3000]
"""
import argparse, ctypes, os, subprocess, sys, time
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "bench"))
from auc import roc_auc  # noqa: E402
import eval as ev  # noqa: E402

SETTINGS = [(2.0, 6, 1), (3.0, 6, 1), (2.0, 10, 1), (2.5, 8, 0.5), (1.5, 10, 2)]


def load_sw():
    so = os.path.join(HERE, "work", "residue_sw.so")
    src = os.path.join(HERE, "residue_sw.c")
    if not os.path.exists(so) or os.path.getmtime(so) < os.path.getmtime(src):
        os.makedirs(os.path.dirname(so), exist_ok=True)
        subprocess.run(["gcc", "-O3", "-march=native", "-shared", "-fPIC", "-o", so, src], check=True)
    lib = ctypes.CDLL(so)
    lib.pdr_residue_sw.restype = ctypes.c_float
    lib.pdr_residue_sw.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_float, ctypes.c_float]
    return lib


def hidden_states(model, seqs, accs, max_tokens=65536):
    import torch
    from model import tokenize, PAD_TOKEN
    accs = sorted(accs, key=lambda a: len(seqs[a]))
    out, i = {}, 0
    with torch.no_grad():
        while i < len(accs):
            j = i
            while j < len(accs) and (j - i + 1) * len(seqs[accs[j]]) <= max_tokens:
                j += 1
            j = max(j, i + 1)
            batch = accs[i:j]
            tok = torch.full((len(batch), max(len(seqs[a]) for a in batch)), PAD_TOKEN, dtype=torch.long)
            for k, a in enumerate(batch):
                tok[k, :len(seqs[a])] = torch.tensor(tokenize(seqs[a]), dtype=torch.long)
            x, _mask = model.hidden(tok)
            for k, a in enumerate(batch):
                out[a] = x[k, :len(seqs[a])].numpy().astype(np.float32)
            i = j
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", required=True, help="pdr embed --segments output of the held-out FASTA")
    ap.add_argument("--model", default=os.path.join(HERE, "..", "data", "pdr_cnn_v1.h5"))
    ap.add_argument("--heldout", default=os.path.join(HERE, "work", "heldout.fasta"))
    ap.add_argument("--shared", default=os.path.join(HERE, "..", "..", "shared", "data"))
    ap.add_argument("--dataset", default="pfam_local", choices=[d for d, _ in ev.DATASETS])
    ap.add_argument("--pairs", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    import torch
    torch.set_num_threads(a.threads)
    lib = load_sw()

    seqs = ev.read_fasta(a.heldout)
    ev.require_same_model(a.store, a.model)
    emb, segs = ev.load_store(a.store), ev.load_store_segments(a.store)
    if segs is None:
        sys.exit("residue_sw.py: %s has no segments (pdr embed --segments)" % a.store)
    pairs, labels, _total = ev.load_pairs(a.shared, set(seqs) & set(emb))[a.dataset]
    rng = np.random.default_rng(a.seed)
    pick = rng.choice(len(pairs), min(a.pairs, len(pairs)), replace=False)
    pairs, labels = [pairs[i] for i in pick], labels[pick]
    adj = ev.make_adjust(a.model, emb, segs)
    aw, sg = ev.adjusted_scores(pairs, emb, segs, adj)
    print("%s, %d sampled pairs (%d homologous), seed %d: adjusted %.4f  seg-adj %.4f  mix0.4 %.4f" % (
        a.dataset, len(pairs), labels.sum(), a.seed, roc_auc(aw, labels), roc_auc(sg, labels),
        roc_auc(0.4 * aw + 0.6 * sg, labels)), flush=True)

    t0 = time.time()
    need = sorted(set(x for p in pairs for x in p))
    H = hidden_states(ev.load_h5_model(a.model), seqs, need)
    print("hidden states of %d proteins in %.1f s" % (len(need), time.time() - t0), flush=True)
    centre = np.concatenate([H[x][::7] for x in need[:2000]]).mean(0)
    for x in H:
        v = H[x] - centre
        H[x] = (v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-6)).astype(np.float32)
    r = np.random.default_rng(a.seed + 1)
    A = np.concatenate([H[need[r.integers(len(need))]] for _ in range(50)])
    B = np.concatenate([H[need[r.integers(len(need))]] for _ in range(50)])
    rand = (A[r.integers(len(A), size=20000)] @ B[r.integers(len(B), size=20000)].T).ravel()
    mu, sd = float(rand.mean()), float(rand.std())
    print("random residue pairs: cosine mean %.4f, sd %.4f, 99.9th percentile %.4f" % (
        mu, sd, np.quantile(rand, 0.999)), flush=True)
    for c, go, ge in SETTINGS:
        t0 = time.time()
        sc = np.empty(len(pairs))
        for t, (x, y) in enumerate(pairs):
            S = np.ascontiguousarray((H[x] @ H[y].T - mu) / sd - c, dtype=np.float32)
            sc[t] = lib.pdr_residue_sw(S.ctypes.data, S.shape[0], S.shape[1], go, ge)
        print("C %.1f, gap open %g, extend %g: residue SW %.4f  (%.1f s)" % (
            c, go, ge, roc_auc(sc, labels), time.time() - t0), flush=True)


if __name__ == "__main__":
    main()
