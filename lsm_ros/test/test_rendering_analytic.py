"""Closed-form checks of the torch renderer: footprint, compositing, cutoffs, cameras."""
import math

import torch

from lsm.rendering import SH_C0, Camera, render, rgb_to_sh_dc, stack_cameras

W, H, F = 40, 30, 80.0
CX, CY = 20.0, 15.0


def _cam():
    K = torch.tensor([[[F, 0, CX], [0, F, CY], [0, 0, 1.0]]])
    return K, torch.eye(4)[None]


def _gaussians(centres, scale, opacities, colors):
    n = len(centres)
    return dict(
        means=torch.tensor(centres, dtype=torch.float32),
        quats=torch.tensor([[1.0, 0, 0, 0]] * n),
        scales=torch.full((n, 3), float(scale)),
        opacities=torch.tensor(opacities, dtype=torch.float32),
        colors=torch.tensor(colors, dtype=torch.float32),
    )


def _render(g, **kw):
    K, view = _cam()
    return render(g["means"], g["quats"], g["scales"], g["opacities"], g["colors"], K, view, W, H,
                  backend="torch", **kw)


def test_single_isotropic_gaussian_footprint():
    z, s, opac = 2.0, 0.05, 0.7
    # centre exactly on the centre of pixel (u0, v0) = (22, 13): u = F x / z + CX = 22.5
    u0, v0 = 22, 13
    x, y = (u0 + 0.5 - CX) * z / F, (v0 + 0.5 - CY) * z / F
    g = _gaussians([[x, y, z]], s, [opac], [[0.2, 0.5, 0.9]])
    out = _render(g)
    alpha = out.alpha[0]
    assert abs(alpha[v0, u0].item() - opac) < 1e-6
    # EWA footprint: var = (F s / z)^2 (1 + (x/z)^2) along u (Jacobian term), + 0.3 px^2 low-pass
    var_u = (F * s / z) ** 2 * (1 + (x / z) ** 2) + 0.3
    var_v = (F * s / z) ** 2 * (1 + (y / z) ** 2) + 0.3
    cov_uv = (F * s / z) ** 2 * (x / z) * (y / z)
    inv = torch.linalg.inv(torch.tensor([[var_u, cov_uv], [cov_uv, var_v]], dtype=torch.float64))
    for du, dv in [(1, 0), (0, 1), (2, 0), (0, -3), (2, 2), (-3, 1), (4, 0)]:
        d = torch.tensor([du, dv], dtype=torch.float64)
        expected = opac * math.exp(-0.5 * float(d @ inv @ d))
        got = alpha[v0 + dv, u0 + du].item()
        if expected >= 1 / 255:
            assert abs(got - expected) < 1e-5, (du, dv, got, expected)
        else:
            assert got == 0.0  # below the 1/255 alpha threshold
    # colour = alpha * colour (black background), depth = z wherever the Gaussian is seen
    assert torch.allclose(out.rgb[0], alpha[..., None] * g["colors"][0], atol=1e-6)
    seen = alpha > 0
    assert seen.sum() > 9
    assert torch.allclose(out.depth[0][seen], torch.full_like(out.depth[0][seen], z), atol=1e-5)
    assert (out.depth[0][~seen] == 0).all()


def test_front_gaussian_occludes_back_one_regardless_of_input_order():
    u0, v0 = 10, 20
    xy = lambda z: [(u0 + 0.5 - CX) * z / F, (v0 + 0.5 - CY) * z / F, z]  # noqa: E731
    red, blue = [1.0, 0, 0], [0, 0, 1.0]
    front_first = _gaussians([xy(2.0), xy(3.0)], 0.05, [0.8, 0.6], [red, blue])
    back_first = _gaussians([xy(3.0), xy(2.0)], 0.05, [0.6, 0.8], [blue, red])
    for g in (front_first, back_first):
        out = _render(g)
        rgb, a, d = out.rgb[0, v0, u0], out.alpha[0, v0, u0], out.depth[0, v0, u0]
        assert torch.allclose(rgb, torch.tensor([0.8, 0.0, 0.2 * 0.6]), atol=1e-6)
        assert abs(a.item() - (0.8 + 0.2 * 0.6)) < 1e-6
        assert abs(d.item() - (0.8 * 2.0 + 0.12 * 3.0) / 0.92) < 1e-5


def test_alpha_clamp_and_transmittance_cutoff():
    u0, v0 = 5, 5
    xy = lambda z: [(u0 + 0.5 - CX) * z / F, (v0 + 0.5 - CY) * z / F, z]  # noqa: E731
    # opacity 1 is clamped to alpha 0.99, so the back Gaussian still shows through 1 %
    g = _gaussians([xy(2.0), xy(3.0)], 0.05, [1.0, 0.5], [[1.0, 0, 0], [0, 1.0, 0]])
    rgb = _render(g).rgb[0, v0, u0]
    assert torch.allclose(rgb, torch.tensor([0.99, 0.01 * 0.5, 0.0]), atol=1e-6)
    # alpha 0.98 x 3: T = 0.02, 4e-4, then 8e-6 <= 1e-4 -> the third layer is dropped
    g = _gaussians([xy(2.0), xy(3.0), xy(4.0)], 0.05, [0.98] * 3, [[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]])
    out = _render(g)
    assert torch.allclose(out.rgb[0, v0, u0], torch.tensor([0.98, 0.02 * 0.98, 0.0]), atol=1e-6)
    assert abs(out.alpha[0, v0, u0].item() - (1 - 0.02 * 0.02)) < 1e-6


def test_background_culling_and_sh_dc():
    g = _gaussians([[0.0, 0.0, 2.0], [0.0, 0.0, -2.0], [0.0, 0.0, 500.0]], 0.05, [0.5, 0.9, 0.9],
                   [[1.0, 1.0, 1.0], [1.0, 0, 0], [0, 1.0, 0]])
    bg = torch.tensor([0.0, 0.0, 1.0])
    out = _render(g, background=bg)
    # behind the camera and beyond far=100 contribute nothing; background fills 1 - alpha
    assert torch.allclose(out.rgb[0], out.alpha[0][..., None] * 1.0 + (1 - out.alpha[0][..., None]) * bg, atol=1e-6)
    assert out.alpha[0].max() <= 0.5 + 1e-6
    # degree-0 SH with DC = (rgb - 0.5) / C0 renders the same image
    sh = rgb_to_sh_dc(g["colors"])[:, None, :]
    out_sh = _render({**g, "colors": sh}, background=bg, sh_degree=0)
    assert torch.allclose(out_sh.rgb, out.rgb, atol=1e-6)
    assert abs(SH_C0 - 0.28209479177387814) < 1e-12


def test_camera_helper_and_batch_dimension():
    gen = torch.Generator().manual_seed(0)
    n = 60
    means = torch.randn(2, n, 3, generator=gen) * 0.4 + torch.tensor([0, 0, 3.0])
    quats = torch.randn(2, n, 4, generator=gen)
    scales = torch.rand(2, n, 3, generator=gen) * 0.1 + 0.02
    opac = torch.rand(2, n, generator=gen)
    colors = torch.rand(2, n, 3, generator=gen)
    feats = torch.randn(2, n, 5, generator=gen)
    c2w = torch.eye(4)
    c2w[:3, 3] = torch.tensor([0.1, -0.2, 0.3])
    angle = 0.1
    c2w[:3, :3] = torch.tensor([[math.cos(angle), -math.sin(angle), 0], [math.sin(angle), math.cos(angle), 0],
                                [0, 0, 1]])
    cams = [Camera(K=_cam()[0][0], c2w=torch.eye(4), width=W, height=H),
            Camera(K=_cam()[0][0], c2w=c2w, width=W, height=H)]
    Ks, views, w, h = stack_cameras(cams)
    assert torch.allclose(views[1] @ c2w, torch.eye(4), atol=1e-6)
    batched = render(means, quats, scales, opac, colors, Ks.expand(2, 2, 3, 3), views.expand(2, 2, 4, 4), w, h,
                     features=feats, backend="torch")
    assert batched.rgb.shape == (2, 2, H, W, 3) and batched.features.shape == (2, 2, H, W, 5)
    assert batched.depth.shape == (2, 2, H, W) and batched.alpha.shape == (2, 2, H, W)
    for b in range(2):
        single = render(means[b], quats[b], scales[b], opac[b], colors[b], Ks, views, w, h, features=feats[b],
                        backend="torch")
        assert torch.equal(single.rgb, batched.rgb[b]) and torch.equal(single.features, batched.features[b])
    # a camera moved along its own +z sees the scene closer: depth shrinks by the move
    moved = torch.eye(4)
    moved[2, 3] = 0.5
    near_cam = Camera(K=_cam()[0][0], c2w=moved, width=W, height=H)
    g = _gaussians([[0.0, 0.0, 2.0]], 0.05, [0.9], [[1.0, 1.0, 1.0]])
    out = render(g["means"], g["quats"], g["scales"], g["opacities"], g["colors"], near_cam.K[None],
                 near_cam.viewmat[None], W, H, backend="torch")
    assert abs(out.depth[0][out.alpha[0] > 0.1].mean().item() - 1.5) < 1e-5
