"""``lsm-benchmark-map``: cost and memory of the persistent map (lsm.mapping) over a long run.

One real reconstruction (the embedded model on a procedural pair with its depth) gives the
points, colours, features and confidences of a fused pair; they are fused ``--updates``
times, each time moved ``--step`` metres further along a corridor and turned a little, so
the map keeps meeting new space, fills to ``--max-voxels`` and then evicts. Printed:

* voxels after each update never above max_voxels (checked every update);
* fusion time per update around updates 10, 100, 1,000 and 2,000 (median of the 10 before
  each mark) and their ratio to the first: per-update cost must not grow with the map;
* resident memory (VmRSS of this process, which also holds the model, like the node) at
  1,000 and 2,000 updates, and its growth;
* a query (snapshot + relevance + instances) while another thread fuses continuously: the
  longest wait for the map's lock against the longest single fusion update.

Usage: ``lsm-benchmark-map [--updates 2000] [--max-voxels 200000] [--voxel-size 0.05]``.
"""
from __future__ import annotations

import argparse
import sys
import threading
import time
from typing import Dict, List, Optional

import numpy as np

MARKS = (10, 100, 1000, 2000)


def rss_bytes() -> int:
    """Resident set size of this process (Linux /proc; 0 where unavailable)."""
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def one_reconstruction(seed: int = 300001):
    """map_points of one real reconstruction (metric, depth-fused) and the perception."""
    from lsm.metric import PairSensors
    from lsm.perception import Perception, WeightSources
    from lsm_train.data.procedural import generate_sample

    perception = Perception.load(WeightSources(), device="cpu")
    a, b = generate_sample(seed, size=(240, 320)).context
    rec = perception.reconstruct([(a.image, b.image)],
                                 sensors=[PairSensors(K=(a.K, b.K), depth=(a.depth, b.depth))])[0]
    return perception, perception.map_points(rec)


def _moved(points: np.ndarray, k: int, step: float) -> np.ndarray:
    yaw = 0.02 * np.sin(0.05 * k)
    c, s = np.cos(yaw), np.sin(yaw)
    R = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])
    return (points @ R.T + [k * step, 0.0, 0.0]).astype(np.float32)


def run(updates: int = 2000, max_voxels: int = 200_000, voxel_size: float = 0.05,
        step: float = 0.1, log=print, free_space: bool = True) -> Dict[str, object]:
    from lsm.mapping import VoxelMap
    from lsm.specs import DEFAULT_LABELS

    perception, (points, colors, features, confidence, _) = one_reconstruction()
    vmap = VoxelMap(voxel_size, max_voxels, features.shape[1], "odom")
    seconds: List[float] = []
    rss: Dict[int, int] = {}
    most = 0
    for k in range(1, updates + 1):
        moved = _moved(points, k, step)
        t0 = time.perf_counter()
        vmap.integrate(moved, colors, features, confidence, float(k))
        if free_space:  # as MapFusion does (view 0's rays; the camera moves with the points)
            vmap.clear_free_space(_moved(np.zeros((1, 3)), k, step)[0],
                                  moved[:len(moved) // 2], float(k))
        seconds.append(time.perf_counter() - t0)
        most = max(most, len(vmap))
        if len(vmap) > max_voxels:
            raise AssertionError(f"{len(vmap)} voxels after update {k} > max_voxels {max_voxels}")
        if k in MARKS or k == updates:
            rss[k] = rss_bytes()
            log(f"update {k}: {len(vmap)} voxels, {vmap.evicted} evicted, "
                f"{1000 * np.median(seconds[-10:]):.1f} ms, RSS {rss[k] / 2**20:.0f} MiB")
    at = {m: float(np.median(seconds[m - 10:m])) for m in MARKS if m <= updates}
    first = at[min(at)]
    # a query while another thread keeps fusing
    labels = list(DEFAULT_LABELS)
    stop, fused = threading.Event(), []

    def fuse_forever():
        k = updates
        while not stop.is_set():
            k += 1
            t = time.perf_counter()
            vmap.integrate(_moved(points, k, step), colors, features, confidence, float(k))
            fused.append(time.perf_counter() - t)

    thread = threading.Thread(target=fuse_forever)
    thread.start()
    waits, queries = [], []
    try:
        for _ in range(10):
            t = time.perf_counter()
            with vmap.lock:
                waits.append(time.perf_counter() - t)
            t = time.perf_counter()
            vmap.instances(lambda f: perception.feature_relevance(f, "sofa", labels), "sofa")
            queries.append(time.perf_counter() - t)
    finally:
        stop.set()
        thread.join()
    half = rss.get(1000)
    return {"updates": updates, "max_voxels": max_voxels, "most_voxels": most,
            "evicted": vmap.evicted, "free_space": free_space, "cleared": vmap.cleared,
            "points_per_update": int(len(points)),
            "fusion_ms": {m: 1000 * v for m, v in at.items()},
            "fusion_ratio_to_first": {m: v / first for m, v in at.items()},
            "fusion_ms_max": 1000 * max(seconds),
            "rss_mib": {m: v / 2**20 for m, v in rss.items()},
            "rss_growth_1000_to_end": (rss[updates] / half - 1.0) if half else None,
            "query_ms_during_fusion": 1000 * float(np.median(queries)),
            "lock_wait_ms_max": 1000 * max(waits),
            "fusion_update_ms_max_meanwhile": 1000 * max(fused) if fused else 0.0}


def report(r: Dict[str, object]) -> str:
    lines = [f"{r['updates']} fused reconstructions of {r['points_per_update']} points, "
             f"max_voxels {r['max_voxels']}: at most {r['most_voxels']} voxels "
             f"(never above the bound), {r['evicted']} evicted; free-space clearing "
             + (f"on ({r['cleared']} voxels cleared)" if r.get("free_space") else "off"),
             "fusion per update (median of the 10 before): " + ", ".join(
                 f"{m}: {v:.1f} ms ({r['fusion_ratio_to_first'][m]:.2f}x)"
                 for m, v in r["fusion_ms"].items()) + f"; slowest {r['fusion_ms_max']:.0f} ms "
             "(an eviction batch)",
             "RSS: " + ", ".join(f"{m}: {v:.0f} MiB" for m, v in r["rss_mib"].items())]
    if r["rss_growth_1000_to_end"] is not None:
        lines[-1] += f"; growth from 1000 to {r['updates']}: {100 * r['rss_growth_1000_to_end']:+.1f} %"
    lines.append(f"query during fusion: {r['query_ms_during_fusion']:.0f} ms (median); longest wait "
                 f"for the map lock {r['lock_wait_ms_max']:.1f} ms, longest fusion update "
                 f"meanwhile {r['fusion_update_ms_max_meanwhile']:.1f} ms")
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="lsm-benchmark-map", description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=2000)
    parser.add_argument("--max-voxels", type=int, default=200_000)
    parser.add_argument("--voxel-size", type=float, default=0.05)
    parser.add_argument("--step", type=float, default=0.1, help="metres moved per update")
    parser.add_argument("--no-free-space", action="store_true",
                        help="fusion without free-space clearing (map_free_space: false)")
    a = parser.parse_args(argv)
    result = run(a.updates, a.max_voxels, a.voxel_size, a.step,
                 log=lambda m: print(m, file=sys.stderr, flush=True),
                 free_space=not a.no_free_space)
    print(report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
