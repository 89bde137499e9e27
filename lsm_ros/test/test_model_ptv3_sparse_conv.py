"""Submanifold sparse convolution: dense-conv definition, duplicate rule, spconv equivalence."""
import pytest
import torch
import torch.nn.functional as F

from lsm.model.ptv3.sparse_conv import SparseGrid, SubMConv3d, spconv_available

needs_spconv = pytest.mark.skipif(not spconv_available(), reason="spconv not importable")


def _cloud(n, extent, samples, seed, dtype=torch.float64, cin=5):
    g = torch.Generator().manual_seed(seed)
    grid = torch.randint(0, extent, (n, 3), generator=g)
    batch = torch.sort(torch.randint(0, samples, (n,), generator=g)).values
    feat = torch.randn(n, cin, generator=g, dtype=dtype)
    return grid, batch, feat


@pytest.mark.parametrize("k", [3, 5])
def test_without_duplicates_equals_dense_conv_at_active_sites(k):
    g = torch.Generator().manual_seed(0)
    extent = 7
    flat = torch.randperm(extent ** 3, generator=g)[:120]  # distinct voxels
    grid = torch.stack([flat // extent ** 2, flat // extent % extent, flat % extent], 1)
    feat = torch.randn(120, 4, generator=g, dtype=torch.float64)
    conv = SubMConv3d(4, 6, k, bias=True, backend="torch").double()
    out = conv(feat, SparseGrid(grid, torch.zeros(120, dtype=torch.long), 1))

    dense = torch.zeros(1, 4, extent, extent, extent, dtype=torch.float64)
    dense[0, :, grid[:, 0], grid[:, 1], grid[:, 2]] = feat.t()
    w = conv.weight.permute(0, 4, 1, 2, 3)  # (out, in, k, k, k)
    ref = F.conv3d(dense, w, conv.bias, padding=k // 2)[0][:, grid[:, 0], grid[:, 1], grid[:, 2]].t()
    assert torch.allclose(out, ref, atol=1e-12)


def test_duplicate_voxels_follow_the_spconv_cpu_rule():
    # sites 0 and 1 share voxel (1,1,1); site 2 sits at +z
    grid = torch.tensor([[1, 1, 1], [1, 1, 1], [1, 1, 2]])
    feat = torch.tensor([[1.0], [10.0], [100.0]], dtype=torch.float64)
    conv = SubMConv3d(1, 1, 3, bias=False, backend="torch").double()
    with torch.no_grad():
        conv.weight.copy_(torch.arange(27, dtype=torch.float64).reshape(1, 3, 3, 3, 1) + 1)
    out = conv(feat, SparseGrid(grid, torch.zeros(3, dtype=torch.long), 1))[:, 0]
    w_centre, w_up, w_down = 14.0, 15.0, 13.0  # taps (0,0,0), (0,0,+1), (0,0,-1)
    # both duplicates see only themselves through the centre tap and site 2 through the +z tap
    assert out[0].item() == w_centre * 1 + w_up * 100
    assert out[1].item() == w_centre * 10 + w_up * 100
    # site 2 is the first of its voxel: through the -z tap it gets the sum of both duplicates
    assert out[2].item() == w_centre * 100 + w_down * 11


@needs_spconv
@pytest.mark.parametrize("k", [3, 5])
def test_torch_path_matches_spconv_with_duplicates(k):
    grid, batch, feat = _cloud(1500, 9, 2, seed=k)  # ~2 sites per voxel
    assert torch.unique(torch.cat([batch[:, None], grid], 1), dim=0).shape[0] < 1500
    a = SubMConv3d(5, 7, k, bias=True, backend="spconv").double()
    b = SubMConv3d(5, 7, k, bias=True, backend="torch").double()
    b.load_state_dict(a.state_dict())
    fa = feat.clone().requires_grad_(True)
    fb = feat.clone().requires_grad_(True)
    ya = a(fa, SparseGrid(grid, batch, 2))
    yb = b(fb, SparseGrid(grid, batch, 2))
    assert torch.allclose(ya, yb, atol=1e-10)
    up = torch.randn_like(ya)
    (ya * up).sum().backward()
    (yb * up).sum().backward()
    assert torch.allclose(fa.grad, fb.grad, atol=1e-10)
    assert torch.allclose(a.weight.grad, b.weight.grad, atol=1e-9)
    assert torch.allclose(a.bias.grad, b.bias.grad, atol=1e-9)


@needs_spconv
def test_float32_paths_agree_to_1e5():
    grid, batch, feat = _cloud(4000, 20, 2, seed=3, dtype=torch.float32, cin=16)
    a = SubMConv3d(16, 16, 3, backend="spconv")
    b = SubMConv3d(16, 16, 3, backend="torch")
    b.load_state_dict(a.state_dict())
    sites = SparseGrid(grid, batch, 2)
    assert torch.allclose(a(feat, sites), b(feat, sites), atol=1e-5)


def test_samples_do_not_see_each_other():
    grid = torch.tensor([[2, 2, 2], [2, 2, 3]])
    feat = torch.tensor([[1.0], [2.0]])
    conv = SubMConv3d(1, 1, 3, bias=False, backend="torch")
    together = conv(feat, SparseGrid(grid, torch.tensor([0, 0]), 1))
    apart = conv(feat, SparseGrid(grid, torch.tensor([0, 1]), 2))
    centre = conv.weight[0, 1, 1, 1, 0]
    assert torch.allclose(apart[:, 0], feat[:, 0] * centre)
    assert not torch.allclose(together, apart)


def test_bad_input_is_rejected():
    with pytest.raises(ValueError):
        SubMConv3d(2, 2, 4)
    with pytest.raises(ValueError):
        SubMConv3d(2, 2, 3, backend="cuda")
    conv = SubMConv3d(2, 2, 3, backend="torch")
    sites = SparseGrid(torch.zeros(5, 3, dtype=torch.long), torch.zeros(5, dtype=torch.long), 1)
    with pytest.raises(ValueError):
        conv(torch.zeros(5, 3), sites)
    with pytest.raises(ValueError):
        conv(torch.zeros(4, 2), sites)
    with pytest.raises(ValueError):
        SparseGrid(torch.zeros(5, 2, dtype=torch.long), torch.zeros(5, dtype=torch.long), 1)
