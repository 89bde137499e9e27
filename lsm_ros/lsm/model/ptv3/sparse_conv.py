"""Submanifold sparse 3-D convolution: spconv when present, a pure-torch path otherwise.

Conventions
-----------
* A :class:`SparseGrid` describes the sites of one resolution level: ``grid`` (N, 3) int64
  voxel coordinates and ``batch`` (N,) sample index. Several points may share a voxel (LSM
  feeds every pixel's point without de-duplication).
* The weight has spconv's layout ``(out, k, k, k, in)``: ``weight[:, a, b, c, :]`` multiplies
  the feature of the site at voxel offset ``(a - k//2, b - k//2, c - k//2)`` (x, y, z).
* Duplicate voxels follow spconv's CPU ("Native") rule exactly, which the pure-torch path
  reproduces: every site sees its *own* feature through the centre tap; for an offset ``d``
  in the upper half of the kernel (flat kernel index above the centre) a site gathers the
  feature of the *first* site (lowest index) in voxel ``v + d``; for an offset in the lower
  half only the first site of a voxel gathers, and it gathers the *sum* of all sites of
  voxel ``v + d``. Without duplicates this is the ordinary submanifold convolution.
  (spconv's CUDA default, MaskImplicitGemm, differs at duplicates and is racy: every site
  reads a hash-table "winner" of the neighbour voxel through the lower taps, and only the
  winner reads, through the upper taps, one arbitrary site of the neighbour voxel. The
  official checkpoint was trained that way; duplicates are where the two can disagree.)
* The bias (if any) is added outside the kernel (CPU spconv refuses biased kernels); the
  parameter keeps the name ``bias``.
"""
from __future__ import annotations

import itertools
from typing import Dict, Optional, Tuple

import torch
import torch.nn as nn

try:  # spconv is optional
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import spconv.pytorch as _spconv
except Exception:  # pragma: no cover - depends on the installation
    _spconv = None

BACKENDS = ("auto", "spconv", "torch")


def spconv_available() -> bool:
    return _spconv is not None


def resolve_backend(backend: str) -> str:
    """``"auto"`` -> ``"spconv"`` if importable, else ``"torch"``; validates the name."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown sparse-conv backend {backend!r}; choose from {BACKENDS}")
    if backend == "auto":
        return "spconv" if spconv_available() else "torch"
    if backend == "spconv" and not spconv_available():
        raise ValueError("sparse-conv backend 'spconv' requested but spconv is not importable")
    return backend


def kernel_offsets(kernel_size: int, device=None) -> torch.Tensor:
    """(k^3, 3) voxel offsets in the flat order of the weight's (k, k, k) axes."""
    r = kernel_size // 2
    rng = range(-r, kernel_size - r)
    return torch.tensor(list(itertools.product(rng, rng, rng)), dtype=torch.long, device=device)


class SparseGrid:
    """The active sites of one level plus cached neighbour tables (one per kernel size)."""

    def __init__(self, grid: torch.Tensor, batch: torch.Tensor, num_samples: int):
        if grid.dim() != 2 or grid.shape[1] != 3 or batch.shape != (grid.shape[0],):
            raise ValueError("SparseGrid needs grid (N, 3) and batch (N,)")
        self.grid = grid.long()
        self.batch = batch.long()
        self.num_samples = int(num_samples)
        self._voxels: Optional[Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]] = None
        self._neighbours: Dict = {}
        self._spconv_tensor = None

    def __len__(self) -> int:
        return self.grid.shape[0]

    def _key(self, grid: torch.Tensor, batch: torch.Tensor, pad: int) -> torch.Tensor:
        ext = int(self.grid.max()) + 1 + 2 * pad if len(self) else 1
        g = grid + pad
        return ((batch * ext + g[:, 0]) * ext + g[:, 1]) * ext + g[:, 2]

    def voxels(self):
        """(keys (U,) sorted, site->voxel (N,), first site per voxel (U,), is_first (N,))."""
        if self._voxels is None:
            key = self._key(self.grid, self.batch, pad=0)
            ukey, inv = torch.unique(key, sorted=True, return_inverse=True)
            site = torch.arange(len(self), device=key.device)
            first = torch.full((ukey.shape[0],), len(self), dtype=torch.long, device=key.device)
            first = first.scatter_reduce(0, inv, site, reduce="amin")
            self._voxels = (ukey, inv, first, first[inv] == site)
        return self._voxels

    def neighbours(self, kernel_size: int) -> torch.Tensor:
        """(U, k^3) index of the voxel at each kernel offset from each voxel, -1 if empty."""
        if kernel_size not in self._neighbours:
            ukey, inv, first, _ = self.voxels()
            r = kernel_size // 2
            vox_grid = torch.empty(ukey.shape[0], 3, dtype=torch.long, device=ukey.device)
            vox_batch = torch.empty(ukey.shape[0], dtype=torch.long, device=ukey.device)
            vox_grid[inv] = self.grid
            vox_batch[inv] = self.batch
            # re-key with a margin of r so shifted voxels stay in range (order is unchanged)
            padded_keys = self._key(vox_grid, vox_batch, pad=r)
            ext = int(self.grid.max()) + 1 + 2 * r
            offs = kernel_offsets(kernel_size, ukey.device)
            delta = (offs[:, 0] * ext + offs[:, 1]) * ext + offs[:, 2]  # (k^3,)
            query = padded_keys[:, None] + delta[None, :]
            pos = torch.searchsorted(padded_keys, query).clamp_max(padded_keys.shape[0] - 1)
            found = padded_keys[pos] == query
            self._neighbours[kernel_size] = torch.where(found, pos, torch.full_like(pos, -1))
        return self._neighbours[kernel_size]

    def pairs(self, kernel_size: int):
        """Voxel-level tap pairs for the spconv-CPU rule, grouped by tap (flat kernel order).

        Returns (out_rows (P,), in_rows (P,), lengths per non-centre tap). For upper taps
        ``out_rows`` is the voxel and ``in_rows`` the neighbour voxel; lower taps have both
        offset by U, indexing the stacked per-voxel tensors ``[first site | sum of sites]``
        and ``[upper-tap result | lower-tap result]``.
        """
        key = ("pairs", kernel_size)
        if key not in self._neighbours:
            _, _, first, _ = self.voxels()
            U = first.shape[0]
            nbr = self.neighbours(kernel_size).t()  # (k^3, U)
            n_off = kernel_size ** 3
            centre = n_off // 2
            tap = torch.arange(n_off, device=nbr.device)[:, None]
            taps, rows = ((nbr >= 0) & (tap != centre)).nonzero(as_tuple=True)
            shift = torch.where(taps < centre, U, 0)
            counts = torch.bincount(taps, minlength=n_off).tolist()
            lengths = counts[:centre] + counts[centre + 1:]
            self._neighbours[key] = (rows + shift, nbr[taps, rows] + shift, lengths)
        return self._neighbours[key]


def submanifold_conv_torch(feat: torch.Tensor, weight: torch.Tensor, sites: SparseGrid) -> torch.Tensor:
    """Pure-torch submanifold convolution with spconv-CPU duplicate semantics (no bias).

    feat (N, Cin), weight (Cout, k, k, k, Cin) -> (N, Cout). Under the duplicate rule every
    non-centre contribution depends only on the site's voxel, so it is computed once per
    voxel: upper taps read the first site of the neighbour voxel, lower taps the sum of its
    sites and reach only the first site of the voxel. The centre tap is one dense GEMM.
    """
    cout, k = weight.shape[0], weight.shape[1]
    n_off = k ** 3
    centre = n_off // 2
    w = weight.reshape(cout, n_off, weight.shape[-1])
    out = feat @ w[:, centre, :].t()
    _, inv, first, is_first = sites.voxels()
    U = first.shape[0]
    out_rows, in_rows, lengths = sites.pairs(k)
    if out_rows.numel() == 0:
        return out
    first_feat = feat[first]
    sum_feat = feat.new_zeros(U, feat.shape[1]).index_add(0, inv, feat) if U != feat.shape[0] else first_feat
    gathered = torch.cat([first_feat, sum_feat])[in_rows]  # (P, Cin)
    parts = [rows @ w[:, j, :].t()
             for j, rows in zip([t for t in range(n_off) if t != centre], gathered.split(lengths))]
    per_voxel = feat.new_zeros(2 * U, cout).index_add(0, out_rows, torch.cat(parts))
    return out + per_voxel[inv] + per_voxel[U + inv] * is_first[:, None].to(feat.dtype)


class SubMConv3d(nn.Module):
    """Submanifold 3-D convolution over a :class:`SparseGrid`; state-dict compatible with spconv.

    Parameters: ``weight`` (out, k, k, k, in) and optional ``bias`` (out,).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3,
                 bias: bool = True, backend: str = "auto"):
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd and positive, got {kernel_size}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.backend = resolve_backend(backend)
        self.weight = nn.Parameter(torch.empty(out_channels, kernel_size, kernel_size, kernel_size, in_channels))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        fan_in = in_channels * kernel_size ** 3
        bound = 1.0 / fan_in ** 0.5
        nn.init.uniform_(self.weight, -bound, bound)
        self._spconv_module = None  # created lazily, not registered (the weight is ours)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"bias={self.bias is not None}, backend={self.backend}")

    def forward(self, feat: torch.Tensor, sites: SparseGrid) -> torch.Tensor:
        if feat.dim() != 2 or feat.shape[0] != len(sites) or feat.shape[1] != self.in_channels:
            raise ValueError(f"feat must be ({len(sites)}, {self.in_channels}), got {tuple(feat.shape)}")
        if not feat.is_cuda and torch.is_autocast_enabled("cpu"):
            # under CPU bf16 autocast the convolution stays fp32: spconv's CPU kernels are
            # fp32 only, and the torch path keeps the same numbers as spconv
            with torch.autocast("cpu", enabled=False):
                return self._forward(feat.float(), sites)
        return self._forward(feat, sites)

    def _forward(self, feat: torch.Tensor, sites: SparseGrid) -> torch.Tensor:
        if self.backend == "spconv":
            out = self._forward_spconv(feat, sites)
        else:
            out = submanifold_conv_torch(feat, self.weight, sites)
        return out + self.bias if self.bias is not None else out

    def _forward_spconv(self, feat: torch.Tensor, sites: SparseGrid) -> torch.Tensor:
        # CPU spconv only runs the Native algorithm; on CUDA spconv picks its default
        if self._spconv_module is None or self._spconv_module[0] != feat.device.type:
            kwargs = {} if feat.is_cuda else {"algo": _spconv.ConvAlgo.Native}
            conv = _spconv.SubMConv3d(self.in_channels, self.out_channels, self.kernel_size,
                                      bias=False, indice_key=f"subm{self.kernel_size}", **kwargs)
            del conv.weight
            object.__setattr__(self, "_spconv_module", (feat.device.type, conv))
        conv = self._spconv_module[1]
        conv.weight = self.weight  # share our parameter (gradients land on it)
        base = sites._spconv_tensor
        if base is None:
            indices = torch.cat([sites.batch[:, None], sites.grid], dim=1).int().contiguous()
            shape = (sites.grid.max(0).values + 2 * self.kernel_size + 1).tolist() if len(sites) else [1, 1, 1]
            base = _spconv.SparseConvTensor(feat, indices, shape, max(sites.num_samples, 1))
        out = conv(base.replace_feature(feat))
        sites._spconv_tensor = out  # carries the cached index pairs for the next conv
        return out.features
