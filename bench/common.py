"""common.py: what the benchmark scripts share: the homology datasets, the benchmark FASTA built
from the 2014 UniProt corpus, and timing of a child process (wall, CPU, peak RSS).

The pair sets are read in place from SHARED/homology (SHARED defaults to ../shared/data relative
to the repository root). Sequences come from train/work/heldout.fasta when the training helper
has built it (train/build_corpus.sh), otherwise from Debian's metastudent-data BLAST databases
through blastdbcmd, cached as bench/out/heldout.fasta. Only pairs whose two proteins have a
sequence are used; the counts are reported so that the figures can be compared.
"""
import os
import subprocess
import sys
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
OUT = os.path.join(BENCH, "out")
DEFAULT_SHARED = os.path.join(REPO, "..", "shared", "data")

# name -> pair file, in order of size (the smallest first)
DATASETS = [("pfam_max50", "pfam_max50.pair"),
            ("pfam_local", "pfam_localpfam_nomax50.pair"),
            ("pfam_nomax50", "pfam_nomax50.pair")]
METASTUDENT = "/usr/share/metastudent-data/dataset_201401"


def die(msg):
    sys.stderr.write("bench: %s\n" % msg)
    sys.exit(1)


def read_fasta(path):
    """-> {id: sequence}, id = first word of the header, in file order."""
    out, acc, seq = {}, None, []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith(">"):
                if acc is not None:
                    out[acc] = "".join(seq)
                acc, seq = line[1:].split()[0] if len(line) > 1 else "", []
            elif line:
                seq.append(line)
    if acc is not None:
        out[acc] = "".join(seq)
    return out


def pair_file(shared, name):
    for n, fn in DATASETS:
        if n == name:
            return os.path.join(shared, "homology", fn)
    die("unknown dataset %r (known: %s)" % (name, ", ".join(n for n, _ in DATASETS)))


def read_pairs(path):
    """-> list of (a, b, label) as listed (duplicates kept: the protocol scores every line)."""
    pairs = []
    try:
        with open(path) as f:
            for lineno, line in enumerate(f, 1):
                if line.startswith("#") or not line.strip():
                    continue
                w = line.split()
                if len(w) < 3:
                    die("%s: line %d: expected 'prot1 prot2 label'" % (path, lineno))
                pairs.append((w[0], w[1], w[2]))
    except OSError as e:
        die("%s: %s (pass --shared DIR)" % (path, e.strerror))
    return pairs


def is_homolog(label):
    return label != "nonhom"


def extract_from_metastudent(wanted, dest):
    """Write the proteins in `wanted` from metastudent-data's BPO/MFO/CCO BLAST databases
    (titles 'ACCESSION|GO:...', first occurrence wins, as train/build_corpus.sh does)."""
    if not os.path.isdir(METASTUDENT):
        die("no sequences: neither train/work/heldout.fasta nor %s (apt-get install metastudent-data "
            "ncbi-blast+)" % METASTUDENT)
    seen = {}
    for ont in ("BPO", "MFO", "CCO"):
        cmd = ["blastdbcmd", "-db", os.path.join(METASTUDENT, ont, "goasp.fasta"), "-entry", "all",
               "-outfmt", "%t\t%s"]
        try:
            p = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        except OSError as e:
            die("blastdbcmd: %s (apt-get install ncbi-blast+)" % e.strerror)
        for line in p.stdout:
            title, _, seq = line.rstrip("\n").partition("\t")
            acc = title.split("|")[0]
            if acc in wanted and acc not in seen and seq:
                seen[acc] = seq
        if p.wait() != 0:
            die("%s failed with status %d" % (" ".join(cmd), p.returncode))
    tmp = dest + ".tmp"
    with open(tmp, "w") as f:
        for acc, seq in seen.items():
            f.write(">%s\n%s\n" % (acc, seq))
    os.replace(tmp, dest)
    return dest


def sequence_source(shared):
    """Path of a FASTA holding the held-out benchmark proteins."""
    train = os.path.join(REPO, "train", "work", "heldout.fasta")
    if os.path.exists(train):
        return train
    cached = os.path.join(OUT, "heldout.fasta")
    if os.path.exists(cached):
        return cached
    wanted = set()
    for name, _ in DATASETS:
        for a, b, _lab in read_pairs(pair_file(shared, name)):
            wanted.add(a)
            wanted.add(b)
    held = os.path.join(shared, "homology", "heldout_ids.txt")
    if os.path.exists(held):
        with open(held) as f:
            wanted.update(line.strip() for line in f if line.strip())
    os.makedirs(OUT, exist_ok=True)
    sys.stderr.write("bench: extracting %d proteins from %s (once)\n" % (len(wanted), METASTUDENT))
    return extract_from_metastudent(wanted, cached)


class Dataset:
    """One pair set restricted to the proteins with a sequence.
    fasta: bench/out/data/NAME.fasta (proteins in order of first appearance in the pair file);
    pairs: [(a, b, is_homolog)]; kinds: their label strings (hom-clan, ...); n_listed: pair lines in
    the file; n_proteins."""

    def __init__(self, name, shared, seqs=None):
        self.name = name
        listed = read_pairs(pair_file(shared, name))
        if seqs is None:
            seqs = read_fasta(sequence_source(shared))
        self.n_listed = len(listed)
        order, seen = [], set()
        for a, b, _lab in listed:
            for x in (a, b):
                if x not in seen:
                    seen.add(x)
                    order.append(x)
        self.n_listed_proteins = len(order)
        self.proteins = [x for x in order if x in seqs]
        present = set(self.proteins)
        self.pairs = [(a, b, is_homolog(lab)) for a, b, lab in listed if a in present and b in present]
        self.kinds = [lab for a, b, lab in listed if a in present and b in present]  # label strings, same order
        self.n_pos = sum(1 for p in self.pairs if p[2])
        self.n_neg = len(self.pairs) - self.n_pos
        d = os.path.join(OUT, "data")
        os.makedirs(d, exist_ok=True)
        self.fasta = os.path.join(d, name + ".fasta")
        body = "".join(">%s\n%s\n" % (x, seqs[x]) for x in self.proteins)
        old = None
        if os.path.exists(self.fasta):
            with open(self.fasta) as f:
                old = f.read()
        if old != body:  # rewrite only on change, so that tool databases stay valid
            with open(self.fasta + ".tmp", "w") as f:
                f.write(body)
            os.replace(self.fasta + ".tmp", self.fasta)
        self.n_residues = sum(len(seqs[x]) for x in self.proteins)

    def summary(self):
        return ("%s: %d of %d proteins have a sequence; %d of %d pairs have both (%d homolog, %d nonhom); "
                "%d residues -> %s" % (self.name, len(self.proteins), self.n_listed_proteins, len(self.pairs),
                                       self.n_listed, self.n_pos, self.n_neg, self.n_residues,
                                       os.path.relpath(self.fasta, REPO)))


def run_timed(argv, stdout=None, cwd=None, env=None):
    """Run argv to completion -> dict(rc, wall_s, cpu_s, user_s, sys_s, maxrss_mb).
    CPU time and peak RSS come from wait4() on the child: they include every descendant the child
    waited for (MMseqs2's workflow runs its steps as children). Peak RSS is that of the largest
    single process in that tree, as /usr/bin/time reports it. A missing program -> rc 127."""
    t0 = time.monotonic()
    try:
        p = subprocess.Popen(argv, stdout=stdout if stdout is not None else subprocess.DEVNULL,
                             stderr=subprocess.PIPE, cwd=cwd, env=env)
    except OSError as e:
        return {"rc": 127, "wall_s": 0.0, "cpu_s": 0.0, "user_s": 0.0, "sys_s": 0.0, "maxrss_mb": 0.0,
                "stderr": "%s: %s" % (argv[0], e.strerror)}
    # stderr is read while the child runs so that a chatty tool cannot block on a full pipe
    err = p.stderr.read()
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.monotonic() - t0
    p.returncode = os.waitstatus_to_exitcode(status)  # so Popen does not wait again
    p.stderr.close()
    return {"rc": p.returncode, "wall_s": wall, "user_s": ru.ru_utime, "sys_s": ru.ru_stime,
            "cpu_s": ru.ru_utime + ru.ru_stime, "maxrss_mb": ru.ru_maxrss / 1024.0,
            "stderr": err.decode("utf-8", "replace")}


def add_runs(runs):
    """Sequential steps of one tool (e.g. makeblastdb then blastp) -> one measurement:
    wall and CPU add up, peak RSS is the largest; rc is the first non-zero."""
    tot = {"rc": 0, "wall_s": 0.0, "cpu_s": 0.0, "user_s": 0.0, "sys_s": 0.0, "maxrss_mb": 0.0, "stderr": ""}
    for r in runs:
        for k in ("wall_s", "cpu_s", "user_s", "sys_s"):
            tot[k] += r[k]
        tot["maxrss_mb"] = max(tot["maxrss_mb"], r["maxrss_mb"])
        tot["stderr"] += r["stderr"]
        if tot["rc"] == 0 and r["rc"] != 0:
            tot["rc"] = r["rc"]
    return tot


def which(prog):
    for d in os.environ.get("PATH", "").split(os.pathsep):
        p = os.path.join(d, prog)
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    return None


def default_pdr():
    """$PDR, else the first built binary among build/, build-main/."""
    if os.environ.get("PDR"):
        return os.environ["PDR"]
    for d in ("build", "build-main"):
        p = os.path.join(REPO, d, "pdr")
        if os.access(p, os.X_OK):
            return p
    return os.path.join(REPO, "build", "pdr")


def pdr_model_line(pdr, model=None):
    """The 'model: ...' line of `pdr version [--model M]`: which encoder a run used."""
    import subprocess as sp
    try:
        r = sp.run([pdr, "version"] + (["--model", model] if model else []), capture_output=True, text=True)
    except OSError as e:
        return "model: unknown (%s: %s)" % (pdr, e.strerror)
    for line in r.stdout.splitlines():
        if line.startswith("model:"):
            return line
    return "model: unknown (pdr version exit %d)" % r.returncode


def cpu_note():
    """One line on the machine's load, since the benchmark machine may be shared."""
    l1, l5, _ = os.getloadavg()
    return "load average %.2f (1 min), %.2f (5 min) on %d CPUs" % (l1, l5, os.cpu_count() or 0)
