"""render() rejects bad input with clear ValueErrors."""
import pytest
import torch

from lsm.rendering import Camera, render


def _ok(n=5):
    return dict(
        means=torch.tensor([[0.0, 0.0, 2.0]]).repeat(n, 1), quats=torch.tensor([[1.0, 0, 0, 0]]).repeat(n, 1),
        scales=torch.full((n, 3), 0.1), opacities=torch.full((n,), 0.5), colors=torch.rand(n, 3),
        Ks=torch.tensor([[[10.0, 0, 4], [0, 10.0, 4], [0, 0, 1]]]), viewmats=torch.eye(4)[None], width=8, height=8,
    )


def test_valid_input_renders():
    out = render(**_ok(), backend="torch")
    assert out.rgb.shape == (1, 8, 8, 3) and out.features is None


@pytest.mark.parametrize("key,value,match", [
    ("quats", torch.rand(4, 4), "quats"),
    ("scales", torch.rand(5, 2), "scales"),
    ("opacities", torch.rand(6), "opacities"),
    ("colors", torch.rand(4, 3), "colors"),
    ("viewmats", torch.eye(4), "viewmats"),
    ("viewmats", torch.eye(3)[None], "viewmats"),
    ("Ks", torch.eye(3)[None].repeat(2, 1, 1), "Ks"),
    ("means", torch.rand(5, 2), "means"),
    ("width", 0, "width"),
])
def test_shape_errors(key, value, match):
    kw = _ok()
    kw[key] = value
    with pytest.raises(ValueError, match=match):
        render(**kw, backend="torch")


def test_nan_and_range_errors():
    kw = _ok()
    kw["means"] = kw["means"].clone()
    kw["means"][2, 1] = float("nan")
    with pytest.raises(ValueError, match="means contains NaN"):
        render(**kw, backend="torch")
    kw = _ok()
    kw["opacities"] = torch.full((5,), 1.5)
    with pytest.raises(ValueError, match="opacities"):
        render(**kw, backend="torch")
    kw = _ok()
    with pytest.raises(ValueError, match="features"):
        render(**kw, features=torch.rand(4, 8), backend="torch")


def test_backend_errors():
    with pytest.raises(ValueError, match="backend"):
        render(**_ok(), backend="cuda")
    with pytest.raises(ValueError, match="CUDA"):
        render(**_ok(), backend="gsplat")


def test_camera_validation():
    with pytest.raises(ValueError, match="c2w"):
        Camera(K=torch.eye(3), c2w=torch.eye(3), width=4, height=4)


@pytest.mark.parametrize("n,z", [(0, 2.0), (3, -2.0)])
def test_empty_or_fully_culled_scene_renders_black_with_finite_grads(n, z):
    kw = _ok(n)
    kw["means"] = torch.tensor([[0.0, 0.0, z]]).repeat(n, 1).requires_grad_(True)
    out = render(**kw, features=torch.rand(n, 2), background=torch.tensor([0.1, 0.2, 0.3]), backend="torch")
    assert out.alpha.abs().sum() == 0 and out.depth.abs().sum() == 0 and out.features.abs().sum() == 0
    assert torch.allclose(out.rgb, torch.tensor([0.1, 0.2, 0.3]).expand(1, 8, 8, 3))
    out.rgb.sum().backward()
    assert torch.isfinite(kw["means"].grad).all()
