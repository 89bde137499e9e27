"""Where the depth error of a model lies, on the held-out items of the quality test.

Splits the source-view pixels into those near a true depth edge (log depth spans more than
5 % in a 5x5 window: object outlines, room corners, steep floor) and the rest, and prints
tau (delta < 1.03, pooled over the pixels) for each, looser thresholds, and the median
|log error| away from edges. Same protocol as ``lsm-eval`` (``align_to_truth``, one median
scale per pair; ``depth_errors_by_edges``).

Usage: .venv/bin/python scripts/depth_error_breakdown.py [CHECKPOINT] [--seeds 100000:100016]
"""
import argparse
import math

import torch

from lsm.checkpoint import load_model
from lsm_train.data import dataset as ds
from lsm_train.evaluation.evaluate import align_to_truth, parse_seeds
from lsm_train.evaluation.metrics import depth_errors_by_edges


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("checkpoint", nargs="?", default="")
    p.add_argument("--seeds", default="100000:100016")
    a = p.parse_args()
    torch.set_num_threads(2)
    model = load_model(a.checkpoint or None).eval()
    base = ds.ProceduralDataset(num_samples=10 ** 9, seed=0, size=model.config.image_size)
    errors, edges = [], []
    with torch.no_grad():
        for i in parse_seeds(a.seeds):
            batch = ds.collate([base[i]])
            _, depth = align_to_truth(model(batch["images"][:, 0], batch["images"][:, 1]), batch)
            err, edge = depth_errors_by_edges(depth[0], batch["depth"][0, :2])
            errors.append(err)
            edges.append(edge)
    err, edge = torch.cat(errors), torch.cat(edges)

    def within(e: torch.Tensor, delta: float = 1.03) -> float:
        return float((e < math.log(delta)).double().mean())

    print(f"{a.checkpoint or 'embedded model'}: {len(errors)} pairs, {err.numel()} pixels, "
          f"{edge.double().mean():.0%} near depth edges")
    print(f"tau (delta < 1.03): all {within(err):.1%}, near edges {within(err[edge]):.1%}, "
          f"away from edges {within(err[~edge]):.1%}")
    print(", ".join(f"delta < {t}: {within(err, t):.1%}" for t in (1.05, 1.10, 1.25)))
    print(f"median |log error| away from edges: {err[~edge].median():.3f}")


if __name__ == "__main__":
    main()
