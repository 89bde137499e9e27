"""Gradients of the torch renderer: analytic backward vs finite differences, flow, fitting."""
import math

import torch

from lsm.rendering import render

W, H = 16, 12


def _scene(n, seed, dtype=torch.float32, feature_dim=4):
    gen = torch.Generator().manual_seed(seed)
    means = torch.stack([(torch.rand(n, generator=gen) - 0.5) * 1.2, (torch.rand(n, generator=gen) - 0.5) * 0.9,
                         2.0 + torch.rand(n, generator=gen)], -1)
    scene = dict(
        means=means,
        quats=torch.randn(n, 4, generator=gen),
        scales=0.05 + 0.1 * torch.rand(n, 3, generator=gen),
        opacities=0.2 + 0.7 * torch.rand(n, generator=gen),
        colors=torch.rand(n, 3, generator=gen),
        features=torch.randn(n, feature_dim, generator=gen),
    )
    scene = {k: v.to(dtype) for k, v in scene.items()}
    Ks = torch.tensor([[[14.0, 0, 8.0], [0, 14.0, 6.0], [0, 0, 1]]] * 2, dtype=dtype)
    views = torch.eye(4, dtype=dtype).repeat(2, 1, 1)
    views[1, :3, 3] = torch.tensor([0.2, -0.1, 0.1], dtype=dtype)
    return scene, Ks, views


def _loss(out, weights):
    return ((out.rgb * weights[0]).sum() + (out.depth * weights[1]).sum() + (out.features * weights[2]).sum()
            + (out.alpha * weights[3]).sum())


def test_analytic_backward_matches_finite_differences():
    scene, Ks, views = _scene(12, 0, torch.float64)
    gen = torch.Generator().manual_seed(1)
    weights = [torch.randn(2, H, W, 3, generator=gen, dtype=torch.float64),
               torch.randn(2, H, W, generator=gen, dtype=torch.float64),
               torch.randn(2, H, W, 4, generator=gen, dtype=torch.float64),
               torch.randn(2, H, W, generator=gen, dtype=torch.float64)]
    names = ["means", "quats", "scales", "opacities", "colors", "features"]

    def fn(*tensors):
        s = dict(zip(names, tensors))
        out = render(s["means"], s["quats"], s["scales"], s["opacities"], s["colors"], Ks, views, W, H,
                     features=s["features"], backend="torch")
        return _loss(out, weights)

    inputs = [scene[k].clone().requires_grad_(True) for k in names]
    loss = fn(*inputs)
    grads = torch.autograd.grad(loss, inputs)
    eps = 1e-6
    gen = torch.Generator().manual_seed(2)
    for name, x, g in zip(names, inputs, grads):
        for _ in range(6):  # random coordinates of each input
            idx = tuple(int(torch.randint(0, d, (1,), generator=gen)) for d in x.shape)
            plus = [t.detach().clone() for t in inputs]
            minus = [t.detach().clone() for t in inputs]
            plus[names.index(name)][idx] += eps
            minus[names.index(name)][idx] -= eps
            numeric = (fn(*plus) - fn(*minus)).item() / (2 * eps)
            assert math.isclose(g[idx].item(), numeric, rel_tol=1e-4, abs_tol=1e-6), (name, idx, g[idx].item(), numeric)


def test_gradients_reach_every_input():
    scene, Ks, views = _scene(40, 3)
    scene["means"][:3, 2] = torch.tensor([0.0, -1.0, 1e-4])  # on, behind and at the camera plane
    params = {k: v.clone().requires_grad_(True) for k, v in scene.items()}
    out = render(params["means"], params["quats"], params["scales"], params["opacities"], params["colors"],
                 Ks, views, W, H, features=params["features"], backend="torch")
    loss = out.rgb.mean() + out.depth.mean() + out.features.square().mean()
    loss.backward()
    for name, p in params.items():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_chunking_does_not_change_results_or_gradients():
    scene, Ks, views = _scene(60, 4)
    results = []
    for max_pairs, chunk in [(1 << 21, 1 << 16), (64, 7)]:  # one band vs. many bands and tiny chunks
        params = {k: v.clone().requires_grad_(True) for k, v in scene.items()}
        out = render(params["means"], params["quats"], params["scales"], params["opacities"], params["colors"],
                     Ks, views, W, H, features=params["features"], backend="torch",
                     max_pairs=max_pairs, chunk_pairs=chunk)
        (out.rgb.sum() + out.features.sum() + out.depth.sum()).backward()
        results.append((out, {k: p.grad for k, p in params.items()}))
    (a, ga), (b, gb) = results
    assert torch.allclose(a.rgb, b.rgb, atol=1e-6) and torch.allclose(a.features, b.features, atol=1e-5)
    for k in ga:
        assert torch.allclose(ga[k], gb[k], atol=1e-4, rtol=1e-4), k


def test_fitting_colours_lowers_l1():
    gen = torch.Generator().manual_seed(5)
    n = 6
    means = torch.stack([(torch.rand(n, generator=gen) - 0.5), (torch.rand(n, generator=gen) - 0.5) * 0.7,
                         torch.full((n,), 2.0)], -1)
    quats = torch.tensor([[1.0, 0, 0, 0]]).repeat(n, 1)
    scales = torch.full((n, 3), 0.15)
    opac = torch.full((n,), 0.8)
    Ks = torch.tensor([[[14.0, 0, 8.0], [0, 14.0, 6.0], [0, 0, 1]]])
    view = torch.eye(4)[None]
    target = render(means, quats, scales, opac, torch.rand(n, 3, generator=gen), Ks, view, W, H, backend="torch").rgb
    colors = torch.full((n, 3), 0.5, requires_grad=True)
    optim = torch.optim.Adam([colors], lr=0.05)
    losses = []
    for _ in range(40):
        optim.zero_grad()
        loss = (render(means, quats, scales, opac, colors, Ks, view, W, H, backend="torch").rgb - target).abs().mean()
        loss.backward()
        optim.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0]
