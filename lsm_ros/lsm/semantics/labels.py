"""Open-vocabulary label maps: cosine similarity between feature maps and text embeddings.

Conventions
-----------
* ``text_emb`` is always ``(L, D)``: one row per label, any scale (rows are L2-normalised here).
* Features are either channels-last ``(..., D)`` (e.g. per-Gaussian features ``(N, D)``) or
  channels-first image maps ``(B, D, H, W)`` as produced by the semantic extractors. The
  output keeps the layout: ``(..., L)`` for channels-last, ``(B, L, H, W)`` for
  channels-first (like the official ``decode_feature``).
* Label ids index ``text_emb`` rows; ``-1`` means "no label" (masked / invalid).
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F

from ..specs import DEFAULT_LABELS  # noqa: F401  (re-exported)

# matplotlib "tab10" colours (RGB, uint8).
_TAB10 = (
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
)
# matplotlib "tab20" colours, used when more than 9 labels are requested.
_TAB20 = (
    (31, 119, 180), (174, 199, 232), (255, 127, 14), (255, 187, 120), (44, 160, 44),
    (152, 223, 138), (214, 39, 40), (255, 152, 150), (148, 103, 189), (197, 176, 213),
    (140, 86, 75), (196, 156, 148), (227, 119, 194), (247, 182, 210), (127, 127, 127),
    (199, 199, 199), (188, 189, 34), (219, 219, 141), (23, 190, 207), (158, 218, 229),
)


def _check_text_emb(text_emb: torch.Tensor) -> torch.Tensor:
    if not isinstance(text_emb, torch.Tensor) or text_emb.ndim != 2 or text_emb.shape[0] == 0:
        raise ValueError(f"text_emb must be a (L, D) tensor with L >= 1, got "
                         f"{tuple(text_emb.shape) if isinstance(text_emb, torch.Tensor) else type(text_emb)}")
    if not torch.isfinite(text_emb).all():
        raise ValueError("text_emb contains NaN or Inf")
    return text_emb


def _is_channels_first(features: torch.Tensor, dim: int, channels_first: Optional[bool]) -> bool:
    last_ok = features.shape[-1] == dim
    first_ok = features.ndim == 4 and features.shape[1] == dim
    if channels_first is None:
        if last_ok and first_ok:
            raise ValueError(f"features {tuple(features.shape)} are ambiguous for D={dim}: "
                             "pass channels_first=True or False")
        if not (last_ok or first_ok):
            raise ValueError(f"features {tuple(features.shape)} have no axis of size D={dim} "
                             "(expected (..., D) or (B, D, H, W))")
        return first_ok
    if channels_first and not first_ok:
        raise ValueError(f"channels_first=True needs (B, {dim}, H, W) features, got {tuple(features.shape)}")
    if not channels_first and not last_ok:
        raise ValueError(f"channels_first=False needs (..., {dim}) features, got {tuple(features.shape)}")
    return channels_first


def similarity(features: torch.Tensor, text_emb: torch.Tensor,
               channels_first: Optional[bool] = None) -> torch.Tensor:
    """Cosine similarity of every feature vector with every label embedding.

    Args:
        features: ``(..., D)`` or ``(B, D, H, W)`` (auto-detected; pass ``channels_first``
            when both layouts fit).
        text_emb: ``(L, D)`` label embeddings.
    Returns:
        ``(..., L)`` for channels-last input, ``(B, L, H, W)`` for channels-first input; values
        in [-1, 1] (zero feature vectors give 0).
    """
    text_emb = _check_text_emb(text_emb)
    if not isinstance(features, torch.Tensor) or features.ndim < 1:
        raise ValueError("features must be a tensor with at least one dimension")
    first = _is_channels_first(features, text_emb.shape[1], channels_first)
    if not torch.isfinite(features).all():
        raise ValueError("features contain NaN or Inf")
    t = F.normalize(text_emb.to(device=features.device, dtype=torch.float32), dim=-1)
    f = features.float()
    if first:
        f = F.normalize(f, dim=1)
        return torch.einsum("bdhw,ld->blhw", f, t)
    f = F.normalize(f, dim=-1)
    return f @ t.T


def label_map(features: torch.Tensor, text_emb: torch.Tensor,
              channels_first: Optional[bool] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel / per-point best label (argmax of cosine similarity, no softmax, as official).

    Returns:
        ``(ids, score)``: ``ids`` int64 and ``score`` float32 (the winning cosine), both of
        shape ``(...)`` for ``(..., D)`` input or ``(B, H, W)`` for ``(B, D, H, W)`` input.
    """
    text_emb = _check_text_emb(text_emb)
    first = _is_channels_first(features, text_emb.shape[1], channels_first)
    sim = similarity(features, text_emb, channels_first=first)
    score, ids = sim.max(dim=1 if first else -1)
    return ids, score


def query_mask(features: torch.Tensor, text_emb_one: torch.Tensor, threshold: float,
               channels_first: Optional[bool] = None) -> torch.Tensor:
    """Boolean mask of features whose cosine with one query embedding is >= ``threshold``.

    Args:
        text_emb_one: ``(D,)`` or ``(1, D)``.
        threshold: cosine threshold in [-1, 1].
    Returns:
        bool ``(...)`` for ``(..., D)`` input or ``(B, H, W)`` for ``(B, D, H, W)`` input.
    """
    if not isinstance(text_emb_one, torch.Tensor):
        raise ValueError("text_emb_one must be a tensor")
    if text_emb_one.ndim == 1:
        text_emb_one = text_emb_one[None]
    if text_emb_one.ndim != 2 or text_emb_one.shape[0] != 1:
        raise ValueError(f"text_emb_one must be (D,) or (1, D), got {tuple(text_emb_one.shape)}")
    threshold = float(threshold)
    if not -1.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be a cosine in [-1, 1], got {threshold}")
    first = _is_channels_first(features, text_emb_one.shape[1], channels_first)
    sim = similarity(features, text_emb_one, channels_first=first)
    sim = sim[:, 0] if first else sim[..., 0]
    return sim >= threshold


def palette(num_labels: int) -> torch.Tensor:
    """Label colours as uint8 ``(num_labels, 3)`` RGB.

    For up to 9 labels this reproduces the official LSM demo colours: matplotlib ``tab10``
    resampled to ``num_labels + 1`` entries, entry 0 being reserved for "unlabelled" (the
    demo colours ``argmax + 1``). More labels cycle through ``tab20``.
    """
    if int(num_labels) < 1:
        raise ValueError(f"num_labels must be >= 1, got {num_labels}")
    n = int(num_labels)
    if n <= 9:
        # ListedColormap.resampled(n + 1): entry i samples tab10 at i / n.
        idx = [min(int(i / n * 10), 9) for i in range(1, n + 1)]
        cols = [_TAB10[i] for i in idx]
    else:
        cols = [_TAB20[i % 20] for i in range(n)]
    return torch.tensor(cols, dtype=torch.uint8)


def colorize(ids: torch.Tensor, colors: Optional[torch.Tensor] = None,
             num_labels: Optional[int] = None) -> torch.Tensor:
    """Map integer label ids ``(...)`` to uint8 RGB ``(..., 3)``; ids < 0 become black.

    ``colors`` is a uint8 ``(L, 3)`` palette (default ``palette(num_labels or max id + 1)``).
    """
    if not isinstance(ids, torch.Tensor) or ids.is_floating_point() or ids.is_complex():
        raise ValueError("ids must be an integer tensor")
    ids = ids.long()
    if colors is None:
        n = num_labels if num_labels is not None else max(int(ids.max()) + 1 if ids.numel() else 1, 1)
        colors = palette(n)
    if colors.ndim != 2 or colors.shape[1] != 3:
        raise ValueError(f"colors must be (L, 3), got {tuple(colors.shape)}")
    if ids.numel() and int(ids.max()) >= colors.shape[0]:
        raise ValueError(f"label id {int(ids.max())} has no colour (palette has {colors.shape[0]})")
    colors = colors.to(device=ids.device, dtype=torch.uint8)
    table = torch.cat([torch.zeros(1, 3, dtype=torch.uint8, device=ids.device), colors], dim=0)
    return table[ids.clamp(min=-1) + 1]
