#!/usr/bin/python3
"""train.py: train the pdr encoder (train/model.py) by contrastive learning + distillation from the
MMseqs2 teacher mined by train/mine_teacher.py.

Loss per step (batch of B positive pairs + H hard negatives, each a random crop of 64..512 aa):
  InfoNCE (temperature tau, symmetric) of anchor crops against all partner crops and the hard
  negative crops, with known teacher positives among the in-batch candidates masked out;
  + w_distill * MSE(cos(anchor, partner), target(bits))  target = 0.25 + 0.7 * sqrt(min(1, nbits)),
    nbits = bits / min(selfbits(a), selfbits(b))  (a monotone function of the teacher's bitscore);
  + w_distill * mean(relu(cos(anchor, hard negative) - 0.1)^2).
Crops of a positive pair are centred on corresponding points of the MMseqs2 alignment, so that they
share homologous residues: the model learns local (segment) similarity as well as whole-protein.
With --w-seg W > 0, + W * the same InfoNCE on windows (--seg-window residues, 100 as pdr's segments)
pooled from the same hidden states and projected by the segment projection (model.seg_proj, started
from --seg-proj-from's or a copy of the whole-protein one): in a pair's two crops the windows around
the corresponding alignment point, elsewhere a random window of the crop.
A fraction of pairs are two crops of one protein (self pairs), for proteins without partners.

The LR schedule (linear warm-up, cosine decay) runs on elapsed training time (--time-budget s), so
a run fits a fixed wall-clock slot whatever the hardware; checkpoints (every --ckpt-every steps and
at the end) hold model, optimizer, step and elapsed time, and --resume continues from the latest.
At the end: eval.py's benchmark on held-out proteins (if --heldout exists) and export to --export.

CPU:  /usr/bin/python3 train/train.py --data train/work/gpu --time-budget 3600 --threads 2
CUDA: python3 train/train.py --data train/work/gpu --time-budget 330 --workers 8
"""
import argparse, contextlib, glob, gzip, math, os, random, sys, time
import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from model import Encoder, tokenize, PAD_TOKEN  # noqa: E402
from eval import read_fasta  # noqa: E402  (one FASTA reader for train/)


def opent(path):
    if not os.path.exists(path) and os.path.exists(path + ".gz"):
        path += ".gz"
    return gzip.open(path, "rt") if path.endswith(".gz") else open(path)


class PairData:
    """Tokenized training proteins + teacher pairs, and a seeded batch sampler."""

    def __init__(self, ddir, heldout_ids=None):
        fa = [p for p in (os.path.join(ddir, "train.fasta.gz"), os.path.join(ddir, "train.fasta")) if os.path.exists(p)][0]
        seqs = read_fasta(fa)
        self.accs = sorted(seqs)
        idx = {a: i for i, a in enumerate(self.accs)}
        lut = np.full(256, 20, np.uint8)
        from model import ALPHABET
        for i, c in enumerate(ALPHABET):
            lut[ord(c)] = i
            lut[ord(c.lower())] = i
        self.lens = np.array([len(seqs[a]) for a in self.accs], np.int64)
        self.off = np.concatenate([[0], np.cumsum(self.lens)])
        self.tok = lut[np.frombuffer("".join(seqs[a] for a in self.accs).encode("latin-1", "replace"), np.uint8)]
        selfbits = np.array([2.0 * l for l in self.lens], np.float32)
        sb = os.path.join(ddir, "selfbits.tsv")
        if os.path.exists(sb) or os.path.exists(sb + ".gz"):
            for line in opent(sb):
                a, b = line.split()
                if a in idx:
                    selfbits[idx[a]] = float(b)
        self.selfbits = selfbits
        P = []
        for line in opent(os.path.join(ddir, "pos.tsv")):
            p = line.split("\t")
            if p[0] in idx and p[1] in idx:
                P.append((idx[p[0]], idx[p[1]], float(p[3]), int(p[4]) - 1, int(p[5]), int(p[6]) - 1, int(p[7])))
        self.pos = np.array(P, np.float64).reshape(-1, 7)
        pa, pb = self.pos[:, 0].astype(np.int64), self.pos[:, 1].astype(np.int64)
        nb = self.pos[:, 2] / np.minimum(selfbits[pa], selfbits[pb])
        self.target = (0.25 + 0.7 * np.sqrt(np.clip(nb, 0, 1))).astype(np.float32)
        # per-protein list of pair rows (both orientations) to sample anchors uniformly
        rows = np.concatenate([np.arange(len(pa)), np.arange(len(pa))])
        who = np.concatenate([pa, pb])
        o = np.argsort(who, kind="stable")
        self.by_prot_rows, self.by_prot_side = rows[o], np.concatenate([np.zeros(len(pa)), np.ones(len(pa))])[o].astype(np.int8)
        self.anchors, starts = np.unique(who[o], return_index=True)
        self.anchor_start = starts
        self.anchor_end = np.concatenate([starts[1:], [len(o)]])
        # each pair row's partner, seen from the protein whose row list holds it; the row lists of
        # a protein (anchor_of >= 0) then give its known positives, for the in-batch mask
        self.by_prot_partner = np.where(self.by_prot_side == 0, pb[self.by_prot_rows], pa[self.by_prot_rows])
        self.anchor_of = np.full(len(self.accs), -1, np.int64)
        self.anchor_of[self.anchors] = np.arange(len(self.anchors))
        N = []
        ng = os.path.join(ddir, "neg.tsv")
        if os.path.exists(ng) or os.path.exists(ng + ".gz"):
            for line in opent(ng):
                p = line.split("\t")
                if p[0] in idx and p[1] in idx:
                    N.append((idx[p[0]], idx[p[1]]))
        self.neg = np.array(N, np.int64).reshape(-1, 2)
        if heldout_ids is not None:
            assert not (set(self.accs) & heldout_ids), "heldout accession in the training data"

    def summary(self):
        return ("train proteins %d (%d residues), positive pairs %d over %d anchors, hard negatives %d"
                % (len(self.accs), len(self.tok), len(self.pos), len(self.anchors), len(self.neg)))

    def crop(self, rng, i, L, centre=None, with_start=False):
        n = int(self.lens[i])
        if n <= L:
            s = 0
        else:
            c = rng.integers(0, n) if centre is None else int(centre)
            s = int(np.clip(c - rng.integers(L // 4, 3 * L // 4 + 1), 0, n - L))
        e = min(n, s + L)
        t = self.tok[self.off[i] + s: self.off[i] + e]
        return (t, s) if with_start else t

    def known_positive(self, ida, cand):
        """-> bool [len(ida), len(cand)]: True where (ida[i], cand[j]) is a teacher positive pair.
        Looks up only the row lists of the batch's anchors: its cost does not grow with the data."""
        n = len(self.accs)
        k = self.anchor_of[ida]
        has = np.flatnonzero(k >= 0)
        s, e = self.anchor_start[k[has]], self.anchor_end[k[has]]
        cnt = e - s
        rows = np.repeat(s - np.cumsum(cnt) + cnt, cnt) + np.arange(cnt.sum())
        known = np.repeat(has, cnt) * n + self.by_prot_partner[rows]
        key = np.arange(len(ida))[:, None] * n + cand[None, :]
        return np.isin(key, known)

    def batch(self, rng, B, H, self_frac, min_crop, max_crop, full_frac, window=100):
        """-> tokens [2B+H, Lmax] int64 (anchors, partners, negatives), target [B] (nan for self
        pairs), mask_pos [B, B+H] bool (True where a candidate is a known positive of the anchor),
        win [2B+H, 2] int64: a window (start, end) in each crop, for the segment loss: around the
        corresponding alignment point in a pair's two crops, at random in self pairs and negatives."""
        seqsA, seqsP, targ, ida, idp = [], [], [], [], []
        centA, centP = [], []  # window centre in each crop (None: random)
        if rng.random() < full_frac:  # a long batch: near full-length proteins (eval is full length)
            min_crop, max_crop = max_crop // 2, 2 * max_crop
        for _ in range(B):
            L = int(rng.integers(min_crop, max_crop + 1))
            if rng.random() < self_frac or len(self.anchors) == 0:
                i = int(rng.integers(0, len(self.accs)))
                seqsA.append(self.crop(rng, i, L)); seqsP.append(self.crop(rng, i, L))
                targ.append(np.nan); ida.append(i); idp.append(i)
                centA.append(None); centP.append(None)
                continue
            k = int(rng.integers(0, len(self.anchors)))
            r = int(rng.integers(self.anchor_start[k], self.anchor_end[k]))
            row, side = self.by_prot_rows[r], self.by_prot_side[r]
            a, b, _, as_, ae, bs, be = self.pos[row]
            if side:
                a, b, as_, ae, bs, be = b, a, bs, be, as_, ae
            a, b = int(a), int(b)
            f = rng.random()
            ca = as_ + f * (ae - as_)
            cb = bs + f * (be - bs)
            (ta, sa), (tb, sb) = self.crop(rng, a, L, ca, True), self.crop(rng, b, L, cb, True)
            seqsA.append(ta); seqsP.append(tb)
            centA.append(ca - sa); centP.append(cb - sb)
            targ.append(self.target[row]); ida.append(a); idp.append(b)
        seqsN, idn = [], []
        while len(seqsN) < (H if len(self.neg) else 0):
            q, t = self.neg[int(rng.integers(0, len(self.neg)))]
            L = int(rng.integers(min_crop, max_crop + 1))
            seqsN.append(self.crop(rng, int(t), L)); idn.append(int(t))
            if len(seqsN) < H and rng.random() < 0.5:  # both sides of the negative pair
                seqsN.append(self.crop(rng, int(q), L)); idn.append(int(q))
        allseq = seqsA + seqsP + seqsN
        win = np.zeros((len(allseq), 2), np.int64)
        for k, (s, c) in enumerate(zip(allseq, centA + centP + [None] * len(seqsN))):
            n = len(s)
            if n <= window:
                win[k] = (0, n)
                continue
            c = rng.integers(0, n) if c is None else int(c)
            w0 = int(np.clip(c - window // 2, 0, n - window))
            win[k] = (w0, w0 + window)
        Lmax = -(-max(len(s) for s in allseq) // 64) * 64  # few distinct shapes for the GPU kernels
        tok = np.full((len(allseq), Lmax), PAD_TOKEN, np.int64)
        for k, s in enumerate(allseq):
            tok[k, :len(s)] = s
        cand = np.array(idp + idn, np.int64)
        ida, idp = np.array(ida, np.int64), np.array(idp, np.int64)
        mask = (self.known_positive(ida, cand) | (cand[None, :] == ida[:, None]) | (cand[None, :] == idp[:, None]))
        mask[np.arange(B), np.arange(B)] = False
        return torch.from_numpy(tok), torch.tensor(targ, dtype=torch.float32), torch.from_numpy(mask), torch.from_numpy(win)


class BatchStream(torch.utils.data.IterableDataset):
    def __init__(self, data, seed, args):
        self.data, self.seed, self.a = data, seed, args

    def __iter__(self):
        wi = torch.utils.data.get_worker_info()
        rng = np.random.default_rng([self.seed, wi.id if wi else 0])
        a = self.a
        while True:
            yield self.data.batch(rng, a.batch, a.hard, a.self_frac, a.min_crop, a.max_crop, a.full_frac, a.seg_window)


def torch_load(path, dev):
    try:
        return torch.load(path, map_location=dev, weights_only=False)
    except TypeError:  # older torch without weights_only
        return torch.load(path, map_location=dev)


def read_init(path, dev="cpu"):
    """The weights to start from: a checkpoint (.pt) or a model file written by export.py (.h5,
    e.g. data/pdr_cnn_v1.h5: no training checkpoint needs to survive between sessions)."""
    if not path.endswith(".h5"):
        return torch_load(path, dev)
    from eval import load_h5_model
    m = load_h5_model(path)
    cfg = dict(d=m.d, n_blocks=len(m.blocks), kernel=m.kernel, dilations=list(m.dilations), out_dim=m.out_dim)
    import h5py
    with h5py.File(path, "r") as f:
        version = f.attrs.get("model_version", "?")
    version = version.decode() if isinstance(version, bytes) else str(version)
    return {"model": {k: v.to(dev) for k, v in m.state_dict().items()}, "config": cfg,
            "origin": "model_version %s" % version}


def load_weights(model, sd):
    """A checkpoint's weights; one with a segment projection gives the model one too. A model with
    a segment projection (--w-seg) keeps its copy when the checkpoint has none."""
    if "seg_proj.weight" in sd and model.seg_proj is None:
        model.add_segment_projection()
    missing, unexpected = model.load_state_dict(sd, strict=False)
    assert not unexpected and all(k.startswith("seg_proj.") for k in missing), (missing, unexpected)
    if missing:  # no projection in the checkpoint: start from the whole-protein one
        model.add_segment_projection()


def sym_infonce(ea, ec, pmask, tau):
    """Symmetric InfoNCE: anchors ea [B] against candidates ec [B + H] (partner i of anchor i
    first), and partners ec[:B] against anchors; pmask [B, B + H] hides known positives."""
    B = ea.shape[0]
    lab = torch.arange(B, device=ea.device)
    fwd = F.cross_entropy((ea @ ec.T / tau).masked_fill(pmask, -1e4), lab)
    rev = F.cross_entropy((ec[:B] @ ea.T / tau).masked_fill(pmask[:, :B].T, -1e4), lab)
    return 0.5 * (fwd + rev)


def lr_at(frac, a):
    if frac < a.warmup:
        return a.lr * max(frac / a.warmup, 0.01)
    p = min(1.0, (frac - a.warmup) / max(1e-9, 1 - a.warmup))
    return a.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * p)))


def save(path, model, opt, step, elapsed, cfg, args):
    tmp = path + ".tmp"
    torch.save({"model": model.state_dict(), "config": cfg, "opt": opt.state_dict(), "step": step,
                "elapsed": elapsed, "args": vars(args)}, tmp)
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.path.join(HERE, "work", "gpu"))
    ap.add_argument("--heldout", default=None, help="heldout FASTA for the final eval (default DATA/heldout.fasta[.gz])")
    ap.add_argument("--heldout-ids", default=None, help="heldout_ids.txt: asserted absent from the training data")
    ap.add_argument("--shared", default=os.path.join(HERE, "..", "..", "shared", "data"))
    ap.add_argument("--ckpt-dir", default=os.path.join(HERE, "work", "ckpt"))
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--init", default=None,
                    help="start from these weights, a checkpoint or a model .h5 (new optimizer/schedule)")
    ap.add_argument("--time-budget", type=float, default=3600.0, help="seconds of training (LR schedule runs on it)")
    ap.add_argument("--max-steps", type=int, default=0)
    ap.add_argument("--step-schedule", action="store_true",
                    help="the LR schedule runs on --max-steps instead of the time budget (arms that share "
                         "the cores get the same schedule per step); the time budget still stops the run")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--hard", type=int, default=64)
    ap.add_argument("--self-frac", type=float, default=0.1)
    ap.add_argument("--full-frac", type=float, default=0.15, help="fraction of batches with crops of max_crop/2..2*max_crop")
    ap.add_argument("--min-crop", type=int, default=64)
    ap.add_argument("--max-crop", type=int, default=512)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--wd", type=float, default=0.01)
    ap.add_argument("--warmup", type=float, default=0.05, help="fraction of the time budget")
    ap.add_argument("--tau", type=float, default=0.05)
    ap.add_argument("--w-distill", type=float, default=1.0)
    ap.add_argument("--w-seg", type=float, default=0.0,
                    help="weight of the segment loss: InfoNCE of windows around corresponding alignment points, "
                         "pooled from the same hidden states, projected by the segment projection (0: off)")
    ap.add_argument("--seg-window", type=int, default=100)
    ap.add_argument("--seg-proj-from", default=None,
                    help="model file whose /seg_proj_w, /seg_proj_b start the segment projection "
                         "(default: a copy of the whole-protein projection)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--d", type=int, default=128)
    ap.add_argument("--n-blocks", type=int, default=6)
    ap.add_argument("--kernel", type=int, default=5)
    ap.add_argument("--dilations", default="1,2,4,8,16,1")
    ap.add_argument("--out-dim", type=int, default=256)
    ap.add_argument("--ckpt-every", type=int, default=500)
    ap.add_argument("--log-every", type=int, default=50)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--export", default=None, help="model name to export at the end, e.g. data/pdr_cnn_v1")
    ap.add_argument("--export-name", default="pdr-cnn-v1")
    ap.add_argument("--no-eval", action="store_true")
    ap.add_argument("--segments", action="store_true", help="final eval with segments too")
    a = ap.parse_args()
    if a.step_schedule and a.max_steps <= 0:
        ap.error("--step-schedule needs --max-steps")

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    if dev == "cuda":
        torch.backends.cudnn.benchmark = False
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    held = None
    if a.heldout_ids:
        held = set(l.strip() for l in open(a.heldout_ids) if l.strip())
    t0 = time.time()
    data = PairData(a.data, held)
    print(data.summary(), "(loaded in %.1f s)" % (time.time() - t0), flush=True)

    cfg = dict(d=a.d, n_blocks=a.n_blocks, kernel=a.kernel,
               dilations=[int(x) for x in a.dilations.split(",")], out_dim=a.out_dim)
    model = Encoder(**cfg)
    if a.w_seg > 0:
        model.add_segment_projection()  # overwritten by --init/--resume or --seg-proj-from below
    model = model.to(dev)
    os.makedirs(a.ckpt_dir, exist_ok=True)
    last = os.path.join(a.ckpt_dir, "last.pt")
    step, elapsed0, resume = 0, 0.0, None
    if a.init:  # weights only (fresh optimizer and schedule): a second training phase
        ck = read_init(a.init, dev)
        assert ck["config"] == cfg, "init checkpoint config %s != %s" % (ck["config"], cfg)
        load_weights(model, ck["model"])
        origin = ck.get("origin") or "step %s of its run" % ck.get("step")
        print("initialised from %s (%s)" % (a.init, origin), flush=True)
    if a.resume and os.path.exists(last):
        resume = torch_load(last, dev)
        assert resume["config"] == cfg, "checkpoint config %s != %s" % (resume["config"], cfg)
        load_weights(model, resume["model"])
    elif a.seg_proj_from:
        import h5py
        with h5py.File(a.seg_proj_from, "r") as f:
            model.add_segment_projection(np.array(f["seg_proj_w"], np.float32), np.array(f["seg_proj_b"], np.float32))
        print("segment projection from %s" % a.seg_proj_from, flush=True)
    print("model %s: params %d, flops/residue %.3g, device %s" % (cfg, model.n_params(), model.flops_per_residue(), dev), flush=True)
    # the optimizer after the weights: a segment projection a checkpoint brought is trained too
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "embed" not in n]
    nodecay = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and "embed" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.wd}, {"params": nodecay, "weight_decay": 0.0}],
                            lr=a.lr, betas=(0.9, 0.98))
    if resume is not None:
        opt.load_state_dict(resume["opt"])
        step, elapsed0 = resume["step"], resume["elapsed"]
        print("resumed from %s at step %d, %.0f s" % (last, step, elapsed0), flush=True)

    stream = BatchStream(data, a.seed * 1000003 + step, a)
    lkw = dict(prefetch_factor=4) if a.workers else {}
    loader = torch.utils.data.DataLoader(stream, batch_size=None, num_workers=a.workers,
                                         pin_memory=(dev == "cuda"), **lkw)
    use_amp = dev == "cuda"
    tstart = time.time()
    tlog, slog = time.time(), step
    acc = {"nce": 0.0, "dist": 0.0, "neg": 0.0, "n": 0, "cpos": 0.0, "seg": 0.0}
    model.train()
    B = a.batch
    for tok, targ, pmask, win in loader:
        elapsed = elapsed0 + time.time() - tstart
        frac = elapsed / a.time_budget
        if frac >= 1.0 or (a.max_steps and step >= a.max_steps):
            break
        lr = lr_at(step / a.max_steps if a.step_schedule else frac, a)
        for g in opt.param_groups:
            g["lr"] = lr
        tok = tok.to(dev, non_blocking=True)
        targ = targ.to(dev, non_blocking=True)
        pmask = pmask.to(dev, non_blocking=True)
        amp = torch.autocast(device_type="cuda", dtype=torch.bfloat16) if use_amp else contextlib.nullcontext()
        with amp:
            x, xmask = model.hidden(tok)
            e = model.pool(x, xmask)
            if a.w_seg > 0:
                win = win.to(dev, non_blocking=True)
                pos_ = torch.arange(x.shape[1], device=dev)[None, :]
                wmask = ((pos_ >= win[:, :1]) & (pos_ < win[:, 1:])).unsqueeze(-1).to(xmask.dtype) * xmask
                s = model.pool(x * wmask, wmask, segment=True)  # pool's mean expects zeros outside
        e = e.float()
        ea, ec = e[:B], e[B:]
        nce = sym_infonce(ea, ec, pmask, a.tau)
        cpos = (ea * ec[:B]).sum(-1)
        ok = ~torch.isnan(targ)
        dist = ((cpos[ok] - targ[ok]) ** 2).mean() if ok.any() else torch.zeros((), device=dev)
        if ec.shape[0] > B:
            cneg = ea @ ec[B:].T
            negl = (F.relu(cneg - 0.1) ** 2).mean()
        else:
            negl = torch.zeros((), device=dev)
        loss = nce + a.w_distill * (dist + negl)
        segl = torch.zeros((), device=dev)
        if a.w_seg > 0:  # the same InfoNCE on windows (anchor windows against partner + negative windows)
            s = s.float()
            segl = sym_infonce(s[:B], s[B:], pmask, a.tau)
            loss = loss + a.w_seg * segl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        acc["nce"] += nce.item() if step % 10 == 0 else 0.0
        if step % 10 == 0:
            acc["dist"] += dist.item(); acc["neg"] += negl.item(); acc["cpos"] += cpos.mean().item(); acc["n"] += 1
            acc["seg"] += segl.item()
        if step % a.log_every == 0:
            n = max(1, acc["n"])
            now = time.time()
            print("step %6d  t %6.0fs  lr %.2e  nce %.4f  distill %.4f  negpen %.4f  seg %.4f  cos+ %.3f  %.2f steps/s  tokens %s"
                  % (step, elapsed, lr, acc["nce"] / n, acc["dist"] / n, acc["neg"] / n, acc["seg"] / n, acc["cpos"] / n,
                     (step - slog) / (now - tlog), tuple(tok.shape)), flush=True)
            tlog, slog = now, step
            acc = {k: 0.0 for k in acc}; acc["n"] = 0
        if step % a.ckpt_every == 0:
            save(last, model, opt, step, elapsed0 + time.time() - tstart, cfg, a)
    elapsed = elapsed0 + time.time() - tstart
    save(last, model, opt, step, elapsed, cfg, a)
    print("trained %d steps, %.0f s of training; checkpoint %s" % (step, elapsed, last), flush=True)

    model.eval()
    if a.export:
        import export as ex  # train/export.py (model file + PyTorch reference embeddings)
        mcpu = Encoder(**cfg)
        if model.seg_proj is not None:
            mcpu.add_segment_projection()
        mcpu.load_state_dict({k: v.detach().float().cpu() for k, v in model.state_dict().items()})
        mcpu.eval()
        desc = ("pdr-cnn trained by train/train.py (InfoNCE + MMseqs2-bitscore distillation): %d steps, "
                "%.0f s on %s, seed %d; %s" % (step, elapsed, dev, a.seed, data.summary()))
        version = ex.write_model(mcpu, a.export + ".h5", a.export_name, desc)
        ex.write_ref(mcpu, a.export + "_ref.h5", version, ex.default_ref_seqs(1))
        print("exported %s.h5 and %s_ref.h5 (model_version %s)" % (a.export, a.export, version), flush=True)
    if not a.no_eval:
        import eval as ev
        hf = a.heldout
        if hf is None:
            hf = [p for p in (os.path.join(a.data, "heldout.fasta.gz"), os.path.join(a.data, "heldout.fasta")) if os.path.exists(p)]
            hf = hf[0] if hf else None
        if hf and os.path.exists(hf):
            seqs = ev.read_fasta(hf)
            bench = ev.load_pairs(a.shared, set(seqs))
            need = set()
            for name, _ in ev.DATASETS:
                for p in bench[name][0]:
                    need.update(p)
            t1 = time.time()
            emb, segs = ev.embed_model(model, {x: seqs[x] for x in need}, dev, a.segments)
            print("embedded %d held-out proteins in %.1f s" % (len(need), time.time() - t1))
            ev.evaluate(bench, emb, segs, title="ROC AUC on held-out pairs, step %d" % step)
        else:
            print("no heldout FASTA: skipping eval")


if __name__ == "__main__":
    main()
