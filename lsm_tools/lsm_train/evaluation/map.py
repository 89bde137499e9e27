"""``lsm-eval-map``: how well the persistent map (lsm.mapping) finds objects, on a held-out
procedural room with known truth, the way the node builds it from an RGB-D camera with
odometry (metric scale from depth, poses from TF).

A camera sweeps the room on a smooth arc (``--keyframes`` keyframes ``--spacing`` m apart);
each keyframe pairs with the previous one (mono mode), is reconstructed with the true
intrinsics and depth, placed in the world frame by its true pose and fused into a
:class:`lsm.mapping.VoxelMap`. Then the map is queried for every furniture class and a
synonym; per class it reports the distance from the nearest returned instance's centroid to
the true object's centre (the centre of its bounding box), and every instance whose centroid
is in no true box of that class (grown by 0.2 m) as false. Baseline: the centre of the whole
map as a guess for every object.

The room seeds are used directly as room seeds; training rooms come from hashed sample seeds
(``lsm_train.data.procedural.cameras._sample_seed``), so these rooms are held out.

``--no-odometry``: a handheld RGB-D camera without TF, as the node's mono mode maps it:
each pair's pose comes from its depth images (lsm.geometry.depth_pose; ``--no-depth-pose``:
the image pose made metric instead) and keyframes are chained (lsm.mapping.MapFusion); the
chain's origin, the first pair's reference camera, is placed at its true pose for scoring,
so every error of the chain shows.

Usage: ``lsm-eval-map [--seed 300013] [--keyframes 30] [--checkpoint F] [--no-odometry
[--no-depth-pose]] [--out DIR]``.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from lsm_train.evaluation import log_to_stderr, print_and_save

SEED = 300013  # a held-out room with a sofa, a bed, a table and a chair
SIZE = (240, 320)
CLASSES = ("sofa", "bed", "table", "chair")
SYNONYMS = {"couch": "sofa"}
FALSE_MARGIN = 0.2  # m around a true box where an instance still counts as that object


def object_boxes(room) -> Dict[str, List[Dict[str, np.ndarray]]]:
    """True world boxes per class name: centre, corners (8, 3), axis-aligned bounds."""
    from lsm_train.data import CLASS_NAMES

    out: Dict[str, List[Dict[str, np.ndarray]]] = {}
    for obj in room.objects:
        c, s = np.cos(obj.yaw), np.sin(obj.yaw)
        R = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])
        corners = np.array([[x, y, z] for x in (obj.lo[0], obj.hi[0]) for y in (obj.lo[1], obj.hi[1])
                            for z in (obj.lo[2], obj.hi[2])]) @ R.T + obj.origin
        out.setdefault(CLASS_NAMES[obj.label], []).append(
            {"center": R @ ((obj.lo + obj.hi) / 2) + obj.origin, "corners": corners,
             "lo": corners.min(0), "hi": corners.max(0)})
    return out


def sweep(seed: int, keyframes: int, spacing: float, size=SIZE, step: float = 0.04):
    """Keyframe views of a smooth arc through room ``seed``: every ``spacing / step``-th
    frame of an arc with frames ``step`` m apart (the arc's turn rate stays bounded)."""
    from lsm_train.data.procedural import generate_room, render_view
    from lsm_train.data.procedural.cameras import intrinsics_from_fov, sequence_poses

    every = max(1, int(round(spacing / step)))
    room = generate_room(seed)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x5E0]))
    poses = sequence_poses(room, rng, (keyframes - 1) * every + 1, step=step)[::every]
    K = intrinsics_from_fov(65.0, size)
    return room, [render_view(room, K, c2w, size).to_view(K, c2w) for c2w in poses]


def build_map(perception, views, voxel_size: float = 0.05, max_voxels: int = 200_000,
              frame: str = "odom", log=print, free_space: bool = True, odometry: bool = True,
              depth_pose: bool = True):
    """Fuse keyframe pairs (k, k - 1) of ``views`` as the node does with depth and TF, or
    without ``odometry`` by chaining the pairs' own poses (map frame: views[1]'s camera)."""
    from lsm.mapping import MapFusion, VoxelMap
    from lsm.metric import PairSensors
    from lsm.specs import MetricSpec

    dim = perception.model.config.semantic.feature_dim
    if not odometry:
        frame = MapFusion.CHAIN_FRAME
    fusion = MapFusion(VoxelMap(voxel_size, max_voxels, dim, frame), chain=not odometry,
                       free_space=free_space)
    seconds = []
    for k in range(1, len(views)):
        a, b = views[k], views[k - 1]  # the newer keyframe is the reference
        known = dict(relative_pose=np.linalg.inv(a.c2w) @ b.c2w, pose_source="odometry") if odometry else {}
        rec = perception.reconstruct([(a.image, b.image)], sensors=[PairSensors(
            K=(a.K, b.K), depth=(a.depth, b.depth), **known)], metric=MetricSpec(depth_pose=depth_pose))[0]
        if odometry:
            rec = rec.transformed(a.c2w, frame)
        t0 = time.perf_counter()
        fusion.add(rec, perception.map_points, (float(k), float(k - 1)))
        seconds.append(time.perf_counter() - t0)
        log(f"pair {k}/{len(views) - 1}: scale {rec.scale_source}, {len(fusion.map)} voxels")
    return fusion.map, seconds


def evaluate(perception, seed: int = SEED, keyframes: int = 30, spacing: float = 0.24,
             labels=None, log=print, free_space: bool = True, odometry: bool = True,
             depth_pose: bool = True) -> Dict[str, object]:
    from lsm.specs import DEFAULT_LABELS

    labels = list(labels or DEFAULT_LABELS)
    room, views = sweep(seed, keyframes, spacing)
    vmap, seconds = build_map(perception, views, log=log, free_space=free_space,
                              odometry=odometry, depth_pose=depth_pose)
    truth = object_boxes(room)
    # the chain's frame is the first pair's reference camera, placed at its true pose
    to_world = np.eye(4) if odometry else np.asarray(views[1].c2w, np.float64)

    def world(p):
        return np.asarray(p, np.float64) @ to_world[:3, :3].T + to_world[:3, 3]

    centre = world(vmap.snapshot()["position"].mean(0))
    rows = {}
    for query in CLASSES + tuple(SYNONYMS):
        cls = SYNONYMS.get(query, query)
        found, best = vmap.instances(lambda f: perception.feature_relevance(f, query, labels),
                                     query, threshold=0.5)
        boxes = truth.get(cls, [])
        row = {"class": cls, "instances": len(found), "best_relevance": best,
               "true_objects": len(boxes)}
        centroids = [world(i.centroid) for i in found]
        if boxes:
            errors = [min(float(np.linalg.norm(c - b["center"])) for b in boxes)
                      for c in centroids]
            row["nearest_instance_error_m"] = min(errors) if errors else None
            row["top_instance_error_m"] = errors[0] if errors else None
            row["map_centre_error_m"] = min(float(np.linalg.norm(centre - b["center"]))
                                            for b in boxes)
        row["false_instances"] = sum(
            not any(np.all(c >= b["lo"] - FALSE_MARGIN)
                    and np.all(c <= b["hi"] + FALSE_MARGIN) for b in boxes)
            for c in centroids)
        row["instance_centroids"] = [[round(float(v), 3) for v in c] for c in centroids]
        rows[query] = row
        log(f"{query}: {row}")
    return {"seed": seed, "keyframes": keyframes, "spacing_m": spacing, "size": list(SIZE),
            "voxels": len(vmap), "voxel_size": vmap.voxel_size, "free_space": free_space,
            "poses": ("odometry (the truth, as TF gives it)" if odometry else
                      "chained pair poses, no TF (" + ("refined on the depth images" if depth_pose
                                                       else "the image pose made metric") + ")"),
            "cleared_voxels": vmap.cleared,
            "fusion_ms_median": 1000 * float(np.median(seconds)), "queries": rows}


def report(s: Dict[str, object]) -> str:
    def metres(x):
        return "none" if x is None else f"{x:.2f}"

    lines = [f"held-out room {s['seed']}: {s['keyframes']} RGB-D keyframes {s['spacing_m']} m "
             f"apart ({s['size'][1]}x{s['size'][0]}), poses: {s.get('poses', 'odometry')}; map "
             f"{s['voxels']} voxels of {s['voxel_size']} m, fusion {s['fusion_ms_median']:.1f} "
             "ms per pair (median), free-space clearing "
             + (f"on ({s['cleared_voxels']} voxels cleared)" if s.get("free_space") else "off"),
             "",
             "| query | instances | nearest instance to the true centre (m) | top instance (m) "
             "| map centre baseline (m) | false instances | best relevance |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for query, r in s["queries"].items():
        lines.append(f"| {query} | {r['instances']} | {metres(r.get('nearest_instance_error_m'))} "
                     f"| {metres(r.get('top_instance_error_m'))} "
                     f"| {metres(r.get('map_centre_error_m'))} | {r['false_instances']} "
                     f"| {r['best_relevance']:.2f} |")
    hits = sum((s["queries"][c].get("nearest_instance_error_m") or 99) <= 0.20
               for c in ("sofa", "bed", "table"))
    lines += ["", f"sofa, bed, table with an instance within 0.20 m of the true centre: {hits} of 3"]
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="lsm-eval-map", description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--keyframes", type=int, default=30)
    parser.add_argument("--spacing", type=float, default=0.24, help="metres between keyframes")
    parser.add_argument("--checkpoint", default="", help="model file ('' = the embedded model)")
    parser.add_argument("--out", type=Path, default=None, help="folder for map_eval.json")
    parser.add_argument("--no-free-space", action="store_true",
                        help="fuse without free-space clearing (the node's map_free_space: false)")
    parser.add_argument("--no-odometry", action="store_true",
                        help="no TF: chain the pairs' own poses (a handheld RGB-D camera in mono mode)")
    parser.add_argument("--no-depth-pose", action="store_true",
                        help="with --no-odometry: do not refine the pairs' poses on the depth images")
    a = parser.parse_args(argv)
    from lsm.perception import Perception, WeightSources

    perception = Perception.load(WeightSources(checkpoint=a.checkpoint), device="cpu")
    summary = evaluate(perception, a.seed, a.keyframes, a.spacing, log=log_to_stderr,
                       free_space=not a.no_free_space, odometry=not a.no_odometry,
                       depth_pose=not a.no_depth_pose)
    print_and_save(summary, report(summary), a.out, "map_eval.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
