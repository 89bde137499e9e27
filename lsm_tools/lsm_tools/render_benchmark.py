"""Timing of the pure-torch renderer on an LSM-like scene.

Usage: ``python -m lsm_tools.render_benchmark --gaussians 32768 --size 128 --features 64``.
The scene mimics LSM's output: per-pixel Gaussians unprojected from ``views`` pointmaps of
a wavy surface 2-4 units in front of the camera, scales ~ one pixel footprint.
"""
from __future__ import annotations

import argparse
import math
import time
from typing import Dict

import torch

from lsm.rendering.render import render


def make_pointmap_scene(num_gaussians: int, size: int, feature_dim: int = 0, seed: int = 0,
                        dtype: torch.dtype = torch.float32) -> Dict[str, object]:
    """Gaussians on a wavy surface seen by an identity camera with 60-degree FoV."""
    gen = torch.Generator().manual_seed(seed)
    focal = 0.5 * size / math.tan(math.radians(30.0))
    side = max(1, int(math.ceil(math.sqrt(num_gaussians))))
    u = (torch.rand(num_gaussians, generator=gen) * size)
    v = (torch.rand(num_gaussians, generator=gen) * size)
    depth = 3.0 + 0.5 * torch.sin(u / 9.0) * torch.cos(v / 13.0) + 0.05 * torch.rand(num_gaussians, generator=gen)
    x = (u - 0.5 * size) / focal * depth
    y = (v - 0.5 * size) / focal * depth
    means = torch.stack([x, y, depth], -1)
    footprint = depth / focal * size / side  # spacing of the points on the surface
    scales = footprint[:, None] * (0.5 + torch.rand(num_gaussians, 3, generator=gen))
    quats = torch.nn.functional.normalize(torch.randn(num_gaussians, 4, generator=gen), dim=-1)
    scene = {
        "means": means.to(dtype), "quats": quats.to(dtype), "scales": scales.to(dtype),
        "opacities": (0.3 + 0.65 * torch.rand(num_gaussians, generator=gen)).to(dtype),
        "colors": torch.rand(num_gaussians, 3, generator=gen).to(dtype),
        "features": torch.randn(num_gaussians, feature_dim, generator=gen).to(dtype) if feature_dim else None,
        "Ks": torch.tensor([[[focal, 0, size / 2], [0, focal, size / 2], [0, 0, 1]]], dtype=dtype),
        "viewmats": torch.eye(4, dtype=dtype)[None],
        "width": size, "height": size,
    }
    return scene


def benchmark_render(num_gaussians: int = 32768, size: int = 128, feature_dim: int = 0, repeats: int = 3,
                     backward: bool = True, seed: int = 0, verbose: bool = True) -> Dict[str, float]:
    """Median forward / backward seconds of ``render(backend="torch")`` on CPU.

    Returns wall-clock (``forward_s``, ``backward_s``) and process CPU time
    (``forward_cpu_s``, ``backward_cpu_s``; sums over threads, less sensitive to other
    processes sharing the cores) plus the mean rendered alpha.
    """
    scene = make_pointmap_scene(num_gaussians, size, feature_dim, seed)
    params = ["means", "quats", "scales", "opacities", "colors"] + (["features"] if feature_dim else [])
    times = {"forward_s": [], "backward_s": [], "forward_cpu_s": [], "backward_cpu_s": []}
    for _ in range(repeats):
        for p in params:
            scene[p] = scene[p].detach().requires_grad_(backward)
        t0, c0 = time.perf_counter(), time.process_time()
        out = render(scene["means"], scene["quats"], scene["scales"], scene["opacities"], scene["colors"],
                     scene["Ks"], scene["viewmats"], size, size, features=scene["features"], backend="torch")
        t1, c1 = time.perf_counter(), time.process_time()
        times["forward_s"].append(t1 - t0)
        times["forward_cpu_s"].append(c1 - c0)
        if backward:
            loss = out.rgb.sum() + out.depth.sum() + (out.features.sum() if out.features is not None else 0)
            loss.backward()
            times["backward_s"].append(time.perf_counter() - t1)
            times["backward_cpu_s"].append(time.process_time() - c1)
    res = {k: (sorted(v)[len(v) // 2] if v else float("nan")) for k, v in times.items()}
    res["coverage"] = float(out.alpha.detach().mean())
    if verbose:
        print(f"render torch N={num_gaussians} {size}x{size} F={feature_dim} threads={torch.get_num_threads()}: "
              f"forward {res['forward_s'] * 1e3:.1f} ms (cpu {res['forward_cpu_s'] * 1e3:.1f}), "
              f"backward {res['backward_s'] * 1e3:.1f} ms (cpu {res['backward_cpu_s'] * 1e3:.1f}), "
              f"mean alpha {res['coverage']:.3f}")
    return res


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gaussians", type=int, default=32768)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--features", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-backward", action="store_true")
    args = parser.parse_args()
    benchmark_render(args.gaussians, args.size, args.features, args.repeats, not args.no_backward)


if __name__ == "__main__":
    main()
