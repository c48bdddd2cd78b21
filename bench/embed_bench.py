#!/usr/bin/python3
"""embed_bench.py: how fast `pdr embed` is (issue 4), against PyTorch on the same machine.

Prints one table: residues/s, wall time, peak RSS for `pdr embed` (2 workers x 1 BLAS thread,
and 1 worker x 2 BLAS threads), the same encoder in PyTorch on CPU, and an ESM-2 8M-shaped
transformer (6 layers, d=320, 20 heads, random weights) in PyTorch, the anchor a user would
otherwise run; encoder GFLOP/s against the machine's sgemm rate measured in the same run.

    /usr/bin/python3 bench/embed_bench.py [--fasta F] [--n 20000] [--model data/pdr_cnn_v1.h5]
    /usr/bin/python3 bench/embed_bench.py --full        # the whole 516k-protein corpus, pdr only

Default input: the first N proteins of train/work/train_pool.fasta (built by
train/build_corpus.sh from Debian's metastudent-data).
"""
import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "train"))


def read_fasta(path, limit=None):
    out, name, seq = [], None, []
    with open(path) as f:
        for line in f:
            if line.startswith(">"):
                if name is not None:
                    out.append((name, "".join(seq)))
                    if limit and len(out) >= limit:
                        return out
                name, seq = line[1:].split()[0], []
            else:
                seq.append(line.strip())
    if name is not None and (not limit or len(out) < limit):
        out.append((name, "".join(seq)))
    return out


def run_measured(cmd, env=None):
    """Run cmd; return (wall seconds, peak RSS MiB, returncode, stderr tail)."""
    t = time.monotonic()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.monotonic() - t
    err = p.stderr.read()
    return wall, ru.ru_maxrss / 1024.0, os.waitstatus_to_exitcode(status), err.strip().splitlines()[-1:] 


def default_products(pdr, model):
    """What `pdr version` says the encoder's products are on this CPU."""
    out = subprocess.run([pdr, "version", "--model", model], capture_output=True, text=True).stdout
    for line in out.splitlines():
        if line.startswith("encoder products: "):
            return line[len("encoder products: "):].split(" (AVX-512")[0]
    return "?"


def sgemm_rate(build, threads):
    out = subprocess.run([os.path.join(build, "sgemm_peak"), str(threads), "1024"], capture_output=True,
                         text=True, check=True).stdout
    return float(out.split(":")[1].split()[0])


def torch_rate(model, seqs, threads, max_len=None, batch_tokens=8192):
    """Residues/s of a PyTorch model over seqs (list of token lists), length-sorted batches."""
    import torch
    torch.set_num_threads(threads)
    seqs = sorted(seqs, key=len)
    if max_len:
        seqs = [s[:max_len] for s in seqs]
    total = sum(len(s) for s in seqs)
    t = time.monotonic()
    with torch.no_grad():
        i = 0
        while i < len(seqs):
            # sorted by length: grow the batch while (count x longest) stays within batch_tokens
            j = i + 1
            while j < len(seqs) and (j + 1 - i) * len(seqs[j]) <= batch_tokens:
                j += 1
            chunk = seqs[i:j]
            L = max(len(s) for s in chunk)
            x = torch.full((len(chunk), L), model.pad, dtype=torch.long)
            for r, s in enumerate(chunk):
                x[r, :len(s)] = torch.tensor(s)
            model(x)
            i = j
    return total / (time.monotonic() - t), total


def build_torch_models():
    import torch
    import torch.nn as nn
    import model as pdr_model

    class ESM2Shaped(nn.Module):
        """ESM-2 8M shape: 6 pre-LN transformer layers, d=320, 20 heads, FFN 1280, vocab 33."""
        def __init__(self):
            super().__init__()
            self.pad = 1
            self.embed = nn.Embedding(33, 320, padding_idx=1)
            layer = nn.TransformerEncoderLayer(320, 20, 1280, dropout=0.0, activation="gelu",
                                               batch_first=True, norm_first=True)
            self.layers = nn.TransformerEncoder(layer, 6)
            self.ln = nn.LayerNorm(320)

        def forward(self, x):
            mask = x == self.pad
            h = self.layers(self.embed(x), src_key_padding_mask=mask)
            return self.ln(h).mean(1)

        @staticmethod
        def flops_per_residue(L):
            d, ff = 320, 1280
            return 6 * (2 * 4 * d * d + 2 * 2 * d * ff + 2 * 2 * L * d)

    return pdr_model, ESM2Shaped


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fasta", help="input FASTA (default: first N of train/work/train_pool.fasta)")
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--model", default=None, help="model file (default: data/pdr_cnn_v1.h5, else data/test/cnn_bench.h5)")
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--torch-n", type=int, default=1000, help="proteins for the PyTorch runs")
    ap.add_argument("--full", action="store_true", help="embed the whole corpus (train/work/corpus.fasta)")
    args = ap.parse_args()

    model_path = args.model or next(p for p in (os.path.join(ROOT, "data/pdr_cnn_v1.h5"),
                                                os.path.join(ROOT, "data/test/cnn_bench.h5")) if os.path.exists(p))
    pdr = os.path.join(args.build, "pdr")
    tmp = tempfile.mkdtemp(prefix="pdr-embed-bench-")
    if args.full:
        fasta = args.fasta or os.path.join(ROOT, "train/work/corpus.fasta")
        records = None
    else:
        src = args.fasta or os.path.join(ROOT, "train/work/train_pool.fasta")
        records = read_fasta(src, args.n)
        fasta = os.path.join(tmp, "input.fasta")
        with open(fasta, "w") as f:
            for name, s in records:
                f.write(">%s\n%s\n" % (name, s))
    n_res = sum(len(s) for _, s in records) if records else None
    if n_res is None:
        n_res = sum(len(s) for _, s in read_fasta(fasta))
    n_prot = len(records) if records else None

    import h5py
    with h5py.File(model_path, "r") as f:
        d, k, nb = int(f.attrs["d"]), int(f.attrs["kernel"]), int(f.attrs["n_blocks"])
        cfg = dict(d=d, n_blocks=nb, kernel=k, dilations=[int(x) for x in f.attrs["dilations"]],
                   out_dim=int(f.attrs["out_dim"]))
    flops_res = nb * (2 * d * d * k + 2 * d * d)

    peak1, peak2 = sgemm_rate(args.build, 1), sgemm_rate(args.build, 2)
    rows = []
    configs = [("pdr embed, 2 workers, default products: %s" % default_products(pdr, model_path),
                {"OPENBLAS_NUM_THREADS": "1"}, "2")]
    if not args.full:  # OpenBLAS sgemm products, as on a CPU without AVX2 (or with AVX-512 but no BF16)
        configs.append(("pdr embed, 2 workers x 1 BLAS thread, sgemm products",
                        {"OPENBLAS_NUM_THREADS": "1", "PDR_CNN_PRODUCTS": "sgemm"}, "2"))
        configs.append(("pdr embed, 1 worker x 2 BLAS threads, sgemm products",
                        {"PDR_BLAS_THREADS": "2", "PDR_CNN_PRODUCTS": "sgemm"}, "1"))
    for label, extra, threads in configs:
        out = os.path.join(tmp, "out.h5")
        for p in (out, out + ".partial"):
            subprocess.run(["rm", "-rf", p])
        env = dict(os.environ, **extra)
        wall, rss, rc, tail = run_measured([pdr, "embed", fasta, "-o", out, "--threads", threads,
                                            "--model", model_path], env)
        if rc != 0:
            print("pdr embed failed:", tail, file=sys.stderr)
            sys.exit(1)
        rate = n_res / wall
        rows.append((label, rate, wall, rss, rate * flops_res / 1e9))

    if not args.full:
        import torch
        pdr_model, ESM2Shaped = build_torch_models()
        sub = records[:args.torch_n]
        toks = [pdr_model.tokenize(s) for _, s in sub]
        enc = pdr_model.Encoder(**cfg).eval()
        enc.pad = pdr_model.PAD_TOKEN
        rate, _ = torch_rate(enc, toks, 2)
        rows.append(("PyTorch, same CNN, 2 threads (%d proteins)" % len(sub), rate, float("nan"), float("nan"),
                     rate * flops_res / 1e9))
        esm = ESM2Shaped().eval()
        esm_toks = [[4 + (t % 20) for t in s] for s in toks]
        rate_esm, _ = torch_rate(esm, esm_toks, 2, max_len=1022)
        mean_len = min(1022, sum(len(s) for s in toks) / len(toks))
        rows.append(("PyTorch, ESM-2 8M shape, 2 threads (%d proteins, crop 1022)" % len(sub), rate_esm,
                     float("nan"), float("nan"), rate_esm * ESM2Shaped.flops_per_residue(mean_len) / 1e9))

    print("\n## pdr embed benchmark: %s proteins, %d residues; model %s (%.2f MFLOP/residue)" % (
        n_prot if n_prot else "all", n_res, os.path.relpath(model_path, ROOT), flops_res / 1e6))
    print("sgemm 1024^3 measured now: %.1f GFLOP/s on 1 thread, %.1f on 2 threads" % (peak1, peak2))
    print("| run | residues/s | wall s | peak RSS MiB | GFLOP/s | % of 2-thread sgemm |")
    print("|---|---|---|---|---|---|")
    for label, rate, wall, rss, gf in rows:
        print("| %s | %.0f | %s | %s | %.1f | %.0f%% |" % (label, rate, "%.1f" % wall if wall == wall else "-",
                                                         "%.0f" % rss if rss == rss else "-", gf, 100 * gf / peak2))
    if not args.full:
        best = max(r[1] for r in rows[:2])
        print("pdr best / ESM-2-8M-shaped PyTorch: %.1fx residues/s (target >= 10x); target >= 50,000 residues/s"
              % (best / rows[-1][1]))
    subprocess.run(["rm", "-rf", tmp])


if __name__ == "__main__":
    main()
