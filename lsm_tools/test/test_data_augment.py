"""Domain randomisation (lsm_train.data.augment): photometric changes leave geometry and labels
exact; the zoom crop changes K so that every pixel still sees the same 3-D point."""
import numpy as np

from lsm_train.data.augment import randomise
from lsm_train.data.dataset import ProceduralDataset
from lsm_train.data.procedural import generate_sample


def _points(view):
    h, w = view.depth.shape
    u, v = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    cam = (np.stack([u, v, np.ones_like(u)], -1) @ np.linalg.inv(view.K.astype(np.float64)).T) * view.depth[..., None]
    return cam @ view.c2w[:3, :3].T.astype(np.float64) + view.c2w[:3, 3]


def test_items_are_deterministic_and_randomised():
    a, b = ProceduralDataset(10, seed=1, size=48, augment=True), ProceduralDataset(10, seed=1, size=48, augment=True)
    plain = ProceduralDataset(10, seed=1, size=48)
    for i in range(3):
        x, y, z = a[i], b[i], plain[i]
        assert np.array_equal(x.context[0].image, y.context[0].image)
        assert x.meta["randomised"] and not np.array_equal(x.context[0].image, z.context[0].image)


def test_zoom_keeps_pixels_on_their_3d_points():
    sample = generate_sample(5, size=64)
    rng = np.random.default_rng(0)
    for _ in range(6):
        out = randomise(sample, rng)
        for before, after in zip(sample.views, out.views):
            assert after.image.shape == before.image.shape
            np.testing.assert_array_equal(after.c2w, before.c2w)
            zoom = after.K[0, 0] / before.K[0, 0]
            assert 0.99 <= zoom <= 1.0 / 0.6 + 1e-3
            # every pixel's 3-D point lies on the original surface: its depth along the
            # original camera matches the original depth map there (nearest sampling)
            pts = _points(after).reshape(-1, 3)
            w2c = np.linalg.inv(before.c2w.astype(np.float64))
            cam = pts @ w2c[:3, :3].T + w2c[:3, 3]
            uv = (cam @ before.K.astype(np.float64).T)[:, :2] / cam[:, 2:3]
            u = np.clip(np.floor(uv[:, 0]).astype(int), 0, 63)
            v = np.clip(np.floor(uv[:, 1]).astype(int), 0, 63)
            rel = np.abs(before.depth[v, u] - cam[:, 2]) / cam[:, 2]
            assert np.median(rel) < 0.01
            # labels are the original labels at those pixels (nearest sampling, edges aside)
            assert np.mean(before.labels[v, u] == after.labels.reshape(-1)) > 0.9
