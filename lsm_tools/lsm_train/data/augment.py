"""Domain randomisation of training samples: what a real camera does that the renderer does not.

The procedural renderer gives clean, noise-free, evenly exposed images with one field of
view range; a model trained on them alone learns that look (on real photographs the
embedded model's focal estimate is always the training field of view and its depth the same
ramp on every image). :func:`randomise` changes a :class:`SceneSample` the way cameras do,
keeping every label exact:

* zoom: a crop near the centre (60-100 % of the side) resized back to the
  sample size, the same crop fraction for all views of a sample (one camera), K adjusted --
  fields of view from about 36 to 90 degrees instead of the generator's range;
* per view: exposure (gain), gamma, white balance (per-channel gains), saturation, sensor
  noise (Gaussian, signal-dependent), defocus/motion blur, vignetting, JPEG compression.

Depth and labels are cropped and resized with nearest-neighbour sampling; poses are
unchanged. Deterministic for a given ``numpy.random.Generator``.
"""
from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np

from .sample import SceneSample, ViewSample


def _crop_view(v: ViewSample, x0: int, y0: int, side_w: int, side_h: int) -> ViewSample:
    h, w = v.image.shape[:2]
    sl = (slice(y0, y0 + side_h), slice(x0, x0 + side_w))
    sx, sy = w / side_w, h / side_h
    K = v.K.astype(np.float64).copy()
    K[0, 2] -= x0
    K[1, 2] -= y0
    K[0] *= sx
    K[1] *= sy
    image = cv2.resize(v.image[sl], (w, h), interpolation=cv2.INTER_AREA if sx < 1 else cv2.INTER_LINEAR)
    depth = cv2.resize(v.depth[sl], (w, h), interpolation=cv2.INTER_NEAREST)
    labels = cv2.resize(v.labels[sl], (w, h), interpolation=cv2.INTER_NEAREST)
    instance = (None if v.instance is None
                else cv2.resize(v.instance[sl], (w, h), interpolation=cv2.INTER_NEAREST))
    return ViewSample(image, depth, labels, K.astype(np.float32), v.c2w, instance)


def _photometric(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    x = image.astype(np.float32) / 255.0
    h, w = x.shape[:2]
    x = x ** rng.uniform(0.7, 1.4)  # gamma / tone curve
    x = x * rng.uniform(0.6, 1.5)  # exposure
    x = x * rng.uniform(0.85, 1.15, size=3)[None, None]  # white balance
    grey = x.mean(axis=2, keepdims=True)
    x = grey + (x - grey) * rng.uniform(0.5, 1.4)  # saturation
    if rng.random() < 0.5:  # vignetting
        yy, xx = np.mgrid[0:h, 0:w]
        r2 = ((xx - w / 2) / (w / 2)) ** 2 + ((yy - h / 2) / (h / 2)) ** 2
        x = x * (1.0 - rng.uniform(0.1, 0.4) * r2 / 2)[..., None]
    if rng.random() < 0.4:  # defocus or motion blur
        if rng.random() < 0.5:
            x = cv2.GaussianBlur(x, (0, 0), rng.uniform(0.4, 1.2))
        else:
            k = int(rng.integers(3, 6))
            kernel = np.zeros((k, k), np.float32)
            kernel[k // 2] = 1.0 / k
            M = cv2.getRotationMatrix2D((k / 2 - 0.5, k / 2 - 0.5), rng.uniform(0, 180), 1.0)
            kernel = cv2.warpAffine(kernel, M, (k, k))
            x = cv2.filter2D(x, -1, kernel / max(kernel.sum(), 1e-6))
    sigma = rng.uniform(0.0, 0.03)  # read noise + shot noise
    x = x + rng.normal(0.0, 1.0, x.shape).astype(np.float32) * np.sqrt(sigma ** 2 + 0.01 * np.clip(x, 0, 1) * sigma)
    out = np.clip(x * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if rng.random() < 0.5:
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(40, 95))])
        if ok:
            out = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    return np.ascontiguousarray(out)


def randomise(sample: SceneSample, rng: np.random.Generator, zoom: bool = True) -> SceneSample:
    """A randomised copy of ``sample`` (see the module docstring)."""
    views = sample.views
    h, w = views[0].image.shape[:2]
    if zoom and rng.random() < 0.7:
        f = rng.uniform(0.6, 1.0)
        side_w, side_h = max(8, int(round(w * f))), max(8, int(round(h * f)))
        cropped = []
        for v in views:  # near the centre: real principal points are
            x0 = int(round((w - side_w) * rng.uniform(0.4, 0.6)))
            y0 = int(round((h - side_h) * rng.uniform(0.4, 0.6)))
            cropped.append(_crop_view(v, x0, y0, side_w, side_h))
        views = cropped
    views = [replace(v, image=_photometric(v.image, rng)) for v in views]
    n = len(sample.context)
    return SceneSample(context=views[:n], target=views[n:], class_names=sample.class_names,
                       meta={**sample.meta, "randomised": True})
