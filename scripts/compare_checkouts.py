"""Per-pair time of two checkouts on equal terms: each one's own ``lsm-benchmark`` stage table,
run in alternation in one invocation (this machine's speed drifts from hour to hour, so
only ratios inside one run compare).

Usage: .venv/bin/python scripts/compare_checkouts.py BEFORE AFTER [--rounds 2]
e.g. ``git worktree add /tmp/before <rev>`` beside this checkout. A checkout with
``lsm_tools/`` runs ``python -m lsm_tools.benchmark``; an older one ``python -m lsm.benchmark``.
Both run the embedded model on 640x480 pairs with 2 torch threads, batch 1, ROS message
stages included (every output subscribed, as with RViz showing all of them).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ARGS = ["--batch-sizes", "1", "--sizes", "128", "--render-gaussians", "4096", "--repeats", "3",
        "--threads", "2", "--device", "cpu"]


def run(checkout: Path, out: Path) -> dict:
    tools = checkout / "lsm_tools"
    module = "lsm_tools.benchmark" if tools.is_dir() else "lsm.benchmark"
    paths = [checkout / "lsm_ros"] + ([tools] if tools.is_dir() else [])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(map(str, paths)))
    subprocess.run([sys.executable, "-m", module, *ARGS, "--out", str(out)], env=env, check=True,
                   stdout=subprocess.DEVNULL, cwd=checkout)
    return json.loads((out / "benchmark.json").read_text())["devices"][0]["stages"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--rounds", type=int, default=2)
    a = parser.parse_args()
    results = {"before": [], "after": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.rounds):
            for name, checkout in (("before", a.before), ("after", a.after)):
                print(f"round {r + 1}: {name} ({checkout})", file=sys.stderr, flush=True)
                results[name].append(run(checkout.resolve(), Path(tmp) / f"{name}{r}"))
    stages = sorted(set().union(*(s["stages_s"] for runs in results.values() for s in runs)))

    def med(name, key):
        values = [s["stages_s"][key] for s in results[name] if key in s["stages_s"]]
        return statistics.median(values) if values else float("nan")

    print(f"| stage (ms per pair, median of {a.rounds} rounds) | before | after | after/before |")
    print("|---|---:|---:|---:|")
    for key in stages:
        b, c = med("before", key), med("after", key)
        print(f"| {key} | {1e3 * b:.1f} | {1e3 * c:.1f} | {c / b:.2f} |")
    totals = {n: statistics.median(s["pipeline_s"] for s in results[n]) for n in results}
    print(f"| **every output** | **{1e3 * totals['before']:.0f}** | **{1e3 * totals['after']:.0f}** "
          f"| **{totals['after'] / totals['before']:.2f}** |")
    cloud = [s.get("pipeline_cloud_only_s") for s in results["after"]]
    if all(c is not None for c in cloud):
        c = statistics.median(cloud)
        print(f"| **no image subscriber** (after only: the node computes no image) | "
              f"{1e3 * totals['before']:.0f} | {1e3 * c:.0f} | {c / totals['before']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
