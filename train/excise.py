#!/usr/bin/python3
"""excise.py: local homology from pieces embedded as proteins of their own.

pdr's segment vectors are windows pooled from the hidden states of the whole protein, through a
projection of their own (train/README.md, "Segment projection"). This probe asks whether the
whole-protein path itself, which ranks single-domain homologs well, does better on pieces cut
out of a protein and embedded alone (no context from the rest of the chain):

  fasta: write every protein's windows (W residues, stride S, the last one ending at the
         protein's end; a protein of at most W residues is one piece, itself) as FASTA records
         named ACC__START_END, to embed with `pdr embed` (whole-protein vectors, no --segments);
  eval:  score each held-out Pfam pair by its best pair of pieces, background-adjusted with
         levels against pieces of the model's background proteins cut the same way, and mix it
         with the adjusted whole-protein score (mix = M x adjusted + (1 - M) x best piece pair),
         beside the store's own segment scores when it has them.

usage: /usr/bin/python3 train/excise.py fasta IN.fasta OUT.fasta [--window 200] [--stride 100]
       /usr/bin/python3 train/excise.py eval --store hd_seg.h5 --pieces hd_pieces.h5 \
           --bg-pieces bg_pieces.h5 [--bg-model data/pdr_cnn_v1.h5] [--mix 0.4,0.5,0.6]
"""
import argparse, os, sys
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import eval as ev  # noqa: E402
from background import level  # noqa: E402


def write_pieces(src, dst, W, S):
    seqs = ev.read_fasta(src)
    n = 0
    with open(dst, "w") as out:
        for acc, s in seqs.items():
            for a, b in ev.segment_bounds(len(s), W, S):
                out.write(">%s__%d_%d\n%s\n" % (acc, a, b, s[a:b]))
                n += 1
    print("excise.py: %d proteins, %d pieces (window %d, stride %d) -> %s" % (len(seqs), n, W, S, dst))


def load_pieces(path):
    """{acc: [m, D] piece vectors} of a store of ACC__START_END records."""
    emb = ev.load_store(path)
    groups = {}
    for name, v in emb.items():
        acc = name.rsplit("__", 1)[0]
        groups.setdefault(acc, []).append(v)
    return {a: np.stack(v) for a, v in groups.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fasta")
    f.add_argument("inp")
    f.add_argument("out")
    f.add_argument("--window", type=int, default=200)
    f.add_argument("--stride", type=int, default=100)
    e = sub.add_parser("eval")
    e.add_argument("--store", required=True, help="pdr store of the held-out proteins (whole vectors)")
    e.add_argument("--pieces", required=True, help="pdr store of their pieces")
    e.add_argument("--bg-pieces", required=True, help="pdr store of the background proteins' pieces")
    e.add_argument("--bg-model", default=os.path.join(HERE, "..", "data", "pdr_cnn_v1.h5"))
    e.add_argument("--shared", default=os.path.join(HERE, "..", "..", "shared", "data"))
    e.add_argument("--mix", default="0.4")
    e.add_argument("--n-bg", type=int, default=4096)
    e.add_argument("--seed", type=int, default=1)
    e.add_argument("--by-label", action="store_true")
    a = ap.parse_args()
    if a.cmd == "fasta":
        write_pieces(a.inp, a.out, a.window, a.stride)
        return
    ev.require_same_model(a.store, a.bg_model)
    ev.require_same_model(a.pieces, a.bg_model)
    ev.require_same_model(a.bg_pieces, a.bg_model)
    emb = ev.load_store(a.store)
    segs = ev.load_store_segments(a.store)
    pieces = load_pieces(a.pieces)
    missing = [x for x in emb if x not in pieces]
    if missing:
        sys.exit("excise.py: %d proteins of %s have no pieces in %s (first: %s)" % (len(missing), a.store,
                                                                                    a.pieces, missing[0]))
    adj = ev.make_adjust(a.bg_model, emb, segs)
    bgp = np.concatenate(list(load_pieces(a.bg_pieces).values()))
    rng = np.random.default_rng(a.seed)
    PB = bgp[rng.choice(len(bgp), min(a.n_bg, len(bgp)), replace=False)]
    pct = ev.load_background(a.bg_model)[1]
    plev = {x: level(pieces[x], PB, pct) for x in emb}
    bench = ev.load_pairs(a.shared, set(emb))
    kinds = ev.load_kinds(a.shared, set(emb)) if a.by_label else None
    mixes = [float(m) for m in a.mix.split(",")]
    print("background pieces: %d of %d; percentile %g" % (len(PB), len(bgp), pct))
    hdr = "%-14s %7s %9s %8s %9s %9s" % ("dataset", "pairs", "adjusted", "seg-adj", "mix0.4seg", "piece-adj")
    hdr += "".join(" %9s" % ("pmix%g" % m) for m in mixes) + " %9s" % "3way"
    print(hdr)
    for name, _ in ev.DATASETS:
        pairs, labels, _ = bench[name]
        aw, aseg = ev.adjusted_scores(pairs, emb, segs, adj)
        ps = np.array([float((pieces[x] @ pieces[y].T - 0.5 * (plev[x][:, None] + plev[y][None, :])).max())
                       for x, y in pairs])
        line = "%-14s %7d %9.4f" % (name, len(pairs), ev.roc_auc(aw, labels))
        if aseg is not None:
            line += " %8.4f %9.4f" % (ev.roc_auc(aseg, labels), ev.roc_auc(0.4 * aw + 0.6 * aseg, labels))
        else:
            line += " %8s %9s" % ("-", "-")
        line += " %9.4f" % ev.roc_auc(ps, labels)
        line += "".join(" %9.4f" % ev.roc_auc(m * aw + (1 - m) * ps, labels) for m in mixes)
        if aseg is not None:  # equal thirds: whole, window segment, piece
            line += " %9.4f" % ev.roc_auc((aw + aseg + ps) / 3, labels)
        print(line, flush=True)
        if kinds is not None:  # each homolog label against the dataset's nonhom pairs
            k = kinds[name]
            for lab in sorted(set(k) - {"nonhom"}):
                sel = (k == lab) | (k == "nonhom")
                y = k[sel] == lab
                print("    %-10s %7d %9.4f %8s %9s %9.4f" % (lab, int((k == lab).sum()), ev.roc_auc(aw[sel], y), "", "",
                                                         ev.roc_auc(ps[sel], y)))

if __name__ == "__main__":
    main()
