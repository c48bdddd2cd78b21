"""model.py: the pdr encoder, a dilated residual CNN (ByteNet/CARP style), in PyTorch.

This module is the reference that embed/pdr_cnn.c reproduces line by line in C; change one and
you must change the other (the parity test in tests/test_cnn.c catches a mismatch).

    tokens  : 0..19 = ACDEFGHIKLMNPQRSTVWY, 20 = X (U, O, B, Z, J, X and any other letter),
              21 = padding (training only; never seen by the C code)
    x       = embed[tokens]                                   # [L, d]
    for each block b (dilation dil[b]):
        h = layernorm(x) * ln_g + ln_b                        # eps 1e-5, over d
        h = conv1d(h, conv_w, conv_b, kernel k, dilation dil[b], zero 'same' padding)
        h = gelu(h)                                           # exact erf form
        h = h @ pw_w.T + pw_b                                 # pointwise
        x = x + h
    x = layernorm(x) * final_ln_g + final_ln_b
    v = concat(mean_L(x), max_L(x))                           # [2d]
    e = proj_w @ v + proj_b                                   # [out_dim]
    e = e / ||e||
Padding positions are zeroed before every convolution so that a padded batch gives exactly the
embeddings of the unpadded sequences, which is what C computes (zeros outside the sequence).
Segment vectors (local homology) pool the same final x over windows instead of the whole length,
and project with seg_proj when the model has one (train/seg_head.py trains it on windows, with
everything else frozen), else with proj.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

ALPHABET = "ACDEFGHIKLMNPQRSTVWY"
X_TOKEN = 20
PAD_TOKEN = 21
VOCAB = 21  # rows of the embedding table the C code reads (padding row is not exported)

_LUT = [X_TOKEN] * 256
for _i, _c in enumerate(ALPHABET):
    _LUT[ord(_c)] = _i
    _LUT[ord(_c.lower())] = _i


def tokenize(seq):
    return [_LUT[ord(c)] if ord(c) < 256 else X_TOKEN for c in seq]


class Block(nn.Module):
    def __init__(self, d, kernel, dilation):
        super().__init__()
        self.ln = nn.LayerNorm(d, eps=1e-5)
        self.conv = nn.Conv1d(d, d, kernel, dilation=dilation, padding=dilation * (kernel - 1) // 2)
        self.pw = nn.Linear(d, d)

    def forward(self, x, mask):  # x [B, L, d], mask [B, L, 1] float
        h = self.ln(x) * mask
        h = self.conv(h.transpose(1, 2)).transpose(1, 2)
        h = F.gelu(h)
        h = self.pw(h)
        return (x + h) * mask


class Encoder(nn.Module):
    def __init__(self, d=128, n_blocks=6, kernel=5, dilations=(1, 2, 4, 8, 16, 1), out_dim=256):
        super().__init__()
        assert kernel % 2 == 1 and len(dilations) == n_blocks
        self.d, self.kernel, self.dilations, self.out_dim = d, kernel, list(dilations), out_dim
        self.embed = nn.Embedding(VOCAB + 1, d, padding_idx=PAD_TOKEN)
        self.blocks = nn.ModuleList([Block(d, kernel, r) for r in dilations])
        self.final_ln = nn.LayerNorm(d, eps=1e-5)
        self.proj = nn.Linear(2 * d, out_dim)
        self.seg_proj = None  # optional segment projection (add_segment_projection)

    def add_segment_projection(self, w=None, b=None):
        """Give segments their own projection: (w, b) numpy arrays, or a copy of proj (an existing
        segment projection keeps its parameters and takes the new values)."""
        if self.seg_proj is None:
            self.seg_proj = nn.Linear(2 * self.d, self.out_dim).to(self.proj.weight.device)
        with torch.no_grad():
            self.seg_proj.weight.copy_(self.proj.weight if w is None else torch.as_tensor(w))
            self.seg_proj.bias.copy_(self.proj.bias if b is None else torch.as_tensor(b))

    def hidden(self, tokens):
        """tokens [B, L] long (PAD_TOKEN beyond each length) -> final hidden [B, L, d], mask."""
        mask = (tokens != PAD_TOKEN).unsqueeze(-1).float()
        x = self.embed(tokens) * mask
        for blk in self.blocks:
            x = blk(x, mask)
        x = self.final_ln(x) * mask
        return x, mask

    def pool(self, x, mask, segment=False):
        """Pooled, projected, normalized vectors; segment=True: windows (seg_proj if present)."""
        n = mask.sum(1).clamp(min=1.0)
        mean = x.sum(1) / n
        mx = x.masked_fill(mask == 0, float("-inf")).max(1).values
        v = torch.cat([mean, mx], dim=-1)
        proj = self.seg_proj if segment and self.seg_proj is not None else self.proj
        return F.normalize(proj(v), dim=-1)

    def forward(self, tokens):
        x, mask = self.hidden(tokens)
        return self.pool(x, mask)

    def n_params(self):
        return sum(p.numel() for p in self.parameters()) - self.d  # padding row not exported

    def flops_per_residue(self):
        d, k = self.d, self.kernel
        per_block = 2 * d * d * k + 2 * d * d
        return len(self.blocks) * per_block
