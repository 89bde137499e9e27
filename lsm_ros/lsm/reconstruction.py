"""A reconstructed scene: what one forward pass of LSM gives for an image pair.

Frames and units
----------------
* Everything 3-D is in the **reference camera frame** = view 1's camera (OpenCV/REP-103
  optical frame: x right, y down, z forward), in the model's scene units (metric up to an
  unknown global scale for the learned models).
* ``c2w[v]`` is view v's camera-to-reference pose; ``c2w[0]`` is the identity.
* ``intrinsics[v]`` are pixel intrinsics at the model resolution S x S; the per-view
  :class:`~lsm.preprocess.ImageTransform` maps them (and every 2-D output) back to the
  original camera images.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Dict, Optional, Sequence

import numpy as np
import torch

from .gaussians import Gaussians
from .preprocess import ImageTransform
from .rendering import RenderOutput, render
from .semantics.labels import colorize


@dataclass
class QueryResult:
    """Answer to a text query at one view."""

    label: str
    view: int
    found: bool
    score: float  # mean relevance of the selected pixels (0..1), 0 when not found
    mask: np.ndarray  # bool (S,S) at model resolution
    mask_original: np.ndarray  # uint8 (H,W) at the camera resolution, 255 = object
    points: np.ndarray  # (M,3) float32, reference frame
    centroid: np.ndarray  # (3,)
    extent: np.ndarray  # (3,) axis-aligned size, reference frame
    message: str = ""


@dataclass
class Reconstruction:
    images: torch.Tensor  # (2,S,S,3) RGB in [0,1]
    pointmaps: torch.Tensor  # (2,S,S,3) reference frame
    confidence: torch.Tensor  # (2,S,S) >= 1
    gaussians: Gaussians  # N = 2*S*S, ordered (view, row, col)
    intrinsics: torch.Tensor  # (2,3,3) model resolution
    c2w: torch.Tensor  # (2,4,4)
    transforms: Sequence[ImageTransform]
    model: object = field(repr=False)  # the LSM network (for feature expansion)
    text_encoder: object = field(repr=False, default=None)
    focal: float = 0.0
    camera_status: str = ""  # how the cameras were obtained (PnP or a fallback), for diagnostics
    # renders of the input views with features, shared by the node's outputs and its queries
    _view_renders: Dict[int, RenderOutput] = field(default_factory=dict, repr=False,
                                                   compare=False)
    _cache_lock: threading.Lock = field(default_factory=threading.Lock, repr=False,
                                        compare=False)

    @property
    def size(self) -> int:
        return int(self.images.shape[1])

    # ------------------------------------------------------------------ rendering
    def render(self, K: torch.Tensor, c2w: torch.Tensor, width: int, height: int,
               features: bool = True) -> RenderOutput:
        """Render at a camera with pixel intrinsics ``K`` (3,3) and pose ``c2w`` (4,4) (reference frame)."""
        g = self.gaussians
        K = torch.as_tensor(K, dtype=torch.float32).to(g.means.device)
        c2w = torch.as_tensor(c2w, dtype=torch.float32).to(g.means.device)
        viewmat = torch.linalg.inv(c2w)
        return render(g.means, g.rotations, g.scales, g.opacities, g.colors(), K[None], viewmat[None],
                      width, height, features=g.features if features else None)

    def render_view(self, view: int, features: bool = True) -> RenderOutput:
        """Render input ``view`` at the model resolution.

        Renders with features are kept (a reconstruction is immutable), so the label map,
        the depth/colour outputs and every later query at that view share one render; a
        render without features reuses a kept one, or renders just colour and depth.
        Thread-safe.
        """
        self._check_view(view)
        with self._cache_lock:
            kept = self._view_renders.get(view)
        if kept is not None:
            return kept
        out = self.render(self.intrinsics[view], self.c2w[view], self.size, self.size, features)
        if not features:
            return out
        with self._cache_lock:
            return self._view_renders.setdefault(view, out)

    # ------------------------------------------------------------------ semantics
    def text_embeddings(self, labels: Sequence[str]) -> torch.Tensor:
        if self.text_encoder is None:
            raise RuntimeError("this reconstruction has no text encoder")
        f = self.gaussians.features
        return self.text_encoder.encode(list(labels)).to(f.device, f.dtype)

    def feature_map(self, view: int) -> torch.Tensor:
        """Rendered semantic features in text space at input ``view``: (D, S, S), L2-normalised."""
        rendered = self.render_view(view).features[0].permute(2, 0, 1)[None]  # (1,F,S,S)
        with torch.no_grad():
            expanded = self.model.expand_features(rendered)  # (1,D,S/2,S/2)
            expanded = torch.nn.functional.interpolate(expanded, scale_factor=2, mode="bilinear")
        return torch.nn.functional.normalize(expanded[0], dim=0)

    def label_map(self, labels: Sequence[str], view: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-pixel class index into ``labels`` and its cosine score at ``view``: (S,S), (S,S)."""
        sim = torch.einsum("dhw,ld->lhw", self.feature_map(view), self.text_embeddings(labels))
        score, ids = sim.max(dim=0)
        return ids, score

    def label_image(self, labels: Sequence[str], view: int = 0) -> np.ndarray:
        """Colour-coded label map (S,S,3) uint8; label i always gets colour i of a
        ``len(labels)`` palette (stable across views and frames)."""
        ids, _ = self.label_map(labels, view)
        return colorize(ids.cpu(), num_labels=len(labels)).numpy()

    def point_similarity(self, labels: Sequence[str]) -> torch.Tensor:
        """Cosine similarity of every Gaussian to each label: (N, L)."""
        with torch.no_grad():
            return self.model.point_text_similarity(self.gaussians.features.detach(),
                                                    self.text_embeddings(labels))

    def point_labels(self, labels: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-Gaussian class index into ``labels`` and cosine score: (N,), (N,)."""
        score, ids = self.point_similarity(labels).max(dim=-1)
        return ids, score

    def query(self, label: str, vocabulary: Sequence[str], view: int = 0, threshold: float = 0.5,
              min_confidence: float = 1.0, temperature: float = 10.0,
              synonym_similarity: float = 0.8) -> QueryResult:
        """Segment ``label`` at ``view`` and collect its 3-D points.

        Relevance (LERF-style): with s(f) the best cosine of the feature f with the query or
        one of its synonyms in the ``vocabulary`` (text similarity >= ``synonym_similarity``:
        "couch" -> "sofa", "armchair" -> "chair"), for every negative label c the pairwise
        softmax exp(t*s(f)) / (exp(t*s(f)) + exp(t*cos(f,c))), minimised over the negatives.
        Negatives are the rest of the ``vocabulary`` (see :meth:`_synonyms_and_negatives`), so
        "couch" does not compete with "sofa" but is found where the model says "sofa".
        Pixels / Gaussians with relevance >= ``threshold`` are the object.
        """
        self._check_view(view)
        q = self.text_embeddings([label])[0]
        synonyms, negatives = self._synonyms_and_negatives(label, q, vocabulary, synonym_similarity)
        P, K = 1 + len(synonyms), len(negatives)
        # (P + K, D): the query, its synonyms, then the negatives
        texts = torch.cat([q[None], self.text_embeddings(synonyms + negatives)]) \
            if synonyms or negatives else q[None]

        def relevance(sims):  # cosine similarities (..., P + K) -> relevance (...)
            pos = sims[..., :P].max(dim=-1, keepdim=True).values
            if K == 0:
                return (pos[..., 0] + 1) / 2
            return torch.sigmoid(temperature * (pos - sims[..., P:])).min(dim=-1).values

        pix = relevance(self.feature_map(view).permute(1, 2, 0) @ texts.t())  # (S,S)
        mask = (pix >= threshold).cpu().numpy()
        S = self.size
        with torch.no_grad():  # per Gaussian, scored in the feature space
            pts_rel = relevance(self.model.point_text_similarity(self.gaussians.features.detach(),
                                                                 texts))
        conf = self.confidence.reshape(-1).to(pts_rel.device)
        sel = (pts_rel >= threshold) & (conf >= min_confidence)
        points = self.gaussians.means.detach()[sel].cpu().numpy().astype(np.float32)
        mask_original = self.transforms[view].to_original(mask.astype(np.uint8) * 255, nearest=True)
        found = bool(mask.any()) and len(points) > 0
        if found:
            centroid = np.median(points, axis=0)
            lo, hi = np.percentile(points, [2, 98], axis=0)
            extent = hi - lo
            score = float(pix[torch.from_numpy(mask).to(pix.device)].mean())
            message = f"{int(mask.sum())} of {S * S} pixels and {len(points)} points match {label!r}"
        else:
            centroid = extent = np.zeros(3, np.float32)
            score = float(pix.max())
            message = f"no match for {label!r} above threshold {threshold:.2f} (best relevance {score:.2f})"
        return QueryResult(label, view, found, score if found else 0.0, mask, mask_original,
                           points, np.asarray(centroid, np.float32), np.asarray(extent, np.float32),
                           message)

    def _synonyms_and_negatives(self, label, q, vocabulary, synonym_similarity, margin=0.05):
        """Split the ``vocabulary`` (minus the query itself) by text similarity with the query.

        Synonyms: words with similarity >= ``synonym_similarity``; they stand for the query.
        Negatives: the words that compete with it, i.e. all but the synonyms and, for a query
        outside the vocabulary, the words within ``margin`` of its nearest vocabulary word
        (the closest class stands in for it). Returns ``(synonyms, negatives)`` word lists.
        """
        key = label.strip().lower()
        vocab = [v for v in dict.fromkeys(vocabulary) if v.strip().lower() != key]
        if not vocab:
            return [], []
        sims = (self.text_embeddings(vocab) @ q).tolist()
        in_vocab = len(vocab) < len(set(vocabulary))
        cut = synonym_similarity if in_vocab else min(synonym_similarity, max(sims) - margin)
        synonyms = [v for v, s in zip(vocab, sims) if s >= synonym_similarity]
        negatives = [v for v, s in zip(vocab, sims) if s < cut]
        return synonyms, negatives

    # ------------------------------------------------------------------ export
    def save_ply(self, path) -> "object":
        """3DGS-compatible ``.ply`` with ``semantic_*`` feature channels."""
        from .io.ply import save_gaussians_ply

        return save_gaussians_ply(self.gaussians.detach().to("cpu"), path)

    def _check_view(self, view: int) -> None:
        if view not in (0, 1):
            raise ValueError(f"unknown view {view}: a reconstruction has views 0 and 1")
