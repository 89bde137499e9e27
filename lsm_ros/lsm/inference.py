"""Image pairs in, :class:`~lsm.reconstruction.Reconstruction` out (preprocessing, one batched
forward pass, camera recovery).

Camera images are RGB uint8 (H,W,3) arrays (or float in [0,1]); each pair may have its own
resolution. Output frames and units are documented in :mod:`lsm.reconstruction`.
"""
from __future__ import annotations

import time
from typing import List, Sequence, Tuple

import torch

import math

import numpy as np

from .geometry.camera_recovery import CameraRecoveryError, recover_cameras
from .geometry.pointmaps import intrinsics_from_focal
from .geometry.pose_metrics import umeyama_similarity
from .preprocess import prepare_image
from .reconstruction import Reconstruction


@torch.no_grad()
def reconstruct_pairs(model, pairs: Sequence[Tuple[object, object]], text_encoder=None,
                      timings: dict | None = None) -> List[Reconstruction]:
    """Reconstruct every (image1, image2) pair in one forward pass (batch = len(pairs)).

    ``timings``, when given, is filled with seconds per stage: ``preprocess``, ``network``,
    ``cameras``.
    """
    if len(pairs) == 0:
        raise ValueError("no image pairs given")
    size = model.config.image_size
    param = next(model.parameters())
    t0 = time.perf_counter()
    imgs1, imgs2, tfs = [], [], []
    for i, (a, b) in enumerate(pairs):
        ta, tfa = prepare_image(a, size)
        tb, tfb = prepare_image(b, size)
        imgs1.append(ta)
        imgs2.append(tb)
        tfs.append((tfa, tfb))
    img1 = torch.stack(imgs1).to(param.device, param.dtype)
    img2 = torch.stack(imgs2).to(param.device, param.dtype)
    t1 = time.perf_counter()
    was_training = model.training
    model.eval()
    out = model(img1, img2, symmetric=True)
    model.train(was_training)
    t2 = time.perf_counter()
    recs = []
    sw = out.backbone.swapped
    for i in range(len(pairs)):
        K, c2w, focal, status = estimate_cameras(out.pts1[i], out.pts2[i], out.conf1[i], out.conf2[i],
                                                 sw.pts2[i], sw.pts1[i], sw.conf2[i], sw.conf1[i])
        recs.append(Reconstruction(
            images=torch.stack([img1[i], img2[i]]).permute(0, 2, 3, 1).float().cpu(),
            pointmaps=torch.stack([out.pts1[i], out.pts2[i]]).float().cpu(),
            confidence=torch.stack([out.conf1[i], out.conf2[i]]).float().cpu(),
            gaussians=out.gaussians[i].detach().to(torch.float32),  # stays on the model device
            intrinsics=K,
            c2w=c2w,
            camera_status=status,
            transforms=tfs[i],
            model=model,
            text_encoder=text_encoder,
            focal=focal,
        ))
    t3 = time.perf_counter()
    if timings is not None:
        timings.update(preprocess=t1 - t0, network=t2 - t1, cameras=t3 - t2)
    return recs


FALLBACK_FOV_DEG = 60.0


def estimate_cameras(pts1, pts2, conf1, conf2, pts2_in_2, pts1_in_2, conf2_in_2, conf1_in_2,
                     max_points: int = 8192):
    """Intrinsics (2,3,3), c2w (2,4,4), focal and a status string for one pair.

    First choice: shared Weiszfeld focal + PnP-RANSAC (see :mod:`lsm.geometry.camera_recovery`).
    If that fails (e.g. an untrained model's pointmaps), the pose falls back to the rigid
    alignment of view 2's points predicted in both frames (pts2_in_2 -> pts2_in_1) and the
    focal to a 60 deg field of view; the status says so.
    """
    H, W = pts1.shape[:2]
    try:
        cams = recover_cameras(pts1, pts2, conf1, conf2, pts2_in_2=pts2_in_2, pts1_in_2=pts1_in_2,
                               conf2_in_2=conf2_in_2, conf1_in_2=conf1_in_2, max_points=max_points)
        return cams.K.float(), cams.c2w.float(), float(cams.focal), \
            f"pnp ({cams.direction}, {cams.num_inliers}/{cams.num_points} inliers)"
    except CameraRecoveryError as exc:
        reason = str(exc)
    focal = 0.5 * W / math.tan(math.radians(FALLBACK_FOV_DEG) / 2)
    K = intrinsics_from_focal(torch.tensor(focal, dtype=torch.float64), H, W).float()
    c2w = torch.eye(4).repeat(2, 1, 1)
    try:
        src = pts2_in_2.reshape(-1, 3).float().cpu().numpy()
        dst = pts2.reshape(-1, 3).float().cpu().numpy()
        ok = np.isfinite(src).all(1) & np.isfinite(dst).all(1)
        step = max(1, int(ok.sum()) // max_points)
        s, R, t = umeyama_similarity(src[ok][::step], dst[ok][::step], with_scale=True)
        c2w[1, :3, :3] = torch.from_numpy(np.asarray(R, np.float32))
        c2w[1, :3, 3] = torch.from_numpy(np.asarray(t, np.float32))
        status = f"fallback: rigid alignment pose, {FALLBACK_FOV_DEG:.0f} deg FoV ({reason})"
    except ValueError as exc:
        status = f"fallback: identity pose, {FALLBACK_FOV_DEG:.0f} deg FoV ({reason}; {exc})"
    return K.expand(2, 3, 3).clone(), c2w, focal, status
