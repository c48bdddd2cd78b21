#!/usr/bin/python3
"""mine_teacher.py: the teacher signal for distillation, mined with MMseqs2 over a seeded subset of
train_pool.fasta (all-vs-all inside the subset).

Outputs (in --out, default train/work/teacher):
  subset.fasta      the N proteins (seeded random choice from train_pool.fasta)
  hits.tsv          raw MMseqs2 hits: query target evalue bits qstart qend qlen tstart tend tlen pident alnlen
  pos.tsv           positives: q t evalue bits qstart qend tstart tend  (q != t, evalue <= --pos-e,
                    both directions merged, best bitscore kept, one line per unordered pair)
  selfbits.tsv      acc selfbits-estimate (bits of the self hit when MMseqs2 reports it, else
                    2.0 * length as a fallback), used to grade bitscores as bits / min(self)
  neg.tsv           hard negatives: q t kind; kind 'weak' = MMseqs2 hit with evalue > --neg-e
                    between proteins not linked by a positive path of length <= 2; kind 'comp' =
                    nearest neighbour in (length, amino-acid composition) with no hit at all
No accession of heldout_ids.txt may appear in any output (asserted).
"""
import argparse, os, random, subprocess, sys, time
import numpy as np

AA = "ACDEFGHIKLMNPQRSTVWY"


def read_fasta(path):
    acc, seq = None, []
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith(">"):
                if acc is not None:
                    yield acc, "".join(seq)
                acc, seq = line[1:].split()[0], []
            else:
                seq.append(line)
    if acc is not None:
        yield acc, "".join(seq)


def run(cmd, log):
    print("+", " ".join(cmd), flush=True)
    log.write(" ".join(cmd) + "\n")
    t = time.time()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    print("  %.1f s" % (time.time() - t), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pool", default="train/work/train_pool.fasta")
    ap.add_argument("--heldout-ids", default="../shared/data/homology/heldout_ids.txt")
    ap.add_argument("--out", default="train/work/teacher")
    ap.add_argument("--n", type=int, default=60000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--min-len", type=int, default=30)
    ap.add_argument("--max-len", type=int, default=2000)
    ap.add_argument("--sens", default="7.5")
    ap.add_argument("--search-e", default="10")
    ap.add_argument("--pos-e", type=float, default=1e-3)
    ap.add_argument("--neg-e", type=float, default=1.0)
    ap.add_argument("--threads", default="2")
    ap.add_argument("--max-seqs", default="300")
    ap.add_argument("--iterations", type=int, default=1,
                    help="mmseqs search --num-iterations: > 1 is an iterative profile search (session 16)")
    ap.add_argument("--exclude", action="append", default=[],
                    help="FASTA (e.g. an earlier run's subset.fasta) whose proteins are left out, so "
                         "that a second subset is disjoint from the first; repeatable")
    ap.add_argument("--subset-only", action="store_true",
                    help="write subset.fasta and stop (rebuilds an earlier set's --exclude list without mining it)")
    a = ap.parse_args()

    held = set(l.strip() for l in open(a.heldout_ids) if l.strip())
    os.makedirs(a.out, exist_ok=True)
    log = open(os.path.join(a.out, "commands.log"), "a")
    log.write("# %s %s\n" % (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), " ".join(sys.argv)))

    recs = [(acc, s) for acc, s in read_fasta(a.pool) if a.min_len <= len(s) <= a.max_len]
    assert not any(acc in held for acc, _ in recs), "heldout accession in the training pool"
    for path in a.exclude:
        gone = set(acc for acc, _ in read_fasta(path))
        recs = [(acc, s) for acc, s in recs if acc not in gone]
        print("excluded %d proteins of %s" % (len(gone), path), flush=True)
    rng = random.Random(a.seed)
    rng.shuffle(recs)
    sub = sorted(recs[: a.n])
    seqs = dict(sub)
    fa = os.path.join(a.out, "subset.fasta")
    with open(fa, "w") as f:
        for acc, s in sub:
            f.write(">%s\n%s\n" % (acc, s))
    print("subset: %d proteins, %d residues (pool %d with %d<=len<=%d, seed %d)"
          % (len(sub), sum(len(s) for _, s in sub), len(recs), a.min_len, a.max_len, a.seed), flush=True)
    if a.subset_only:
        return

    db, aln, tmp = [os.path.join(a.out, x) for x in ("db", "aln", "tmp")]
    hits = os.path.join(a.out, "hits.tsv")
    if not os.path.exists(hits):
        run(["mmseqs", "createdb", fa, db], log)
        it = ["--num-iterations", str(a.iterations)] if a.iterations > 1 else []
        run(["mmseqs", "search", db, db, aln, tmp, "-s", a.sens, "-e", a.search_e,
             "--max-seqs", a.max_seqs, "--threads", a.threads] + it, log)
        run(["mmseqs", "convertalis", db, db, aln, hits + ".part", "--format-output",
             "query,target,evalue,bits,qstart,qend,qlen,tstart,tend,tlen,pident,alnlen",
             "--threads", a.threads], log)
        os.rename(hits + ".part", hits)

    selfbits, pos, weak = {}, {}, {}
    nhits = 0
    with open(hits) as f:
        for line in f:
            p = line.split("\t")
            q, t, e, b = p[0], p[1], float(p[2]), float(p[3])
            nhits += 1
            if q == t:
                selfbits[q] = max(selfbits.get(q, 0.0), b)
                continue
            key = (q, t) if q < t else (t, q)
            if e <= a.pos_e:
                # keep coordinates oriented as key order
                qs, qe, ts, te = int(p[4]), int(p[5]), int(p[7]), int(p[8])
                if q > t:
                    qs, qe, ts, te = ts, te, qs, qe
                old = pos.get(key)
                if old is None or b > old[1]:
                    pos[key] = (e, b, qs, qe, ts, te)
            elif e > a.neg_e:
                weak[key] = e
    print("hits %d, positive pairs %d, weak hits %d, self hits %d" % (nhits, len(pos), len(weak), len(selfbits)))

    adj = {}
    for (q, t) in pos:
        adj.setdefault(q, set()).add(t)
        adj.setdefault(t, set()).add(q)
    def linked(q, t):
        nq = adj.get(q, ())
        if t in nq:
            return True
        nt = adj.get(t, ())
        return bool(set(nq) & set(nt))
    neg = [(q, t, "weak") for (q, t) in weak if (q, t) not in pos and not linked(q, t)]

    # composition/length-matched negatives: for a random half of the proteins, the nearest
    # neighbour in [log length, 20-dim composition] among 2000 random candidates that has no hit.
    hitpairs = set(pos) | set(weak)
    accs = [acc for acc, _ in sub]
    comp = np.zeros((len(accs), 21), np.float32)
    for i, acc in enumerate(accs):
        s = seqs[acc]
        for j, c in enumerate(AA):
            comp[i, j] = s.count(c)
        comp[i, :20] /= max(1, len(s))
        comp[i, 20] = np.log(len(s)) * 0.05
    nrng = np.random.default_rng(a.seed)
    order = nrng.permutation(len(accs))[: len(accs) // 2]
    for i in order:
        cand = nrng.integers(0, len(accs), 2000)
        d = ((comp[cand] - comp[i]) ** 2).sum(1)
        for j in cand[np.argsort(d)]:
            if j == i:
                continue
            q, t = accs[i], accs[j]
            key = (q, t) if q < t else (t, q)
            if key in hitpairs or linked(q, t):
                continue
            neg.append((key[0], key[1], "comp"))
            break

    for acc, _ in sub:
        if acc not in selfbits:
            selfbits[acc] = 2.0 * len(seqs[acc])
    everything = set(selfbits) | {x for k in pos for x in k} | {x for n in neg for x in n[:2]}
    assert not (everything & held), "heldout accession leaked into teacher outputs"

    with open(os.path.join(a.out, "pos.tsv"), "w") as f:
        for (q, t), (e, b, qs, qe, ts, te) in sorted(pos.items()):
            f.write("%s\t%s\t%.3g\t%.1f\t%d\t%d\t%d\t%d\n" % (q, t, e, b, qs, qe, ts, te))
    with open(os.path.join(a.out, "neg.tsv"), "w") as f:
        for q, t, k in neg:
            f.write("%s\t%s\t%s\n" % (q, t, k))
    with open(os.path.join(a.out, "selfbits.tsv"), "w") as f:
        for acc in sorted(selfbits):
            f.write("%s\t%.1f\n" % (acc, selfbits[acc]))
    nweak = sum(1 for n in neg if n[2] == "weak")
    msg = ("subset %d (seed %d): positives %d (E<=%g), negatives %d weak (E>%g) + %d comp; "
           "proteins with >=1 positive %d"
           % (len(sub), a.seed, len(pos), a.pos_e, nweak, a.neg_e, len(neg) - nweak, len(adj)))
    print(msg)
    log.write("# " + msg + "\n")


if __name__ == "__main__":
    main()
