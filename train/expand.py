"""expand.py: query expansion in embedding space (an experiment, not yet in the C code).

Each protein's vector is moved towards its confident neighbours in a database, the way an
iterative profile search (PSI-BLAST, jackhmmer, MMseqs2 --num-iterations) moves a query towards
the homologs its first round found:

    v' = normalize(e + alpha * sum_j w_j e_j / sum_j w_j),  w_j = max(adjusted(e, e_j), 0),

over the k database proteins j with the highest adjusted score (cosine minus the mean of the two
background levels, as `pdr search` ranks; the protein itself excluded). A protein with no
neighbour above 0 keeps its vector. The pair score is then the cosine (or adjusted score, with
levels of the expanded vectors) of the two expanded vectors: both sides expanded, as a database
would be once at build time and a query at search time. Used by eval.py and check_teacher.py
(--expand K); train/README.md ("Session 19") has the figures.
"""
import numpy as np


def expand(E, lev, R, rlev, k=3, alpha=1.0, self_index=None, chunk=1000):
    """Expanded, L2-normalized copies of the rows of E [n, D] (levels lev [n]) against the
    database R [m, D] (levels rlev [m]). self_index [n]: the row of R that is E's own protein
    (excluded), or None when E's proteins are not in R."""
    E, R = np.asarray(E, np.float32), np.asarray(R, np.float32)
    out = np.empty_like(E)
    for i0 in range(0, len(E), chunk):
        A = E[i0:i0 + chunk] @ R.T
        A -= 0.5 * rlev[None, :]
        A -= 0.5 * lev[i0:i0 + chunk, None]
        if self_index is not None:
            A[np.arange(len(A)), self_index[i0:i0 + chunk]] = -np.inf
        nb = np.argpartition(-A, k, axis=1)[:, :k]
        w = np.maximum(np.take_along_axis(A, nb, 1), 0).astype(np.float32)
        mean = np.einsum("ik,ikd->id", w, R[nb]) / np.maximum(w.sum(1, keepdims=True), 1e-12)
        v = E[i0:i0 + chunk] + alpha * mean
        out[i0:i0 + chunk] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out
