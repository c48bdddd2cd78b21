#!/usr/bin/python3
"""export.py: write a trained (or random-weight) model.Encoder to the pdr-cnn HDF5 model file that
embed/pdr_cnn.c reads, and optionally a reference file of PyTorch embeddings for the C parity test.

    # a trained checkpoint (torch.save({'model': state_dict, 'config': Encoder kwargs}, path))
    /usr/bin/python3 train/export.py --checkpoint work/enc.pt --out data/pdr-cnn-v1.h5 \
        --ref-out data/pdr-cnn-v1_ref.h5 --name pdr-cnn-v1 --description "..."
    # random weights (tests, benchmarks)
    /usr/bin/python3 train/export.py --random --d 32 --n-blocks 3 --kernel 5 --dilations 1,2,4 \
        --out-dim 16 --seed 1 --out data/test/cnn_tiny.h5 --ref-out data/test/cnn_tiny_ref.h5
    # the same with its own (random) segment projection
    /usr/bin/python3 train/export.py --random --d 32 --n-blocks 3 --kernel 5 --dilations 1,2,4 \
        --out-dim 16 --seed 2 --seg-proj --out data/test/cnn_tiny_seg.h5 --ref-out data/test/cnn_tiny_seg_ref.h5

File format (format_version 1; the C reader checks every item):
  root attributes  format="pdr-cnn", format_version=1, model_name, model_version (first 12 hex of
                   sha256 over every tensor's float32 little-endian bytes in the dataset order
                   below), d, n_blocks, kernel, dilations[n_blocks], out_dim, vocab=21,
                   alphabet="ACDEFGHIKLMNPQRSTVWY", ln_eps, pooling="meanmax", description
  datasets (float32, PyTorch layouts)
                   /embed [21, d]  (the padding row 21 is not exported)
                   /blocks/<i>/ln_g [d], ln_b [d], conv_w [d, d, kernel], conv_b [d],
                                pw_w [d, d], pw_b [d]
                   /final_ln_g [d], /final_ln_b [d], /proj_w [out_dim, 2d], /proj_b [out_dim]
                   optional: /seg_proj_w [out_dim, 2d], /seg_proj_b [out_dim], the projection of
                   segment vectors (train/seg_head.py); without them segments use /proj_*
Reference file: /seqs (vlen str [n]), /embeddings (float32 [n, out_dim]), attributes
model_version (same as the model file) and ref_precision="float64": each sequence goes through
the model alone, in float64, and the result is cast to float32. Segment vectors of the sequences
of length 60, 300 and 513 (if any) come too: /seg_seq, /seg_start, /seg_end (int32 [m]: index in
/seqs, half-open residue window) and /seg_embeddings (float32 [m, out_dim]), attributes
seg_window=100 and seg_stride=50.
"""
import argparse
import hashlib
import os
import sys

import h5py
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model import ALPHABET, VOCAB, Encoder, tokenize  # noqa: E402

FORMAT = "pdr-cnn"
FORMAT_VERSION = 1


def tensors_in_order(model):
    """(dataset path, float32 C-contiguous numpy array) in the order that defines model_version."""
    out = [("embed", model.embed.weight.detach()[:VOCAB])]
    for i, blk in enumerate(model.blocks):
        out += [
            (f"blocks/{i}/ln_g", blk.ln.weight),
            (f"blocks/{i}/ln_b", blk.ln.bias),
            (f"blocks/{i}/conv_w", blk.conv.weight),
            (f"blocks/{i}/conv_b", blk.conv.bias),
            (f"blocks/{i}/pw_w", blk.pw.weight),
            (f"blocks/{i}/pw_b", blk.pw.bias),
        ]
    out += [
        ("final_ln_g", model.final_ln.weight),
        ("final_ln_b", model.final_ln.bias),
        ("proj_w", model.proj.weight),
        ("proj_b", model.proj.bias),
    ]
    if model.seg_proj is not None:  # optional: the segment projection (train/seg_head.py)
        out += [("seg_proj_w", model.seg_proj.weight), ("seg_proj_b", model.seg_proj.bias)]
    return [(name, np.ascontiguousarray(t.detach().cpu().numpy(), dtype="<f4")) for name, t in out]


def model_version(arrays):
    h = hashlib.sha256()
    for _, a in arrays:
        h.update(a.tobytes())
    return h.hexdigest()[:12]


def check_finite(arrays):
    for name, a in arrays:
        if not np.all(np.isfinite(a)):
            raise SystemExit(f"export.py: tensor {name} has non-finite values; refusing to export")


def write_atomic(path, fill):
    """Write through a temporary name and rename, so a crash never leaves a half-written model."""
    tmp = path + ".tmp"
    with h5py.File(tmp, "w") as f:
        fill(f)
    os.replace(tmp, path)


def write_model(model, path, name, description):
    arrays = tensors_in_order(model)
    check_finite(arrays)
    version = model_version(arrays)

    def fill(f):
        a = f.attrs
        a["format"] = FORMAT
        a["format_version"] = np.int64(FORMAT_VERSION)
        a["model_name"] = name
        a["model_version"] = version
        a["d"] = np.int64(model.d)
        a["n_blocks"] = np.int64(len(model.blocks))
        a["kernel"] = np.int64(model.kernel)
        a["dilations"] = np.asarray(model.dilations, dtype=np.int64)
        a["out_dim"] = np.int64(model.out_dim)
        a["vocab"] = np.int64(VOCAB)
        a["alphabet"] = ALPHABET
        a["ln_eps"] = np.float64(model.final_ln.eps)
        a["pooling"] = "meanmax"
        a["description"] = description
        for dset, arr in arrays:
            f.create_dataset(dset, data=arr, dtype="<f4")

    write_atomic(path, fill)
    return version


def default_ref_seqs(seed):
    """Lengths the format asks for (1, 2, 5, 37, 300, 1500), lengths around powers of two where the
    C forward cuts rows into tiles (255, 256, 257, 513; 513 and 1500 span several tiles), and one
    sequence with ambiguity letters and lowercase."""
    rng = np.random.default_rng(seed)
    letters = np.array(list(ALPHABET))
    seqs = ["".join(rng.choice(letters, n)) for n in (1, 2, 5, 37, 300, 1500, 255, 256, 257, 513)]
    odd = list("".join(rng.choice(letters, 60)))
    for pos, c in zip((0, 7, 13, 21, 30, 44, 59), "XUBZOJx"):
        odd[pos] = c
    odd = "".join(odd[:40]) + "".join(odd[40:]).lower()
    seqs.append(odd)
    return seqs


def read_fasta(path):
    seqs, cur = [], None
    with open(path) as fh:
        for line in fh:
            line = line.strip()
            if line.startswith(">"):
                if cur is not None:
                    seqs.append("".join(cur))
                cur = []
            elif cur is not None:
                cur.append(line)
    if cur is not None:
        seqs.append("".join(cur))
    return [s for s in seqs if s]


def segment_windows(n, window, stride):
    """Windows of embed/pdr_cnn.c's pdr_cnn_segments: the whole protein if n <= window, else
    windows of `window` residues at 0, stride, 2*stride, ... and a last one ending at n."""
    if n <= window:
        return [(0, n)]
    count = 1 + -(-(n - window) // stride)
    return [(i * stride, i * stride + window) for i in range(count - 1)] + [(n - window, n)]


@torch.no_grad()
def write_ref(model, path, version, seqs, window=100, stride=50):
    m64 = Encoder(d=model.d, n_blocks=len(model.blocks), kernel=model.kernel,
                  dilations=model.dilations, out_dim=model.out_dim)
    if model.seg_proj is not None:
        m64.add_segment_projection()
    m64.load_state_dict(model.state_dict())
    m64 = m64.double().eval()
    embs = np.zeros((len(seqs), model.out_dim), dtype=np.float32)
    seg_index, seg_start, seg_end, seg_embs = [], [], [], []
    for i, s in enumerate(seqs):
        tokens = torch.tensor([tokenize(s)], dtype=torch.long)
        x, mask = m64.hidden(tokens)
        embs[i] = m64.pool(x, mask)[0].numpy().astype(np.float32)
        # Segment references for a few lengths only: enough to pin the window rule and pooling.
        if len(s) in (60, 300, 513):
            for a, b in segment_windows(len(s), window, stride):
                seg_index.append(i)
                seg_start.append(a)
                seg_end.append(b)
                seg_embs.append(m64.pool(x[:, a:b], mask[:, a:b], segment=True)[0].numpy().astype(np.float32))

    def fill(f):
        f.create_dataset("seqs", data=np.array(seqs, dtype=object), dtype=h5py.string_dtype())
        f.create_dataset("embeddings", data=embs, dtype="<f4")
        f.attrs["model_version"] = version
        f.attrs["ref_precision"] = "float64"
        if seg_embs:  # optional extra: segment vectors (window, stride as attributes)
            f.create_dataset("seg_seq", data=np.array(seg_index, dtype=np.int32))
            f.create_dataset("seg_start", data=np.array(seg_start, dtype=np.int32))
            f.create_dataset("seg_end", data=np.array(seg_end, dtype=np.int32))
            f.create_dataset("seg_embeddings", data=np.stack(seg_embs), dtype="<f4")
            f.attrs["seg_window"] = np.int64(window)
            f.attrs["seg_stride"] = np.int64(stride)

    write_atomic(path, fill)


def random_model(args):
    torch.manual_seed(args.seed)
    dil = [int(x) for x in args.dilations.split(",")]
    if len(dil) != args.n_blocks:
        raise SystemExit(f"export.py: --dilations has {len(dil)} values, --n-blocks is {args.n_blocks}")
    model = Encoder(d=args.d, n_blocks=args.n_blocks, kernel=args.kernel, dilations=dil,
                    out_dim=args.out_dim)
    # Default init leaves LayerNorm at g=1, b=0, which would let a C bug in the affine part pass.
    with torch.no_grad():
        for ln in [b.ln for b in model.blocks] + [model.final_ln]:
            ln.weight.copy_(1.0 + 0.1 * torch.randn_like(ln.weight))
            ln.bias.copy_(0.1 * torch.randn_like(ln.bias))
    if args.seg_proj:
        model.add_segment_projection()
        with torch.no_grad():
            model.seg_proj.weight.add_(0.1 * torch.randn_like(model.seg_proj.weight))
            model.seg_proj.bias.add_(0.1 * torch.randn_like(model.seg_proj.bias))
    return model


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="torch.save dict with 'model' (state_dict) and 'config'")
    src.add_argument("--random", action="store_true", help="random weights (tests, benchmarks)")
    p.add_argument("--out", required=True, help="model file to write (.h5)")
    p.add_argument("--ref-out", help="also write PyTorch reference embeddings here")
    p.add_argument("--ref-fasta", help="reference sequences (default: a fixed synthetic set)")
    p.add_argument("--name", default="pdr-cnn-v1", help="model_name attribute")
    p.add_argument("--description", help="training recipe summary (description attribute)")
    p.add_argument("--d", type=int, default=128)
    p.add_argument("--n-blocks", type=int, default=6)
    p.add_argument("--kernel", type=int, default=5)
    p.add_argument("--dilations", default="1,2,4,8,16,1")
    p.add_argument("--out-dim", type=int, default=256)
    p.add_argument("--seed", type=int, default=1, help="weights (--random) and reference sequences")
    p.add_argument("--seg-proj", action="store_true", help="with --random: a segment projection too")
    args = p.parse_args()
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)

    if args.random:
        model = random_model(args)
        description = args.description or f"random weights (torch seed {args.seed}); not trained"
    else:
        ckpt = torch.load(args.checkpoint, map_location="cpu")
        if not isinstance(ckpt, dict) or "model" not in ckpt or "config" not in ckpt:
            raise SystemExit(f"export.py: {args.checkpoint}: expected a dict with 'model' and 'config'")
        keys = ("d", "n_blocks", "kernel", "dilations", "out_dim")  # the rest is training's
        model = Encoder(**{k: v for k, v in ckpt["config"].items() if k in keys})
        if "seg_proj.weight" in ckpt["model"]:  # trained with --w-seg or from a model file with one
            model.add_segment_projection()
        model.load_state_dict(ckpt["model"])
        description = args.description or str(ckpt.get("description", ""))
    model.eval()

    version = write_model(model, args.out, args.name, description)
    print(f"wrote {args.out}: model_version {version}, {model.n_params()} params, "
          f"{model.flops_per_residue() / 1e6:.3f} MFLOP/residue")
    if args.ref_out:
        seqs = read_fasta(args.ref_fasta) if args.ref_fasta else default_ref_seqs(args.seed)
        write_ref(model, args.ref_out, version, seqs)
        print(f"wrote {args.ref_out}: {len(seqs)} reference embeddings (float64 forward)")


if __name__ == "__main__":
    main()
