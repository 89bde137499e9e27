"""The embedded model's linear layers on oneDNN (as Perception.load runs them) against aten's
BLAS, on pairs the process has never seen, as in a live stream: oneDNN builds a kernel for
every new input shape, and the point transformer's point counts are new on every pair, so
repeating the same pairs (as lsm-benchmark does) would flatter oneDNN.

Usage: .venv/bin/python scripts/compare_linear_routes.py [--pairs 30] [--seed 31]
Each pair runs once per route, the order alternating; prints per-pair medians and the
per-pair ratio. One run on one machine: only the ratio inside the run compares.
"""
from __future__ import annotations

import argparse
import contextlib
import statistics
import time

from lsm.model import cpu_linear
from lsm.perception import Perception
from lsm_tools.benchmark import benchmark_pairs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=31)
    args = parser.parse_args()
    perception = Perception.load(device="cpu")
    print(f"{perception.onednn_linear} linear layers switched to OneDNNLinear (oneDNN for "
          f"products of at least {cpu_linear.MIN_MACS} multiply-adds whose shape repeats)")
    for pair in benchmark_pairs(2, seed=args.seed + 1000):  # warm-up, other pairs
        perception.reconstruct([pair])
    seconds = {"oneDNN": [], "aten": []}
    for i, pair in enumerate(benchmark_pairs(args.pairs, seed=args.seed)):
        for route in (["oneDNN", "aten"] if i % 2 == 0 else ["aten", "oneDNN"]):
            with cpu_linear.aten() if route == "aten" else contextlib.nullcontext():
                t0 = time.perf_counter()
                perception.reconstruct([pair])
                seconds[route].append(time.perf_counter() - t0)
    for route, values in seconds.items():
        print(f"{route}: median {1e3 * statistics.median(values):.1f} ms per pair")
    routes = {}
    for module in perception.model.modules():
        if isinstance(module, cpu_linear.OneDNNLinear):
            routes[module.route] = routes.get(module.route, 0) + 1
    print("layers by route after the run:", routes)
    ratios = [a / b for a, b in zip(seconds["oneDNN"], seconds["aten"])]
    faster = sum(r < 1 for r in ratios) / len(ratios)
    print(f"oneDNN / aten per pair: median {statistics.median(ratios):.3f}, "
          f"oneDNN faster on {100 * faster:.0f} % of the pairs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
