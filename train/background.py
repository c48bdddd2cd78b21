#!/usr/bin/python3
"""background.py: add a background sample to a pdr-cnn model file, for background-adjusted scores.

A cosine between two embeddings is not equally surprising for every protein: some proteins (common
domains, biased composition) sit close to many unrelated ones. pdr corrects for that with each
protein's background level: the P-th percentile (default 98) of its cosines to a fixed sample of
real proteins. pdr's score of a pair is then cos(a, b) - (level(a) + level(b)) / 2 (README.md,
"Scores"). This script draws the sample (seeded) from the training pool, which holds no held-out
protein, embeds it with the model (PyTorch, float32) and stores it in the model file:

  /background           float32 [n, out_dim], L2-normalized rows
  /background_segments  float32 [m, out_dim]: m windows (seeded sample) of the same proteins,
                        window W, stride S: the background of segment vectors (`pdr makedb
                        --segments`)
  root attributes       background_percentile (float64, in (0, 100)), background_source (str),
                        background_segment_window, background_segment_stride (int)

The weights and model_version are untouched (model_version hashes the weights only).

usage: /usr/bin/python3 train/background.py --model data/pdr_cnn_v1.h5
           [--pool train/work/train_pool.fasta] [--n 4096] [--seed 1] [--percentile 98]
           [--heldout-ids ../shared/data/homology/heldout_ids.txt] [--threads 2]
           [--window 100 --stride 50 --n-segments 4096]
"""
import argparse, os, random, sys
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from eval import embed_model, load_h5_model, read_fasta  # noqa: E402


def background_accessions(pool, n, seed, held):
    """The background sample: pool proteins of length 30..2000, sorted accessions, seeded shuffle,
    the first n (the teacher subsets' rule). Refuses a held-out accession."""
    accs = sorted(x for x, s in pool.items() if 30 <= len(s) <= 2000)
    random.Random(seed).shuffle(accs)
    pick = accs[:n]
    bad = [x for x in pick if x in held]
    if bad:
        sys.exit("background.py: held-out protein %s is in the pool" % bad[0])
    return pick


def level(X, B, percentile):
    """Background levels: the percentile of each row of X's cosines to the rows of B (numpy;
    the same rank rule as embed/pdr_background.c: index floor(n * p / 100) of the sorted row)."""
    k = min(B.shape[0] - 1, int(np.floor(B.shape[0] * percentile / 100.0)))
    out = np.zeros(len(X), np.float32)
    for i in range(0, len(X), 4096):
        S = X[i:i + 4096] @ B.T
        out[i:i + 4096] = np.partition(S, k, axis=1)[:, k]
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--pool", default=os.path.join(HERE, "work", "train_pool.fasta"))
    ap.add_argument("--heldout-ids", default=os.path.join(HERE, "..", "..", "shared", "data", "homology",
                                                           "heldout_ids.txt"))
    ap.add_argument("--n", type=int, default=4096)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--percentile", type=float, default=98.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--window", type=int, default=100)
    ap.add_argument("--stride", type=int, default=50)
    ap.add_argument("--n-segments", type=int, default=4096)
    a = ap.parse_args()
    import h5py, torch
    torch.set_num_threads(a.threads)
    held = {l.strip() for l in open(a.heldout_ids) if l.strip()}
    pool = read_fasta(a.pool)
    pick = background_accessions(pool, a.n, a.seed, held)
    model = load_h5_model(a.model)
    emb, segs = embed_model(model, {x: pool[x] for x in pick}, "cpu", True, a.window, a.stride)
    B = np.stack([emb[x] for x in pick]).astype(np.float32)
    B /= np.linalg.norm(B, axis=1, keepdims=True)
    allw = np.concatenate([segs[x] for x in pick]).astype(np.float32)
    allw /= np.linalg.norm(allw, axis=1, keepdims=True)
    SB = allw[np.random.default_rng(a.seed).choice(len(allw), min(a.n_segments, len(allw)), replace=False)]
    with h5py.File(a.model, "a") as f:
        if "background" in f:
            del f["background"]
        f.create_dataset("background", data=B)
        if "background_segments" in f:
            del f["background_segments"]
        f.create_dataset("background_segments", data=SB)
        f.attrs["background_segment_window"] = a.window
        f.attrs["background_segment_stride"] = a.stride
        f.attrs["background_percentile"] = float(a.percentile)
        f.attrs["background_source"] = "%s: %d proteins of length 30..2000, seed %d" % (
            os.path.basename(a.pool), a.n, a.seed)
    print("background.py: %s: /background %d x %d (%d residues), /background_segments %d of %d windows "
          "(W %d, S %d), percentile %g" % (a.model, B.shape[0], B.shape[1], sum(len(pool[x]) for x in pick),
                                            SB.shape[0], allw.shape[0], a.window, a.stride, a.percentile))


if __name__ == "__main__":
    main()
