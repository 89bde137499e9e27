"""``Perception`` with a ``tiny`` LSM on CPU: an image pair at camera resolution in, a plain
Reconstruction out (pointmaps, cameras, Gaussians), rendered, labelled, queried, exported.

The network is randomly initialised (seed 0): these tests check shapes, conventions and the
contracts between the parts, not reconstruction quality (lsm_tools/test has those).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lsm.gaussians import Gaussians, rgb_to_sh_dc
from lsm.io.ply import load_ply_vertices, save_gaussians_ply
from lsm.model.lsm import LSM
from lsm.perception import OutputSpec, Perception
from lsm.preprocess import prepare_image
from lsm.results import PointCloud, QueryResult, Reconstruction
from lsm.semantics.query import split_vocabulary

S = 128  # tiny's model resolution
CAM_H, CAM_W = 120, 160
VOCAB = ["wall", "floor", "chair", "table", "sofa", "bed"]


class View:
    """A synthetic camera view: a smoothly textured plane tilted away from the camera."""

    def __init__(self, shift: float, height: int = CAM_H, width: int = CAM_W) -> None:
        self.height, self.width = height, width
        f = 0.5 * width / np.tan(np.radians(30.0))
        self.K = np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1]])
        v, u = np.mgrid[0:height, 0:width] + 0.5
        self.depth = (2.0 + 1.5 * (height - v) / height).astype(np.float32)
        x = (u - width / 2) / f * self.depth + shift
        y = (v - height / 2) / f * self.depth
        rgb = np.stack([0.5 + 0.3 * np.sin(6 * x) * np.cos(5 * y), 0.5 + 0.3 * np.sin(3 * x),
                        0.4 + 0.3 * np.cos(4 * y)], -1)  # smooth: a few pixels per Gaussian
        self.image = np.clip(np.round(rgb * 255), 0, 255).astype(np.uint8)


class Sample:
    context = (View(0.0), View(0.15))


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return LSM.from_config("tiny").eval()


@pytest.fixture(scope="module")
def perception(model):
    return Perception(model)


@pytest.fixture(scope="module")
def sample():
    return Sample()


@pytest.fixture(scope="module")
def rec(perception, sample):
    return perception.reconstruct([(sample.context[0].image, sample.context[1].image)])[0]


def test_reconstruction_shapes_and_frames(rec):
    N = 2 * S * S
    assert isinstance(rec, Reconstruction)
    assert rec.size == S
    assert rec.images.shape == (2, S, S, 3) and 0 <= rec.images.min() and rec.images.max() <= 1
    assert rec.pointmaps.shape == (2, S, S, 3) and torch.isfinite(rec.pointmaps).all()
    assert rec.confidence.shape == (2, S, S) and (rec.confidence >= 1).all()
    g = rec.gaussians
    assert g.count == N
    assert g.means.shape == (N, 3) and g.scales.shape == (N, 3) and g.rotations.shape == (N, 4)
    assert g.opacities.shape == (N,) and g.sh.shape == (N, 16, 3) and g.features.shape == (N, 32)
    # one Gaussian per pixel, centred on the pointmaps (view, row, column order)
    assert torch.equal(g.means.cpu(), rec.pointmaps.reshape(N, 3))
    assert rec.intrinsics.shape == (2, 3, 3) and rec.c2w.shape == (2, 4, 4)
    assert torch.allclose(rec.c2w[0], torch.eye(4))  # view 1 is the reference frame
    K = rec.intrinsics
    assert (K[:, 0, 0] > 0).all() and torch.allclose(K[:, 2], torch.tensor([0.0, 0, 1]).expand(2, 3))
    R = rec.c2w[1, :3, :3]
    assert torch.allclose(R @ R.T, torch.eye(3), atol=1e-4) and torch.det(R) > 0
    assert rec.camera_status  # says whether PnP or a fallback produced the cameras
    assert [tf.original_size for tf in rec.transforms] == [(CAM_W, CAM_H)] * 2


def test_model_input_is_the_centre_crop_of_the_camera_image(rec, sample):
    expected, tf = prepare_image(sample.context[0].image, S)
    assert torch.allclose(rec.images[0], expected.permute(1, 2, 0))
    assert tf.scale == pytest.approx(S / CAM_H) and tf.offset[1] == 0
    assert tf.offset[0] == pytest.approx((CAM_W * S / CAM_H - S) / 2)


def test_reconstruction_is_plain_data(rec):
    """A kept reconstruction holds tensors and cameras, never the network."""
    import dataclasses

    for f in dataclasses.fields(rec):
        value = getattr(rec, f.name)
        assert not isinstance(value, torch.nn.Module), f.name
        assert isinstance(value, (torch.Tensor, Gaussians, list, tuple, float, str, type(None))), f.name


def test_render_at_an_input_view(perception, rec):
    out = perception.render_view(rec, 0)
    assert out.rgb.shape == (1, S, S, 3) and out.alpha.shape == (1, S, S)
    assert out.features.shape == (1, S, S, 32)
    for t in (out.rgb, out.alpha, out.features, out.depth):
        assert torch.isfinite(t).all()
    assert ((out.alpha >= 0) & (out.alpha <= 1 + 1e-5)).all()
    no_feat = perception.render_view(rec, 1, features=False)
    assert no_feat.features is None and no_feat.rgb.shape == (1, S, S, 3)
    with pytest.raises(ValueError, match="view"):
        perception.render_view(rec, 2)


def test_a_view_is_rendered_once_for_labels_outputs_and_queries(perception, rec):
    """The node's label map, depth/colour outputs and later queries share one render."""
    with_features = perception.render_view(rec, 0)
    assert perception.render_view(rec, 0) is with_features
    assert perception.render_view(rec, 0, features=False) is with_features
    fresh = perception.render(rec, rec.intrinsics[0], rec.c2w[0], S, S)
    assert torch.equal(fresh.rgb, with_features.rgb)
    assert torch.equal(fresh.features, with_features.features)


def test_point_text_similarity_equals_cosine_of_the_expanded_features(model):
    torch.manual_seed(1)
    feats = torch.randn(500, model.feature_expansion[1].in_channels) * 3
    text = torch.nn.functional.normalize(
        torch.randn(7, model.feature_expansion[1].out_channels), dim=-1)
    with torch.no_grad():
        direct = torch.nn.functional.normalize(model.expand_point_features(feats), dim=-1) @ text.t()
        fast = model.point_text_similarity(feats, text)
    assert fast.shape == (500, 7)
    assert torch.allclose(fast, direct, atol=1e-5)


def test_render_of_ground_truth_gaussians_reproduces_the_input_view(perception, sample):
    """The rendering conventions of Reconstruction (K in pixels, c2w -> view matrix, wxyz
    rotations, colours from the SH DC term) put each pixel's Gaussian back on that pixel."""
    view = sample.context[0]
    H, W = view.height, view.width
    K = torch.as_tensor(view.K, dtype=torch.float32)
    v, u = torch.meshgrid(torch.arange(H) + 0.5, torch.arange(W) + 0.5, indexing="ij")
    z = torch.as_tensor(view.depth, dtype=torch.float32)
    ok = (z > 0).reshape(-1)
    pts = torch.stack([(u - K[0, 2]) / K[0, 0] * z, (v - K[1, 2]) / K[1, 1] * z, z], -1).reshape(-1, 3)
    rgb = torch.as_tensor(view.image).reshape(-1, 3).float() / 255
    n = int(ok.sum())
    radius = (z.reshape(-1)[ok] / K[0, 0] * 0.7)[:, None].expand(n, 3)  # ~0.7 px footprint
    g = Gaussians(means=pts[ok], scales=radius.contiguous(),
                  rotations=torch.tensor([1.0, 0, 0, 0]).expand(n, 4).contiguous(),
                  opacities=torch.full((n,), 0.99), sh=rgb_to_sh_dc(rgb[ok])[:, None, :].contiguous(),
                  features=torch.zeros(n, 32))
    gt_rec = Reconstruction(images=None, pointmaps=None, confidence=None, gaussians=g,
                            intrinsics=K[None].expand(2, 3, 3), c2w=torch.eye(4).expand(2, 4, 4),
                            transforms=[])
    out = perception.render(gt_rec, K, torch.eye(4), W, H, features=False)
    target = rgb.reshape(H, W, 3)
    mask = (z > 0)
    err = (out.rgb[0] - target).abs()[mask]
    psnr = -10 * torch.log10((err ** 2).mean())
    assert psnr > 25, f"rendered input view differs from the image (PSNR {psnr:.1f} dB)"
    # shifting the camera by 3 pixels (in x) must make it clearly worse: alignment matters
    c2w = torch.eye(4)
    c2w[0, 3] = 3 * float(z[mask].median()) / float(K[0, 0])
    shifted = perception.render(gt_rec, K, c2w, W, H, features=False).rgb[0]
    psnr_shift = -10 * torch.log10(((shifted - target).abs()[mask] ** 2).mean())
    assert psnr_shift < psnr - 5


def test_label_map_and_point_labels(perception, rec):
    ids, score = perception.label_map(rec, VOCAB, view=0)
    assert ids.shape == (S, S) and score.shape == (S, S)
    assert ids.min() >= 0 and ids.max() < len(VOCAB)
    assert (score >= -1 - 1e-4).all() and (score <= 1 + 1e-4).all()
    # the winning label's score is the cosine between the feature and its text embedding
    feats = perception.feature_map(rec, 0)
    emb = perception.text_embeddings(VOCAB)
    cos = torch.einsum("dhw,ld->lhw", feats, emb)
    assert torch.allclose(score, cos.max(dim=0).values, atol=1e-5)
    # (label_map works in the F-dim feature space; the same labels up to float ties)
    assert (ids == cos.argmax(dim=0)).float().mean() > 0.999
    assert torch.allclose(feats.norm(dim=0), torch.ones(S, S), atol=1e-4)
    pid, pscore = perception.point_labels(rec, VOCAB)
    assert pid.shape == (2 * S * S,) and pscore.shape == (2 * S * S,)
    assert pid.max() < len(VOCAB) and (pscore.abs() <= 1 + 1e-4).all()


def test_point_cloud_follows_the_output_spec(perception, rec):
    full = perception.point_cloud(rec, OutputSpec(VOCAB, 0.0, 1, 0))
    assert isinstance(full, PointCloud) and full.label_names == tuple(VOCAB)
    assert full.points.shape == (2 * S * S, 3) and full.points.dtype == np.float32
    np.testing.assert_array_equal(full.points, rec.pointmaps.reshape(-1, 3).numpy())
    pid, _ = perception.point_labels(rec, VOCAB)
    np.testing.assert_array_equal(full.labels, pid.numpy().astype(np.uint32))  # label of each pixel's Gaussian
    assert full.colors.dtype == np.uint8 and full.confidence.dtype == np.float32
    strided = perception.point_cloud(rec, OutputSpec(VOCAB, 0.0, 2, 0))
    assert len(strided.points) == 2 * (S // 2) ** 2
    np.testing.assert_array_equal(strided.points[:S // 2], rec.pointmaps[0, 0, ::2].numpy())
    capped = perception.point_cloud(rec, OutputSpec(VOCAB, 0.0, 1, 1000))
    assert len(capped.points) == 1000
    median = float(rec.confidence.median())
    confident = perception.point_cloud(rec, OutputSpec(VOCAB, median, 1, 0))
    assert (confident.confidence >= median).all() and 0 < len(confident.points) < 2 * S * S
    with pytest.raises(ValueError, match="point_stride"):
        OutputSpec(VOCAB, 0.0, 0, 0)


def test_view_images_compute_only_what_is_wanted(perception, rec):
    depth_only = perception.view_images(rec, VOCAB, 0, wanted=("depth",))
    assert depth_only.depth.shape == (CAM_H, CAM_W) and depth_only.depth.dtype == np.float32
    assert depth_only.label_ids is None and depth_only.label_color is None
    assert depth_only.rendered is None
    every = perception.view_images(rec, VOCAB, 0)
    assert every.label_ids.shape == (CAM_H, CAM_W) and every.label_ids.dtype == np.uint8
    assert every.label_color.shape == (CAM_H, CAM_W, 3) and every.rendered.shape == (CAM_H, CAM_W, 3)
    ids, _ = perception.label_map(rec, VOCAB, 0)
    np.testing.assert_array_equal(every.label_ids,
                                  rec.transforms[0].to_original(ids.numpy().astype(np.uint8),
                                                                nearest=True, fill=255))
    assert (every.label_ids[:, :20] == 255).all()  # outside the model's crop
    with pytest.raises(ValueError, match="unknown image outputs"):
        perception.view_images(rec, VOCAB, 0, wanted=("thermal",))


def test_query_returns_masks_at_both_resolutions(perception, rec):
    q = perception.query(rec, "chair", VOCAB, view=0, threshold=0.0, min_confidence=0.0)
    assert isinstance(q, QueryResult)
    assert q.label == "chair" and q.view == 0
    assert q.mask.shape == (S, S) and q.mask.dtype == bool
    assert q.mask_original.shape == (CAM_H, CAM_W) and q.mask_original.dtype == np.uint8
    # threshold 0: every pixel and every Gaussian is relevant
    assert q.found and q.mask.all() and len(q.points) == 2 * S * S
    # the camera image is 160 wide, the model saw its central 120x120 (columns 20..139)
    assert (q.mask_original[:, 20:140] == 255).all()
    assert (q.mask_original[:, :20] == 0).all() and (q.mask_original[:, 140:] == 0).all()
    assert q.points.shape == (2 * S * S, 3) and q.points.dtype == np.float32
    np.testing.assert_allclose(q.centroid, np.median(rec.gaussians.means.numpy(), axis=0), rtol=1e-5, atol=1e-6)
    assert (q.extent >= 0).all() and 0 <= q.score <= 1

    none = perception.query(rec, "chair", VOCAB, view=1, threshold=1.01)
    assert not none.found and not none.mask.any() and len(none.points) == 0
    assert none.score == 0.0 and (none.mask_original == 0).all() and "no match" in none.message


def test_query_mask_original_is_the_warped_model_mask(perception, rec):
    q = perception.query(rec, "floor", VOCAB, view=1, threshold=0.5)
    warped = rec.transforms[1].to_original(q.mask.astype(np.uint8) * 255, nearest=True)
    np.testing.assert_array_equal(q.mask_original, warped)
    with pytest.raises(ValueError, match="view"):
        perception.query(rec, "floor", VOCAB, view=-1)


def test_a_synonym_query_finds_at_least_what_its_vocabulary_word_finds(perception, rec):
    """'couch' is not in VOCAB; its synonym 'sofa' is: wherever the model says 'sofa' well
    enough to answer a 'sofa' query, a 'couch' query answers too (pixels and points)."""
    for threshold in (0.2, 0.4, 0.5, 0.6):
        sofa = perception.query(rec, "sofa", VOCAB, view=0, threshold=threshold, min_confidence=0.0)
        couch = perception.query(rec, "couch", VOCAB, view=0, threshold=threshold,
                                 min_confidence=0.0)
        assert not (sofa.mask & ~couch.mask).any(), threshold
        assert len(couch.points) >= len(sofa.points), threshold
    # a word that is no synonym of any vocabulary entry gets no such help
    def synonyms(word):
        return split_vocabulary(word, perception.text_embeddings([word])[0], VOCAB,
                                perception.text_embeddings, 0.8)[0]

    assert synonyms("mug") == []
    assert synonyms("couch") == ["sofa"]


def test_save_ply_is_3dgs_readable(rec, tmp_path):
    path = save_gaussians_ply(rec.gaussians, tmp_path / "scene.ply")
    v = load_ply_vertices(path)
    names = v.dtype.names
    expected = (["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
                + [f"f_rest_{i}" for i in range(45)] + ["opacity", "scale_0", "scale_1", "scale_2",
                                                        "rot_0", "rot_1", "rot_2", "rot_3"]
                + [f"semantic_{i}" for i in range(32)])
    assert list(names) == expected  # 3DGS reads x..rot_3 in this order; semantic_* follow
    g = rec.gaussians
    assert len(v) == g.count == 2 * S * S
    np.testing.assert_allclose(np.stack([v["x"], v["y"], v["z"]], 1), g.means.numpy(), rtol=1e-6)
    # 3DGS stores opacity as a logit, scales as logs, rotations wxyz
    np.testing.assert_allclose(1 / (1 + np.exp(-v["opacity"])), g.opacities.numpy(), atol=1e-5)
    np.testing.assert_allclose(np.exp(np.stack([v[f"scale_{i}"] for i in range(3)], 1)), g.scales.numpy(),
                               rtol=1e-5)
    np.testing.assert_allclose(np.stack([v[f"rot_{i}"] for i in range(4)], 1), g.rotations.numpy(), atol=1e-6)
    np.testing.assert_allclose(np.stack([v[f"f_dc_{i}"] for i in range(3)], 1), g.sh[:, 0].numpy(), atol=1e-6)
    # f_rest is channel-major: all red coefficients, then green, then blue
    rest = np.stack([v[f"f_rest_{i}"] for i in range(45)], 1).reshape(-1, 3, 15)
    np.testing.assert_allclose(rest.transpose(0, 2, 1), g.sh[:, 1:].numpy(), atol=1e-6)
    np.testing.assert_allclose(np.stack([v[f"semantic_{i}"] for i in range(32)], 1), g.features.numpy(),
                               atol=1e-5)


def test_pairs_of_different_resolutions(perception, sample):
    """Each image of a pair is cropped on its own: a 90x120 and a 120x160 view work together,
    and the masks come back at each view's own resolution."""
    import cv2

    small = cv2.resize(sample.context[1].image, (120, 90), interpolation=cv2.INTER_AREA)
    rec = perception.reconstruct([(sample.context[0].image, small.astype(np.float32) / 255)])[0]
    assert [tf.original_size for tf in rec.transforms] == [(CAM_W, CAM_H), (120, 90)]
    q = perception.query(rec, "wall", VOCAB, view=1, threshold=0.0)
    assert q.mask_original.shape == (90, 120)


def test_a_transformed_reconstruction_renders_the_same_views(perception, rec):
    """Expressed in another frame (a world frame from TF), the scene and both cameras move
    together: every input view renders the same image, and the points moved rigidly."""
    from transforms3d.euler import euler2mat

    T = np.eye(4)
    T[:3, :3] = euler2mat(0.3, -0.2, 1.1)
    T[:3, 3] = [2.0, -1.0, 0.5]
    moved = rec.transformed(T, "odom")
    assert moved.frame == "odom" and rec.frame == ""
    np.testing.assert_allclose(moved.pointmaps.numpy(),
                               rec.pointmaps.numpy() @ T[:3, :3].T + T[:3, 3], atol=1e-5)
    for view in (0, 1):
        a = perception.render(rec, rec.intrinsics[view], rec.c2w[view], S, S)
        b = perception.render(moved, moved.intrinsics[view], moved.c2w[view], S, S)
        assert float((a.rgb - b.rgb).abs().max()) < 2e-3
        assert float((a.depth - b.depth).abs().max()) < 2e-3


def test_scaled_reconstruction_is_metric(rec):
    metric = rec.scaled(2.5, "depth", "test")
    assert metric.metric and metric.units == "m" and metric.scale == 2.5 and not rec.metric
    np.testing.assert_allclose(metric.pointmaps.numpy(), 2.5 * rec.pointmaps.numpy(), rtol=1e-6)
    np.testing.assert_allclose(metric.gaussians.scales.numpy(), 2.5 * rec.gaussians.scales.numpy(),
                               rtol=1e-6)
    np.testing.assert_allclose(metric.c2w[1, :3, 3].numpy(), 2.5 * rec.c2w[1, :3, 3].numpy(),
                               rtol=1e-6)
