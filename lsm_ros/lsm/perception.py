"""The entry point of the pure-torch core: :class:`Perception`.

    from lsm import Perception, OutputSpec
    perception = Perception.load()                    # the embedded tiny model, CPU or CUDA
    rec = perception.reconstruct([(rgb0, rgb1)])[0]   # RGB uint8 (H, W, 3) camera images
    cloud = perception.point_cloud(rec, OutputSpec(labels=("floor", "table", "chair")))
    images = perception.view_images(rec, ("floor", "table", "chair"))
    hit = perception.query(rec, "couch", vocabulary=("sofa", "chair", "floor", "wall"))

A :class:`Perception` holds the network and its text encoder; everything it returns is plain
data (:mod:`lsm.results`) that references no model. Frames and units: see
:mod:`lsm.results` (reference camera's optical frame, model units up to an unknown scale).
Thread safety: :meth:`reconstruct` and the per-reconstruction methods may run in different
threads at once (the node reconstructs in a worker thread while its query service answers);
renders of input views are computed once per reconstruction and shared.
"""
from __future__ import annotations

import contextlib
import os
import threading
import time
import weakref
from typing import Collection, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from .geometry.floor import FLOOR_LABEL
from .model.cpu_linear import use_onednn_linear
from .rendering import RenderOutput, render
from .results import LABEL_NONE, PointCloud, QueryResult, Reconstruction, ViewImages, box_of
from .semantics.labels import colorize
from .semantics.query import SYNONYM_SIMILARITY, TEMPERATURE, relevance, split_vocabulary
from .specs import IMAGE_OUTPUTS, PRECISIONS, MetricSpec, OutputSpec, WeightSources

__all__ = ["IMAGE_OUTPUTS", "OutputSpec", "Perception", "WeightSources", "resolve_device"]

def resolve_device(device: str) -> str:
    """'auto' -> 'cuda' when available else 'cpu'; a CUDA request without CUDA raises."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device '{device}' requested but torch sees no CUDA device "
                           "(use device:=auto or cpu)")
    return device


def effective_precision(precision: str, device: str) -> Tuple[str, str]:
    """The precision that runs for ``precision`` on ``device``, and why if it differs.

    CUDA: fp16 and bf16 run under autocast.  CPU: bf16 runs under CPU autocast when the
    processor has native bf16 (sparse convolutions, pointmap heads and the Gaussian
    parameters stay fp32; measured by ``lsm-benchmark``: pointmaps within 0.1 % of fp32,
    labels of 99 % of the points unchanged; no faster than fp32 on the embedded model, 1.2x
    on the paper configuration, whose fp32 products already run on oneDNN), and :meth:`Perception.load`
    stores the transformer weights in bf16 (:func:`store_autocast_weights`: same outputs,
    half their memory); fp16 on CPU is slower than fp32 and falls back to it.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "fp32" or device.startswith("cuda"):
        return precision, ""
    if precision == "fp16":
        return "fp32", "fp16 runs on CUDA only (slower than fp32 on a CPU): using fp32"
    if not torch.backends.mkldnn.is_available() or not _cpu_has_bf16():
        return "fp32", "this CPU has no native bf16 (avx512_bf16 or amx): using fp32"
    return "bf16", ""


# Layers that only ever run under the precision's autocast: the ViT encoder, the cross-view
# decoders, LSeg (its ViT, read-out and decoder convolutions) and the point transformer's
# linear layers (the pointmap heads, the sparse convolutions and the Gaussian head run in
# fp32). Kept: LSeg's last convolution (its dtype sets the input images'), and the layers
# inside nn.MultiheadAttention (the fusion blocks add its output bias outside autocast).
_AUTOCAST_BLOCKS = ("enc_blocks", "dec_blocks", "dec_blocks2")
_AUTOCAST_PREFIXES = ("lseg_feature_extractor.pretrained.", "lseg_feature_extractor.scratch.",
                      "point_transformer.")
_AUTOCAST_KEEP = ("lseg_feature_extractor.scratch.head1",)


def store_autocast_weights(model, dtype=torch.bfloat16) -> int:
    """Store the weights of the linear and convolution layers that autocast runs in
    ``dtype`` anyway in ``dtype``; returns how many parameters were converted. Autocast
    casts them to the same values on every call, so the outputs are bit-identical (checked
    for both configurations), while those weights take half the memory and no cast copies
    are made. The model must then only run under that autocast."""
    import torch.nn as nn

    kinds = (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)
    inside_mha = {f"{name}.{child}" for name, m in model.named_modules()
                  if isinstance(m, nn.MultiheadAttention) for child, _ in m.named_children()}
    converted = 0
    for name, module in model.named_modules():
        if not isinstance(module, kinds) or name in inside_mha or name.startswith(_AUTOCAST_KEEP):
            continue
        if set(name.split(".")) & set(_AUTOCAST_BLOCKS) or name.startswith(_AUTOCAST_PREFIXES):
            module.to(dtype)
            converted += sum(p.numel() for p in module.parameters(recurse=False))
    return converted


def release_unused_weights(model) -> int:
    """Free the weights the runtime never runs; returns how many parameters were freed.

    The paper configuration's LSeg holds a whole CLIP ViT-B/32, of which only the text tower
    is used (label embeddings; LSeg's image features come from its own ViT-L): its image
    tower (88 M parameters, 335 MiB in fp32) is replaced by an identity. The model's state
    dict then lacks ``clip_pretrained.visual.*``: do not save weights from it."""
    import torch.nn as nn

    clip = getattr(getattr(model, "lseg_feature_extractor", None), "clip_pretrained", None)
    visual = getattr(clip, "visual", None)
    if visual is None or isinstance(visual, nn.Identity):
        return 0
    freed = sum(p.numel() for p in visual.parameters())
    clip.visual = nn.Identity()
    return freed


def _cpu_has_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


class Perception:
    """The LSM network, its text encoder, and everything the runtime asks of them."""

    def __init__(self, model, precision: str = "fp32", load_seconds: float = 0.0) -> None:
        self.model = model.eval()
        self.device = str(next(model.parameters()).device)
        self.precision, self.precision_note = effective_precision(precision, self.device)
        self.load_seconds = float(load_seconds)
        self._text_encoder = None
        self._renders: "weakref.WeakKeyDictionary[Reconstruction, Dict[int, RenderOutput]]" = \
            weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        self.bf16_stored = 0  # parameters stored in bf16 (store_autocast_weights)
        self.onednn_linear = 0  # linear layers switched to lsm.model.cpu_linear.OneDNNLinear

    @classmethod
    def load(cls, weights: WeightSources = WeightSources(), device: str = "auto",
             precision: str = "fp32", cpu_threads: int = 0) -> "Perception":
        """Load the model from ``weights`` onto ``device`` ('auto', 'cpu', 'cuda', 'cuda:N').

        ``cpu_threads``: torch's process-wide CPU thread count; 0 = all cores. On an x86
        CPU the model's large linear layers whose input shape repeats run through oneDNN at
        inference (:mod:`lsm.model.cpu_linear`: same fp32 maths, up to twice MKL's speed on
        AMD; the paper configuration's ViT parts).
        """
        start = time.monotonic()
        dev = resolve_device(device)
        torch.set_num_threads(cpu_threads or max(1, os.cpu_count() or 1))
        model = weights.load_model(dev)
        release_unused_weights(model)
        onednn = use_onednn_linear(model) if dev == "cpu" else 0
        perception = cls(model, precision)
        perception.onednn_linear = onednn
        if perception.precision == "bf16" and dev == "cpu":  # the model is ours alone
            perception.bf16_stored = store_autocast_weights(model)
        _ = perception.text_encoder  # built now, not in the first query
        if dev == "cpu":
            from .rendering import tile_rasterizer

            tile_rasterizer.warm_up()  # compiled now, not in the first render
        perception.load_seconds = time.monotonic() - start
        return perception

    @property
    def text_encoder(self):
        """The text encoder whose space the semantic features live in (built once)."""
        if self._text_encoder is None:
            self._text_encoder = self.model.text_encoder()
        return self._text_encoder

    # ------------------------------------------------------------------ reconstruction
    def _autocast(self):
        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.float16 if self.precision == "fp16" else torch.bfloat16
        return torch.autocast(device_type=torch.device(self.device).type, dtype=dtype)

    def reconstruct(self, pairs: Sequence[Tuple[object, object]],
                    timings: Optional[dict] = None, sensors=None,
                    metric: MetricSpec = MetricSpec(), tracker=None,
                    pose_check: bool = True, two_view_pose: bool = True) -> List[Reconstruction]:
        """One forward pass for every (image0, image1) pair; image 0 is the reference view.

        ``sensors``: per pair, a :class:`lsm.metric.PairSensors` (known intrinsics, aligned
        depth, stereo baseline, odometry motion) or None; with them the result can be metric
        as ``metric`` says, smoothed over calls by ``tracker`` (a
        :class:`lsm.metric.ScaleTracker`). ``timings``, when given, gets seconds per stage
        (preprocess, network, cameras). ``pose_check``: give each result a
        ``pose_confidence`` from the images' own two-view geometry (about 50 ms per 640x480 pair);
        ``two_view_pose``: that geometry's pose replaces the network's where enough matches
        support it (see :func:`lsm.inference.reconstruct_pairs`).
        """
        from .inference import reconstruct_pairs

        with self._autocast():
            return reconstruct_pairs(self.model, list(pairs), timings=timings, sensors=sensors,
                                     metric=metric, tracker=tracker, pose_check=pose_check,
                                     two_view_pose=two_view_pose)

    # ------------------------------------------------------------------ rendering
    def render(self, rec: Reconstruction, K, c2w, width: int, height: int,
               features: bool = True) -> RenderOutput:
        """Render ``rec`` at a camera with pixel intrinsics ``K`` (3,3) and pose ``c2w`` (4,4)
        in the reference frame."""
        g = rec.gaussians
        K = torch.as_tensor(K, dtype=torch.float32).to(g.means.device)
        c2w = torch.as_tensor(c2w, dtype=torch.float32).to(g.means.device)
        viewmat = torch.linalg.inv(c2w)
        return render(g.means, g.rotations, g.scales, g.opacities, g.colors(), K[None],
                      viewmat[None], width, height, features=g.features if features else None)

    def render_view(self, rec: Reconstruction, view: int, features: bool = True) -> RenderOutput:
        """Render input ``view`` at the model resolution.

        Renders with features are kept per reconstruction, so its label image, depth/colour
        outputs and every query at that view share one render; a render without features
        reuses a kept one, or renders just colour and depth.
        """
        rec.check_view(view)
        with self._lock:
            kept = self._renders.get(rec, {}).get(view)
        if kept is not None:
            return kept
        out = self.render(rec, rec.intrinsics[view], rec.c2w[view], rec.size, rec.size, features)
        if not features:
            return out
        with self._lock:
            return self._renders.setdefault(rec, {}).setdefault(view, out)

    # ------------------------------------------------------------------ semantics
    def text_embeddings(self, labels: Sequence[str]) -> torch.Tensor:
        """Unit-norm text embeddings (L, D) on the model's device."""
        return self.text_encoder.encode(list(labels)).to(self.device, torch.float32)

    def feature_map(self, rec: Reconstruction, view: int) -> torch.Tensor:
        """Rendered semantic features in text space at input ``view``: (D, S, S), unit norm."""
        rendered = self.render_view(rec, view).features[0].permute(2, 0, 1)[None]  # (1,F,S,S)
        with torch.no_grad():
            expanded = self.model.expand_features(rendered)  # (1,D,S/2,S/2)
            expanded = torch.nn.functional.interpolate(expanded, scale_factor=2, mode="bilinear")
        return torch.nn.functional.normalize(expanded[0], dim=0)

    def view_similarity(self, rec: Reconstruction, view: int, texts: torch.Tensor) -> torch.Tensor:
        """Cosine similarity of :meth:`feature_map`'s pixels to unit text embeddings (L, D):
        (S, S, L), computed in the F-dim rendered feature space. The expansion to text space
        (a 1x1 conv) commutes with the bilinear resampling around it, so the similarity is
        that of the resampled F-dim features (LSM.point_text_similarity's Gram trick): no
        (D, S, S) tensor is built or normalised."""
        rendered = self.render_view(rec, view).features[0].permute(2, 0, 1)[None]  # (1,F,S,S)
        with torch.no_grad():
            half = self.model.feature_expansion[0](rendered)  # the expansion's 2x down-sampling
            up = torch.nn.functional.interpolate(half, scale_factor=2, mode="bilinear")[0]
            F_, H, W = up.shape
            sim = self.model.point_text_similarity(up.permute(1, 2, 0).reshape(-1, F_), texts)
        return sim.reshape(H, W, -1)

    def label_map(self, rec: Reconstruction, labels: Sequence[str], view: int = 0
                  ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Per-pixel class index into ``labels`` and its cosine score at ``view``: (S,S), (S,S)."""
        sim = self.view_similarity(rec, view, self.text_embeddings(labels))
        if rec.floor is not None:
            sim = _floor_decided(sim, rec.floor[view], labels)
        score, ids = sim.max(dim=-1)
        return ids, score

    def point_similarity(self, rec: Reconstruction, labels: Sequence[str],
                         index: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Cosine similarity of every Gaussian (or those at ``index``) to each label: (N, L)."""
        features = rec.gaussians.features.detach()
        if index is not None:
            features = features[index.to(features.device)]
        with torch.no_grad():
            return self.model.point_text_similarity(features, self.text_embeddings(labels))

    def point_labels(self, rec: Reconstruction, labels: Sequence[str],
                     index: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """Per-Gaussian class index into ``labels`` and cosine score: (N,), (N,). Where
        ``rec.floor`` decided the floor by geometry, its pixels are "floor" (score 1) and no
        other Gaussian is."""
        sim = self.point_similarity(rec, labels, index)
        if rec.floor is not None:
            floor = rec.floor.reshape(-1)
            sim = _floor_decided(sim, floor if index is None else floor[index.cpu()], labels)
        score, ids = sim.max(dim=-1)
        return ids, score

    # ------------------------------------------------------------------ outputs
    def point_cloud(self, rec: Reconstruction, spec: OutputSpec = OutputSpec(),
                    rng_seed: int = 0) -> PointCloud:
        """Pointmap pixels of both views with confidence >= ``spec.confidence_threshold``.

        Every ``spec.point_stride``-th pixel in both axes, uniformly subsampled to
        ``spec.max_points``; each point's label is its Gaussian's best label (Gaussian i is
        pixel i of the pointmaps).
        """
        S, stride = rec.size, spec.point_stride
        pix = np.arange(2 * S * S).reshape(2, S, S)[:, ::stride, ::stride].reshape(-1)
        pts = rec.pointmaps.reshape(-1, 3).numpy()[pix]
        conf = rec.confidence.reshape(-1).numpy()[pix]
        keep = (conf >= spec.confidence_threshold) & np.isfinite(pts).all(axis=1)
        index = np.flatnonzero(keep)
        if spec.max_points and index.size > spec.max_points:
            index = np.sort(np.random.default_rng(rng_seed).choice(index, spec.max_points,
                                                                   replace=False))
        chosen = pix[index]
        rgb = rec.images.reshape(-1, 3).numpy()[chosen]
        ids, scores = self.point_labels(rec, spec.labels, torch.from_numpy(chosen))
        return PointCloud(pts[index].astype(np.float32),
                          np.clip(np.round(rgb * 255.0), 0, 255).astype(np.uint8),
                          ids.cpu().numpy().astype(np.uint32), conf[index].astype(np.float32),
                          spec.labels, scores.cpu().numpy().astype(np.float32))

    def view_images(self, rec: Reconstruction, labels: Sequence[str], view: int = 0,
                    wanted: Collection[str] = IMAGE_OUTPUTS) -> ViewImages:
        """The ``wanted`` 2-D outputs (of :data:`IMAGE_OUTPUTS`) at ``view``, at the camera's
        original resolution; the others stay None and cost nothing."""
        unknown = set(wanted) - set(IMAGE_OUTPUTS)
        if unknown:
            raise ValueError(f"unknown image outputs {sorted(unknown)}; known: {IMAGE_OUTPUTS}")
        rec.check_view(view)
        tf = rec.transforms[view]
        out = ViewImages(view=view, label_names=tuple(labels))
        if {"labels", "labels_color"} & set(wanted):
            ids, _ = self.label_map(rec, labels, view)
            ids_model = ids.cpu().numpy().astype(np.uint8)
            if "labels" in wanted:
                out.label_ids = tf.to_original(ids_model, nearest=True, fill=LABEL_NONE)
            if "labels_color" in wanted:
                color = colorize(torch.from_numpy(ids_model.astype(np.int64)),
                                 num_labels=len(labels)).numpy().astype(np.uint8)
                out.label_color = tf.to_original(np.ascontiguousarray(color), nearest=True, fill=0)
        if {"depth", "rendered"} & set(wanted):
            r = self.render_view(rec, view, features=False)  # the label map's render if kept
            if "depth" in wanted:
                depth = r.depth[0].detach().cpu().numpy().astype(np.float32)
                depth[r.alpha[0].detach().cpu().numpy() < 0.5] = np.nan
                # linear interpolation next to a NaN gives NaN: only fully valid neighbourhoods
                out.depth = tf.to_original(depth, nearest=False, fill=float("nan")).astype(np.float32)
            if "rendered" in wanted:
                rgb = np.clip(np.round(r.rgb[0].detach().cpu().numpy() * 255), 0, 255)
                out.rendered = tf.to_original(rgb.astype(np.uint8), nearest=False, fill=0)
        return out

    # ------------------------------------------------------------------ maps
    def map_points(self, rec: Reconstruction):
        """What a map fuses of ``rec``: every Gaussian's centre (rec's frame and units), the
        colour of its pixel (uint8), its semantic feature (F), its pointmap confidence and
        whether geometry decided it is floor ((N,) bool, or None when undecided)."""
        points = rec.gaussians.means.detach().cpu().numpy()
        colors = np.clip(np.round(rec.images.reshape(-1, 3).numpy() * 255), 0, 255).astype(np.uint8)
        features = rec.gaussians.features.detach().cpu().numpy()
        floor = rec.floor.reshape(-1).numpy() if rec.floor is not None else None
        return points, colors, features, rec.confidence.reshape(-1).numpy(), floor

    def feature_relevance(self, features: np.ndarray, label: str, vocabulary: Sequence[str],
                          temperature: float = TEMPERATURE,
                          synonym_similarity: float = SYNONYM_SIMILARITY) -> np.ndarray:
        """Relevance in [0, 1] of per-point semantic features (V, F) (e.g. a map's voxels)
        to ``label`` against ``vocabulary``, as :meth:`query` scores Gaussians."""
        q = self.text_embeddings([label])[0]
        synonyms, negatives = split_vocabulary(label, q, vocabulary, self.text_embeddings,
                                               synonym_similarity)
        texts = torch.cat([q[None], self.text_embeddings(synonyms + negatives)]) \
            if synonyms or negatives else q[None]
        f = torch.from_numpy(np.ascontiguousarray(features, np.float32)).to(self.device)
        with torch.no_grad():
            sims = self.model.point_text_similarity(f, texts)
        return relevance(sims, 1 + len(synonyms), temperature).cpu().numpy()

    def feature_labels(self, features: np.ndarray, labels: Sequence[str],
                       floor: Optional[np.ndarray] = None) -> np.ndarray:
        """Best label index per feature (V, F) -> (V,) int64. ``floor`` (V,): where finite,
        the share of geometric floor decisions (a map snapshot's "floor"): >= 0.5 makes the
        label "floor", below makes it anything else; NaN leaves the features to decide."""
        f = torch.from_numpy(np.ascontiguousarray(features, np.float32)).to(self.device)
        with torch.no_grad():
            sims = self.model.point_text_similarity(f, self.text_embeddings(labels))
        if floor is not None:
            share = torch.from_numpy(np.asarray(floor, np.float32))
            decided = torch.isfinite(share)
            if decided.any():
                sims[decided] = _floor_decided(sims[decided], share[decided] >= 0.5, labels)
        return sims.argmax(-1).cpu().numpy()

    # ------------------------------------------------------------------ queries
    def query(self, rec: Reconstruction, label: str, vocabulary: Sequence[str], view: int = 0,
              threshold: float = 0.5, min_confidence: float = 1.0,
              temperature: float = TEMPERATURE,
              synonym_similarity: float = SYNONYM_SIMILARITY) -> QueryResult:
        """Segment ``label`` at ``view`` and collect its 3-D points.

        Relevance: :mod:`lsm.semantics.query`, against the rest of ``vocabulary`` as
        negatives (its synonyms of ``label`` stand for it: "couch" is found where the model
        says "sofa"). Pixels / Gaussians with relevance >= ``threshold`` (and Gaussians with
        confidence >= ``min_confidence``) are the object.
        """
        rec.check_view(view)
        q = self.text_embeddings([label])[0]
        synonyms, negatives = split_vocabulary(label, q, vocabulary, self.text_embeddings,
                                               synonym_similarity)
        P = 1 + len(synonyms)
        texts = torch.cat([q[None], self.text_embeddings(synonyms + negatives)]) \
            if synonyms or negatives else q[None]  # (P + K, D)
        pix = relevance(self.view_similarity(rec, view, texts), P, temperature)
        mask = (pix >= threshold).cpu().numpy()
        with torch.no_grad():  # per Gaussian, scored in the feature space
            pts_rel = relevance(self.model.point_text_similarity(
                rec.gaussians.features.detach(), texts), P, temperature)
        decided = rec.floor is not None and label.strip().lower() == FLOOR_LABEL
        if decided:  # the floor by measured geometry (lsm.geometry.floor), not the model
            pix = rec.floor[view].to(pix.device, pix.dtype)
            mask = rec.floor[view].numpy()
            pts_rel = rec.floor.reshape(-1).to(pts_rel.device, pts_rel.dtype)
        conf = rec.confidence.reshape(-1).to(pts_rel.device)
        sel = (pts_rel >= threshold) & (conf >= min_confidence)
        points = rec.gaussians.means.detach()[sel].cpu().numpy().astype(np.float32)
        mask_original = rec.transforms[view].to_original(mask.astype(np.uint8) * 255, nearest=True)
        found = bool(mask.any()) and len(points) > 0
        if found:
            score = float(pix[torch.from_numpy(mask).to(pix.device)].mean())
            box = box_of(label, score, points)
            centroid, extent = box.center, box.size
            message = (f"{int(mask.sum())} of {rec.size ** 2} pixels and {len(points)} points "
                       f"match {label!r}" + (f" ({rec.floor_detail})" if decided else ""))
        else:
            centroid = extent = np.zeros(3, np.float32)
            score = float(pix.max())
            message = (f"no match for {label!r} above threshold {threshold:.2f} "
                       f"(best relevance {score:.2f})" + (f"; {rec.floor_detail}" if decided else ""))
        return QueryResult(label, view, found, score if found else 0.0, mask, mask_original,
                           points, np.asarray(centroid, np.float32),
                           np.asarray(extent, np.float32), message)


def _floor_decided(sim: torch.Tensor, floor: torch.Tensor, labels: Sequence[str]) -> torch.Tensor:
    """Similarities (..., L) to ``labels`` with the floor decided by geometry: where ``floor``
    (...,) is true the floor label scores 1 (above any cosine), elsewhere -2 (below any).
    Unchanged when no label is "floor"."""
    names = [name.strip().lower() for name in labels]
    if FLOOR_LABEL not in names:
        return sim
    k = names.index(FLOOR_LABEL)
    sim = sim.clone()
    sim[..., k] = torch.where(floor.to(sim.device), 1.0, -2.0).to(sim.dtype)
    return sim
