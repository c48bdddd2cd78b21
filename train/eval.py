#!/usr/bin/python3
"""eval.py: the homology benchmark of ../shared/data/README.md on held-out proteins.

For each of pfam_max50, pfam_nomax50, pfam_localpfam_nomax50: the labelled pairs whose two proteins
are both in heldout.fasta; score = cosine of the two protein embeddings; ROC AUC over all pairs
(hom*/localhom = positive, nonhom = negative). With --segments also the best segment-pair cosine
(windows W, stride S pooled from the same final hidden states) and max(whole, best segment).

With --adjust, also pdr's background-adjusted scores (embed/pdr_background.h): each protein's
level is the P-th percentile of its cosines to the model file's /background sample, and
adjusted = cos - (level(a) + level(b)) / 2, what `pdr search` reports. With --segments too:
segment levels against windows of the same background proteins (4,096 windows, seeded), the best
adjusted segment pair, and mix = W_MIX * adjusted + (1 - W_MIX) * best adjusted segment pair
(--mix, default 0.4): the candidate local-homology score (train/README.md, part 6).

Embedding sources (one of):
  --model data/X.h5        an exported pdr-cnn model (train/model_format), run in PyTorch
  --checkpoint ckpt.pt     a training checkpoint {'model': state_dict, 'config': Encoder kwargs}
  --store file.h5          a pdr HDF5 store with /ids and /embeddings (e.g. the hashed-3-mer
                           baseline written by `pdr embed`); whole-protein scores only
With --expand K (and --adjust), also the scores of query expansion (expand.py): every protein's
vector moved towards its K best neighbours in a database, by default the evaluated held-out
proteins themselves (an all-vs-all search of the benchmark FASTA, as bench/peers.py runs it),
or the proteins of a pdr store given with --expand-pool (e.g. training-pool proteins).

usage: /usr/bin/python3 train/eval.py --model data/pdr_cnn_v1.h5 [--segments] [--adjust [--mix 0.4]]
       /usr/bin/python3 train/eval.py --store hd.h5 [--segments] [--adjust --bg-model data/pdr_cnn_v1.h5] [--by-label]
       /usr/bin/python3 train/eval.py --store hd.h5 --adjust --expand 3 [--expand-alpha 1] [--expand-pool P.h5]
"""
import argparse, math, os, sys, time
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "bench"))
from auc import roc_auc  # noqa: E402  (one AUC for the held-out benchmark and the peers benchmark)

DATASETS = [("pfam_max50", "pfam_max50.pair"),
            ("pfam_nomax50", "pfam_nomax50.pair"),
            ("pfam_local", "pfam_localpfam_nomax50.pair")]


def read_fasta(path):
    out, acc, seq = {}, None, []
    opener = open
    if path.endswith(".gz"):
        import gzip
        opener = lambda p: gzip.open(p, "rt")
    with opener(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith(">"):
                if acc is not None:
                    out[acc] = "".join(seq)
                acc, seq = line[1:].split()[0], []
            else:
                seq.append(line)
    if acc is not None:
        out[acc] = "".join(seq)
    return out


def sequence_twins(seqs, pool_path):
    """Accessions of seqs (held-out proteins) whose exact sequence (upper case) is also a
    sequence of the FASTA pool_path under any accession."""
    by_seq = {}
    for acc, seq in seqs.items():
        by_seq.setdefault(seq.upper(), []).append(acc)
    twins = set()
    for _, seq in read_fasta(pool_path).items():
        twins.update(by_seq.get(seq.upper(), ()))
    return twins


def read_pair_file(shared, fn, present):
    """(a, b, label string) of every listed pair whose two proteins are in present; total lines."""
    rows, total = [], 0
    with open(os.path.join(shared, "homology", fn)) as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            a, b, lab = line.split()[:3]
            total += 1
            if a in present and b in present:
                rows.append((a, b, lab))
    return rows, total


def load_pairs(shared, present):
    """-> {name: (list of (a, b), labels bool array, total lines)}"""
    out = {}
    for name, fn in DATASETS:
        rows, total = read_pair_file(shared, fn, present)
        out[name] = ([(a, b) for a, b, _ in rows], np.array([lab != "nonhom" for _, _, lab in rows], bool), total)
    return out


def load_kinds(shared, present):
    """-> {name: array of the label strings (hom-pfam, hom-clan, hom-mixed, localhom, nonhom)} in
    load_pairs' order."""
    return {name: np.array([lab for _, _, lab in read_pair_file(shared, fn, present)[0]]) for name, fn in DATASETS}


def evaluate_by_label(bench, kinds, emb, segs=None, adj=None, mix=0.4, out=sys.stdout):
    """ROC AUC of each homolog label against the dataset's nonhom pairs (e.g. hom-clan: pairs of
    different families of one Pfam clan, the remote ones)."""
    print("by label (each homolog label against the dataset's nonhom pairs)", file=out)
    print("%-14s %-10s %6s %8s" % ("dataset", "label", "pairs", "whole") +
          (" %9s" % "adjusted" if adj is not None else "") +
          (" %9s" % ("mix%.2g" % mix) if adj is not None and segs is not None else ""), file=out)
    for name, _ in DATASETS:
        pairs, labels, _total = bench[name]
        whole, _seg = score_pairs(pairs, emb, None)
        aw, aseg = adjusted_scores(pairs, emb, segs, adj) if adj is not None else (None, None)
        k = kinds[name]
        neg = k == "nonhom"
        for lab in sorted(set(k) - {"nonhom"}):
            sel = (k == lab) | neg
            y = k[sel] == lab
            line = "%-14s %-10s %6d %8.4f" % (name, lab, int((k == lab).sum()), roc_auc(whole[sel], y))
            if aw is not None:
                line += " %9.4f" % roc_auc(aw[sel], y)
                if aseg is not None:
                    line += " %9.4f" % roc_auc((mix * aw + (1 - mix) * aseg)[sel], y)
            print(line, file=out)
    out.flush()


def segment_bounds(L, W=100, S=50):
    """Window starts/ends: one window if L <= W, else starts 0, S, 2S, ... with the last window
    ending at L (start = L - W), so that every residue is covered and every window has length W."""
    if L <= W:
        return [(0, L)]
    n = int(math.ceil((L - W) / S)) + 1
    return [(min(i * S, L - W), min(i * S, L - W) + W) for i in range(n)]


def embed_model(model, seqs, device, segments=False, W=100, S=50, max_tokens=65536):
    """seqs {acc: str} -> (emb {acc: np [D]}, segs {acc: np [n, D]} or None)."""
    import torch
    import torch.nn.functional as F
    from model import tokenize, PAD_TOKEN
    model.eval()
    accs = sorted(seqs, key=lambda a: len(seqs[a]))
    emb, segs = {}, ({} if segments else None)
    i = 0
    with torch.no_grad():
        while i < len(accs):
            L = max(1, len(seqs[accs[i]]))
            j = i
            while j < len(accs) and (j - i + 1) * max(1, len(seqs[accs[j]])) <= max_tokens:
                j += 1
            j = max(j, i + 1)
            batch = accs[i:j]
            Lmax = max(1, max(len(seqs[a]) for a in batch))
            tok = torch.full((len(batch), Lmax), PAD_TOKEN, dtype=torch.long)
            for k, a in enumerate(batch):
                t = tokenize(seqs[a])
                tok[k, :len(t)] = torch.tensor(t, dtype=torch.long)
            tok = tok.to(device)
            x, mask = model.hidden(tok)
            e = model.pool(x, mask).float().cpu().numpy()
            for k, a in enumerate(batch):
                emb[a] = e[k]
            if segments:
                # gather all windows of the batch, pool them in one go
                rows, starts, lens, owner = [], [], [], []
                for k, a in enumerate(batch):
                    for (s0, s1) in segment_bounds(len(seqs[a]), W, S):
                        rows.append(k); starts.append(s0); lens.append(s1 - s0); owner.append(a)
                Wm = max(lens)
                idx = torch.tensor(starts, device=device).unsqueeze(1) + torch.arange(Wm, device=device)
                valid = torch.arange(Wm, device=device).unsqueeze(0) < torch.tensor(lens, device=device).unsqueeze(1)
                idx = idx.clamp(max=Lmax - 1)
                xs = x[torch.tensor(rows, device=device).unsqueeze(1), idx]  # [nseg, Wm, d]
                sv = model.pool(xs, valid.unsqueeze(-1).float(), segment=True).float().cpu().numpy()
                cur = {}
                for r, a in enumerate(owner):
                    cur.setdefault(a, []).append(sv[r])
                for a, v in cur.items():
                    segs[a] = np.stack(v)
            i = j
    return emb, segs


def load_h5_model(path):
    import h5py, torch
    from model import Encoder
    with h5py.File(path, "r") as f:
        cfg = dict(d=int(f.attrs["d"]), n_blocks=int(f.attrs["n_blocks"]), kernel=int(f.attrs["kernel"]),
                   dilations=[int(x) for x in f.attrs["dilations"]], out_dim=int(f.attrs["out_dim"]))
        m = Encoder(**cfg)
        sd = m.state_dict()
        t = lambda k: torch.from_numpy(np.array(f[k], dtype=np.float32))
        w = sd["embed.weight"].clone()
        w[:21] = t("embed")
        w[21:] = 0
        sd["embed.weight"] = w
        for i in range(cfg["n_blocks"]):
            g = "blocks/%d/" % i
            sd["blocks.%d.ln.weight" % i] = t(g + "ln_g")
            sd["blocks.%d.ln.bias" % i] = t(g + "ln_b")
            sd["blocks.%d.conv.weight" % i] = t(g + "conv_w")
            sd["blocks.%d.conv.bias" % i] = t(g + "conv_b")
            sd["blocks.%d.pw.weight" % i] = t(g + "pw_w")
            sd["blocks.%d.pw.bias" % i] = t(g + "pw_b")
        sd["final_ln.weight"] = t("final_ln_g")
        sd["final_ln.bias"] = t("final_ln_b")
        sd["proj.weight"] = t("proj_w")
        sd["proj.bias"] = t("proj_b")
        if "seg_proj_w" in f:
            m.add_segment_projection()
            sd["seg_proj.weight"] = t("seg_proj_w")
            sd["seg_proj.bias"] = t("seg_proj_b")
        m.load_state_dict(sd)
    return m


def load_checkpoint_model(path):
    import torch
    from model import Encoder
    try:
        ck = torch.load(path, map_location="cpu", weights_only=False)
    except TypeError:
        ck = torch.load(path, map_location="cpu")
    m = Encoder(**ck["config"])
    if "seg_proj.weight" in ck["model"]:  # trained with --w-seg or from a model file with one
        m.add_segment_projection()
    m.load_state_dict(ck["model"])
    return m


def load_store(path):
    import h5py
    with h5py.File(path, "r") as f:
        ids = [x.decode() if isinstance(x, bytes) else str(x) for x in f["ids"][()]]
        E = np.array(f["embeddings"], np.float32)
    n = np.linalg.norm(E, axis=1, keepdims=True)
    E = E / np.maximum(n, 1e-12)
    return {a: E[i] for i, a in enumerate(ids)}


def load_store_segments(path):
    """{acc: [m, D] segment vectors} of a pdr store made with --segments, or None without them."""
    import h5py
    with h5py.File(path, "r") as f:
        if "segments" not in f:
            return None
        ids = [x.decode() if isinstance(x, bytes) else str(x) for x in f["ids"][()]]
        S = np.array(f["segments/embeddings"], np.float32)
        prot = np.array(f["segments/protein"])
    S = S / np.maximum(np.linalg.norm(S, axis=1, keepdims=True), 1e-12)
    order = np.argsort(prot, kind="stable")
    bounds = np.searchsorted(prot[order], np.arange(len(ids) + 1))
    return {a: S[order[bounds[i]:bounds[i + 1]]] for i, a in enumerate(ids)}


def score_pairs(pairs, emb, segs=None):
    whole = np.array([float(np.dot(emb[a], emb[b])) for a, b in pairs])
    if segs is None:
        return whole, None
    seg = np.array([float((segs[a] @ segs[b].T).max()) for a, b in pairs])
    return whole, seg


def adjusted_scores(pairs, emb, segs, adj):
    """(adjusted whole scores, best adjusted segment pair or None) with adj = {'lev': {acc: level},
    'seg_lev': {acc: array of segment levels} or None}."""
    lev = adj["lev"]
    whole = np.array([float(np.dot(emb[a], emb[b])) - 0.5 * (lev[a] + lev[b]) for a, b in pairs])
    if segs is None or adj.get("seg_lev") is None:
        return whole, None
    sl = adj["seg_lev"]
    seg = np.array([float((segs[a] @ segs[b].T - 0.5 * (sl[a][:, None] + sl[b][None, :])).max()) for a, b in pairs])
    return whole, seg


def evaluate(bench, emb, segs=None, out=sys.stdout, title="", adj=None, mix=0.4):
    """Print the AUC table; return {dataset: {'n':..., 'whole':..., 'seg':..., 'max':..., 'adj':...,
    'seg_adj':..., 'mix':...}}."""
    res = {}
    if title:
        print(title, file=out)
    hdr = "%-14s %8s %6s %8s" % ("dataset", "pairs", "homol", "whole")
    if segs is not None:
        hdr += " %8s %10s" % ("segment", "max(w,s)")
    if adj is not None:
        hdr += " %9s" % "adjusted"
        if segs is not None:
            hdr += " %8s %9s" % ("seg-adj", "mix%.2g" % mix)
    print(hdr, file=out)
    for name, _ in DATASETS:
        pairs, labels, total = bench[name]
        whole, seg = score_pairs(pairs, emb, segs)
        r = {"n": len(pairs), "total": total, "pos": int(labels.sum()), "whole": roc_auc(whole, labels)}
        line = "%-14s %8d %6d %8.4f" % (name, len(pairs), r["pos"], r["whole"])
        if seg is not None:
            r["seg"] = roc_auc(seg, labels)
            r["max"] = roc_auc(np.maximum(whole, seg), labels)
            line += " %8.4f %10.4f" % (r["seg"], r["max"])
        if adj is not None:
            aw, aseg = adjusted_scores(pairs, emb, segs, adj)
            r["adj"] = roc_auc(aw, labels)
            line += " %9.4f" % r["adj"]
            if aseg is not None:
                r["seg_adj"] = roc_auc(aseg, labels)
                r["mix"] = roc_auc(mix * aw + (1 - mix) * aseg, labels)
                line += " %8.4f %9.4f" % (r["seg_adj"], r["mix"])
        print(line + "   (of %d listed pairs)" % total, file=out)
        res[name] = r
    out.flush()
    return res


def require_same_model(store, model):
    """Exit unless the pdr store was embedded by this model file (same model_version): the
    background levels of one model say nothing about another model's vectors."""
    import h5py
    with h5py.File(store, "r") as f, h5py.File(model, "r") as m:
        sv, mv = str(f.attrs.get("model_version", "")), str(m.attrs.get("model_version", ""))
    if sv != mv:
        sys.exit("%s: %s was embedded by model %s, but the background comes from %s (model %s); "
                 "pass the model that made the store" % (os.path.basename(sys.argv[0]), store, sv or "?", model,
                                                         mv or "?"))


def load_background(path):
    """(/background [n, D] float32, background_percentile) of a model file, or None."""
    import h5py
    with h5py.File(path, "r") as f:
        if "background" not in f:
            return None
        return np.array(f["background"], np.float32), float(f.attrs["background_percentile"])


def make_adjust(bg_model, emb, segs, model=None, device="cpu", W=100, S=50, pool=None, heldout_ids=None,
                n_seg_bg=4096, seed=1):
    """Levels for the embedded proteins (and their segments, when segs and model are given)."""
    from background import background_accessions, level
    got = load_background(bg_model)
    if got is None:
        sys.exit("eval.py: %s has no /background (add one with train/background.py)" % bg_model)
    B, pct = got
    accs = sorted(emb)
    L = level(np.stack([emb[a] for a in accs]), B, pct)
    adj = {"lev": dict(zip(accs, L)), "seg_lev": None}
    if segs is not None and model is not None:
        import h5py
        with h5py.File(bg_model, "r") as f:
            src = str(f.attrs.get("background_source", ""))
        n_bg = B.shape[0]
        seed_bg = int(src.rsplit("seed", 1)[1]) if "seed" in src else 1
        held = {l.strip() for l in open(heldout_ids) if l.strip()}
        poolseq = read_fasta(pool)
        pick = background_accessions(poolseq, n_bg, seed_bg, held)
        _, bsegs = embed_model(model, {x: poolseq[x] for x in pick}, device, True, W, S)
        allw = np.concatenate([bsegs[x] for x in pick])
        allw /= np.linalg.norm(allw, axis=1, keepdims=True)
        rng = np.random.default_rng(seed)
        SB = allw[rng.choice(len(allw), min(n_seg_bg, len(allw)), replace=False)]
        adj["seg_lev"] = {a: level(segs[a] / np.linalg.norm(segs[a], axis=1, keepdims=True), SB, pct) for a in segs}
    elif segs is not None:  # a store's segments: the model file's own background of windows, as pdr uses
        import h5py
        with h5py.File(bg_model, "r") as f:
            SB = np.array(f["background_segments"], np.float32)
        SB /= np.linalg.norm(SB, axis=1, keepdims=True)
        adj["seg_lev"] = {a: level(segs[a], SB, pct) for a in segs}
    return adj


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--model")
    src.add_argument("--checkpoint")
    src.add_argument("--store")
    ap.add_argument("--heldout", default=os.path.join(HERE, "work", "heldout.fasta"))
    ap.add_argument("--shared", default=os.path.join(HERE, "..", "..", "shared", "data"))
    ap.add_argument("--segments", action="store_true")
    ap.add_argument("--window", type=int, default=100)
    ap.add_argument("--stride", type=int, default=50)
    ap.add_argument("--adjust", action="store_true", help="also background-adjusted scores")
    ap.add_argument("--bg-model", default=None, help="model file whose /background to use (default: --model, "
                    "else data/pdr_cnn_v1.h5)")
    ap.add_argument("--mix", type=float, default=0.4)
    ap.add_argument("--pool", default=os.path.join(HERE, "work", "train_pool.fasta"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default=None)
    ap.add_argument("--exclude-twins", action="store_true",
                    help="leave out the pairs of held-out proteins whose exact sequence is also in --pool "
                         "(under another accession: the held-out rule is by accession, so training may have "
                         "seen the same chain; train/README.md, 'Sequence twins')")
    ap.add_argument("--by-label", action="store_true", help="also the AUC of each homolog label "
                    "(hom-pfam, hom-clan, hom-mixed, localhom) against the nonhom pairs")
    ap.add_argument("--expand", type=int, default=0, help="query expansion over K neighbours (needs --adjust)")
    ap.add_argument("--expand-alpha", type=float, default=1.0)
    ap.add_argument("--expand-pool", action="append", default=None, help="pdr store of the expansion database "
                    "(repeat for several; default: the evaluated held-out proteins)")
    a = ap.parse_args()
    if a.exclude_twins and not a.pool:
        ap.error("--exclude-twins needs --pool")
    if a.expand and not a.adjust:
        ap.error("--expand needs --adjust (neighbours are chosen by adjusted score)")

    seqs = read_fasta(a.heldout)
    t0 = time.time()
    if a.store:
        emb = load_store(a.store)
        present = set(seqs) & set(emb)
        segs = load_store_segments(a.store) if a.segments else None
        if a.segments and segs is None:
            sys.exit("eval.py: --segments: %s has no segments (pdr embed --segments)" % a.store)
    else:
        import torch
        torch.set_num_threads(a.threads)
        dev = a.device or ("cuda" if torch.cuda.is_available() else "cpu")
        m = load_h5_model(a.model) if a.model else load_checkpoint_model(a.checkpoint)
        m = m.to(dev)
        present = set(seqs)
    if a.exclude_twins:
        twins = sequence_twins(seqs, a.pool)
        print("--exclude-twins: %d held-out proteins have an identical sequence in %s; their pairs are left out"
              % (len(twins & present), a.pool), flush=True)
        present -= twins
    bench = load_pairs(a.shared, present)
    need = set()
    for name, _ in DATASETS:
        for p in bench[name][0]:
            need.update(p)
    if not a.store:
        print("embedding %d held-out proteins (%d residues) on %s" %
              (len(need), sum(len(seqs[x]) for x in need), dev), flush=True)
        emb, segs = embed_model(m, {x: seqs[x] for x in need}, dev, a.segments, a.window, a.stride)
        print("params %d, flops/residue %.3g, embed time %.1f s" % (m.n_params(), m.flops_per_residue(), time.time() - t0))
    adj = None
    if a.adjust:
        bg_model = a.bg_model or a.model or os.path.join(HERE, "..", "data", "pdr_cnn_v1.h5")
        if a.store:
            require_same_model(a.store, bg_model)
        adj = make_adjust(bg_model, emb, segs, None if a.store else m, "cpu" if a.store else dev, a.window, a.stride,
                          a.pool, os.path.join(a.shared, "homology", "heldout_ids.txt"))
    evaluate(bench, emb, segs, title="ROC AUC, source %s" % (a.model or a.checkpoint or a.store), adj=adj, mix=a.mix)
    if a.by_label:
        evaluate_by_label(bench, load_kinds(a.shared, present), emb, segs, adj, a.mix)
    if a.expand:
        from background import level
        from expand import expand
        B, pct = load_background(a.bg_model or a.model or os.path.join(HERE, "..", "data", "pdr_cnn_v1.h5"))
        B = B / np.linalg.norm(B, axis=1, keepdims=True)
        accs = sorted(emb)
        E = np.stack([emb[x] for x in accs])
        lev = np.array([adj["lev"][x] for x in accs], np.float32)
        if a.expand_pool:
            pool = {}
            for path in a.expand_pool:
                part = load_store(path)
                if set(part) & set(accs):
                    sys.exit("eval.py: %s holds evaluated proteins; an expansion pool must not" % path)
                pool.update(part)
            R = np.stack([pool[x] for x in sorted(pool)])
            V = expand(E, lev, R, level(R, B, pct), a.expand, a.expand_alpha)
        else:
            V = expand(E, lev, E, lev, a.expand, a.expand_alpha, self_index=np.arange(len(E)))
        ev_emb = {x: V[i] for i, x in enumerate(accs)}
        ev_lev = level(V, B, pct)
        evaluate(bench, ev_emb, segs, adj={"lev": {x: ev_lev[i] for i, x in enumerate(accs)},
                                           "seg_lev": adj.get("seg_lev")}, mix=a.mix,
                 title="query expansion: K %d, alpha %g, database %s" % (
                     a.expand, a.expand_alpha,
                     "%d proteins of %s" % (len(R), ", ".join(a.expand_pool)) if a.expand_pool else "the evaluated proteins"))


if __name__ == "__main__":
    main()
