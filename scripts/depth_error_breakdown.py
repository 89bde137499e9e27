"""Where the depth error of a model lies, on the held-out items of the quality test.

Splits the source-view pixels into those near a true depth edge (the log depth spans more
than 5 % within a 5x5 window: object outlines, room corners, steep floor) and the rest, and
prints tau (delta < 1.03, pooled over the pixels) for each, tau at looser thresholds, and the median |log error|
away from edges. Same protocol as ``lsm-eval`` (pair scale by least squares, true cameras,
one median scale per pair).

Usage: .venv/bin/python scripts/depth_error_breakdown.py [CHECKPOINT] [--seeds 100000:100016]
"""
import argparse

import torch
import torch.nn.functional as F

from lsm.data import dataset as ds
from lsm.evaluation.evaluate import parse_seeds, source_view_depths
from lsm.evaluation.metrics import median_scaled_depth
from lsm.model.lsm import LSM
from lsm.training.losses import gt_pointmaps, optimal_scale
from lsm.training.objective import scaled_relative_poses


def near_depth_edges(depth: torch.Tensor, window: int = 5, jump: float = 0.05) -> torch.Tensor:
    """(N,H,W) true depth -> bool mask of pixels whose window spans > ``jump`` in log depth."""
    log_d = depth.clamp_min(1e-3).log()[:, None]
    span = F.max_pool2d(log_d, window, 1, window // 2) + F.max_pool2d(-log_d, window, 1, window // 2)
    return span[:, 0] > jump


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("checkpoint", nargs="?", default="")
    p.add_argument("--seeds", default="100000:100016")
    a = p.parse_args()
    torch.set_num_threads(2)
    model = LSM.load(a.checkpoint or None).eval()
    base = ds.ProceduralDataset(num_samples=10 ** 9, seed=0, size=model.config.image_size)
    ratios, edges = [], []
    with torch.no_grad():
        for i in parse_seeds(a.seeds):
            batch = ds.collate([base[i]])
            out = model(batch["images"][:, 0], batch["images"][:, 1])
            gt, valid = gt_pointmaps(batch["depth"], batch["K"], batch["c2w"])
            scale = optimal_scale(torch.stack([out.pts1, out.pts2], 1), gt[:, :2], valid[:, :2])
            pred = source_view_depths(out.pts1, out.pts2, scaled_relative_poses(batch["c2w"], scale))[0]
            true = batch["depth"][0, :2]
            scaled, ok = median_scaled_depth(pred, true)
            ratios.append((scaled / true.double())[ok].log().abs())
            edges.append(near_depth_edges(true)[ok])
    err, edge = torch.cat(ratios), torch.cat(edges)

    def within(e: torch.Tensor, delta: float = 1.03) -> float:
        return float((e < torch.log(torch.tensor(delta, dtype=e.dtype))).double().mean())

    print(f"{a.checkpoint or 'embedded model'}: {len(ratios)} pairs, {err.numel()} pixels, "
          f"{edge.double().mean():.0%} near depth edges")
    print(f"tau (delta < 1.03): all {within(err):.1%}, near edges {within(err[edge]):.1%}, "
          f"away from edges {within(err[~edge]):.1%}")
    print(", ".join(f"delta < {t}: {within(err, t):.1%}" for t in (1.05, 1.10, 1.25)))
    print(f"median |log error| away from edges: {err[~edge].median():.3f}")


if __name__ == "__main__":
    main()
