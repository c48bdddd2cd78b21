#!/usr/bin/python3
"""soup.py: the uniform average of the weights of several model files of one architecture (a
"model soup": fine-tunes that start from the same weights average into one model that is often
better than each, and less noisy than picking the best of them), written as a model file and
its parity references, as train.py --export writes them.

    /usr/bin/python3 train/soup.py --out train/work/runs/soup/m \
        train/work/runs/s17_single/m.h5 train/work/runs/s18_g6/m.h5

Writes OUT.h5 and OUT_ref.h5 (new model_version), without the background samples: run
background.py on OUT.h5 next. Every input must have the same hyper-parameters and the same
tensors (a segment projection in all or in none).
"""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export as ex  # noqa: E402
from eval import load_h5_model  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+", help="model files (.h5) to average")
    ap.add_argument("--out", required=True, help="output name: writes OUT.h5 and OUT_ref.h5")
    ap.add_argument("--name", default="pdr-cnn-v1")
    ap.add_argument("--description", default=None, help="default: the first model's, plus a note of the soup")
    a = ap.parse_args()
    if len(a.models) < 2:
        sys.exit("soup.py: give at least two model files")
    import h5py
    models, versions = [], []
    for p in a.models:
        models.append(load_h5_model(p))
        with h5py.File(p, "r") as f:
            v = f.attrs.get("model_version", "?")
            versions.append(v.decode() if isinstance(v, bytes) else str(v))
            if a.description is None and p == a.models[0]:
                d = f.attrs.get("description", "")
                a.description = d.decode() if isinstance(d, bytes) else str(d)
    base = models[0]
    sd0 = base.state_dict()
    for p, m in zip(a.models[1:], models[1:]):
        sd = m.state_dict()
        if sd.keys() != sd0.keys() or any(sd[k].shape != sd0[k].shape for k in sd0):
            sys.exit("soup.py: %s does not have the tensors of %s" % (p, a.models[0]))
    avg = {k: torch.stack([m.state_dict()[k].double() for m in models]).mean(0).to(sd0[k].dtype)
           for k in sd0}
    base.load_state_dict(avg)
    base.eval()
    desc = "%s Soup: the uniform average of the weights of %s." % (a.description, ", ".join(versions))
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    version = ex.write_model(base, a.out + ".h5", a.name, desc)
    ex.write_ref(base, a.out + "_ref.h5", version, ex.default_ref_seqs(1))
    print("soup of %s -> %s.h5 (model_version %s)" % (", ".join(versions), a.out, version))


if __name__ == "__main__":
    main()
