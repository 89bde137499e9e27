"""Pointmap geometry: unprojection vs projection, rigid transforms, avg-distance normalisation."""
import math

import numpy as np
import pytest
import torch
import transforms3d

from lsm.geometry import (
    depth_to_pointmap,
    intrinsics_from_focal,
    normalize_pointmaps,
    pixel_grid,
    project_points,
    transform_points,
)


def random_c2w(rng):
    axis = rng.normal(size=3)
    R = transforms3d.axangles.axangle2mat(axis / np.linalg.norm(axis), rng.uniform(0, math.pi))
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = rng.normal(size=3)
    return torch.from_numpy(T)


def test_pixel_grid_centres_and_principal_point():
    grid = pixel_grid(4, 6)
    assert grid.shape == (4, 6, 2)
    assert grid[0, 0].tolist() == [0.5, 0.5]
    assert grid[3, 5].tolist() == [5.5, 3.5]
    # the default principal point is the geometric centre of the pixel grid
    K = intrinsics_from_focal(torch.tensor(10.0), 4, 6)
    assert torch.allclose(grid.reshape(-1, 2).mean(0), K[:2, 2])
    assert pixel_grid(2, 2, pixel_center=0.0)[1, 1].tolist() == [1.0, 1.0]


def test_depth_to_pointmap_projects_back_to_pixel_centres():
    rng = np.random.default_rng(0)
    B, H, W = 2, 5, 7
    depth = torch.from_numpy(rng.uniform(0.5, 4.0, size=(B, H, W)))
    K = intrinsics_from_focal(torch.tensor([8.0, 11.0], dtype=torch.float64), H, W)
    pts = depth_to_pointmap(depth, K)
    assert pts.shape == (B, H, W, 3)
    assert torch.allclose(pts[..., 2], depth)
    uv = project_points(pts, K)
    assert torch.allclose(uv, pixel_grid(H, W, dtype=torch.float64).expand(B, H, W, 2), atol=1e-10)


def test_depth_to_pointmap_with_pose_matches_transform_of_camera_points():
    rng = np.random.default_rng(1)
    B, H, W = 3, 4, 6
    depth = torch.from_numpy(rng.uniform(1.0, 3.0, size=(B, H, W)))
    K = intrinsics_from_focal(torch.full((B,), 9.0, dtype=torch.float64), H, W)
    c2w = torch.stack([random_c2w(rng) for _ in range(B)])
    world = depth_to_pointmap(depth, K, c2w)
    cam = transform_points(torch.linalg.inv(c2w), world)
    assert torch.allclose(cam[..., 2], depth, atol=1e-10)
    assert torch.allclose(project_points(cam, K), pixel_grid(H, W, dtype=torch.float64).expand(B, H, W, 2), atol=1e-9)
    # a single shared K / pose is accepted too, and numpy input gives the same result
    shared = depth_to_pointmap(depth.numpy(), K[0].numpy(), c2w[0].numpy())
    assert torch.allclose(shared[0], world[0])


def test_transform_points_broadcasts_over_pixels_and_preserves_distances():
    rng = np.random.default_rng(2)
    T = torch.stack([random_c2w(rng), random_c2w(rng)])
    pts = torch.from_numpy(rng.normal(size=(2, 3, 4, 3)))
    out = transform_points(T, pts)
    expected = torch.einsum("bij,bhwj->bhwi", T[:, :3, :3], pts) + T[:, None, None, :3, 3]
    assert torch.allclose(out, expected)
    d_in = (pts[:, 0, 0] - pts[:, 2, 3]).norm(dim=-1)
    d_out = (out[:, 0, 0] - out[:, 2, 3]).norm(dim=-1)
    assert torch.allclose(d_in, d_out)
    assert torch.allclose(transform_points(torch.linalg.inv(T), out), pts)


def test_normalize_pointmaps_gives_unit_mean_distance_over_valid_points():
    rng = np.random.default_rng(3)
    p1 = torch.from_numpy(rng.normal(size=(2, 4, 5, 3)) * 3.0)
    p2 = torch.from_numpy(rng.normal(size=(2, 4, 5, 3)) * 7.0)
    v1 = torch.from_numpy(rng.random((2, 4, 5)) > 0.3)
    v2 = torch.from_numpy(rng.random((2, 4, 5)) > 0.3)
    p1[~v1] = float("nan")  # invalid pixels may hold garbage
    (n1, n2), scale = normalize_pointmaps([p1, p2], [v1, v2])
    assert scale.shape == (2,)
    for b in range(2):
        dists = torch.cat([n1[b][v1[b]].norm(dim=-1), n2[b][v2[b]].norm(dim=-1)])
        assert dists.mean().item() == pytest.approx(1.0, abs=1e-12)
        raw = torch.cat([p1[b][v1[b]].norm(dim=-1), p2[b][v2[b]].norm(dim=-1)])
        assert scale[b].item() == pytest.approx(raw.mean().item())
    assert torch.allclose(n2 * scale.view(-1, 1, 1, 1), p2)


def test_normalize_pointmaps_is_differentiable_with_zero_points_and_masks():
    pts = torch.zeros(1, 2, 2, 3, dtype=torch.float64)
    pts[0, 0, 0] = torch.tensor([1.0, 2.0, 2.0])
    pts[0, 1, 1] = torch.tensor([float("inf"), 0.0, 0.0])
    pts.requires_grad_(True)
    valid = torch.tensor([[[True, True], [True, False]]])
    (out,), scale = normalize_pointmaps([pts], [valid])
    assert scale.item() == pytest.approx(1.0)  # (3 + 0 + 0) / 3
    out[valid].sum().backward()
    assert torch.isfinite(pts.grad).all()


def test_bad_input_raises_clear_errors():
    K = torch.eye(3)
    with pytest.raises(ValueError, match="depth must have shape"):
        depth_to_pointmap(torch.ones(4, 4), K)
    with pytest.raises(ValueError, match="K must have shape"):
        depth_to_pointmap(torch.ones(2, 4, 4), torch.eye(3).expand(3, 3, 3))
    with pytest.raises(ValueError, match="c2w"):
        depth_to_pointmap(torch.ones(1, 4, 4), K, torch.eye(3))
    with pytest.raises(ValueError, match="prefix"):
        transform_points(torch.eye(4).expand(2, 4, 4), torch.ones(3, 5, 3))
    with pytest.raises(ValueError, match="torch.Tensor or numpy"):
        transform_points([[1.0]], torch.ones(3))
    pts = torch.ones(1, 2, 2, 3)
    with pytest.raises(ValueError, match="no valid point"):
        normalize_pointmaps([pts], [torch.zeros(1, 2, 2, dtype=torch.bool)])
    with pytest.raises(ValueError, match="non-finite"):
        normalize_pointmaps([torch.full((1, 2, 2, 3), float("nan"))])
    with pytest.raises(ValueError, match="shape"):
        normalize_pointmaps([pts, torch.ones(2, 2, 2, 3)])
    with pytest.raises(ValueError, match="valid_masks\\[0\\] must have shape"):
        normalize_pointmaps([pts], [torch.ones(2, 2, dtype=torch.bool)])
