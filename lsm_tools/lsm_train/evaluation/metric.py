"""``lsm-eval-metric``: how well the robot's sensors make a model's output metric, on held-out
procedural pairs with known truth (what lsm.metric and the node's sensor inputs do).

For each pair (two views of a room, 640x480): relative rotation error and focal with and
without known intrinsics; the scale (metres per model unit) from each source against the
oracle scale (the median of true over predicted depth on view 0's pixels); the metric depth
error after scaling; and the depth of a cloud fused with a depth image that has holes.

* stereo, rectified: a second camera 12 cm to the right (rendered), dense block matching;
* stereo, TF: the pair's second view with its true relative pose, triangulated matches;
* odometry: keyframes k and k + 4 of a smooth camera path with the true relative pose;
* depth: view 0's true depth image; fusion: the same with 10 % of its pixels invalid.

Prints a table with trivial baselines (identity rotation, best constant depth) and writes
``metric.json``. Usage: ``lsm-eval-metric --pairs 24 [--checkpoint F] [--out DIR]``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import torch

from lsm_train.evaluation import log_to_stderr, print_and_save

SEED0 = 300000  # held out: training items come from other seeds
SIZE = (480, 640)
RIG_BASELINE = 0.12


def _oracle_scale(rec, depth: np.ndarray) -> float:
    """The scale with the lowest depth AbsRel of view 0 against the truth (model pixels, rec
    in model units): mean |s p - t| / t = mean (p / t) |s - t / p| is smallest at the
    median of t / p weighted by p / t."""
    true = rec.transforms[0].to_model(depth.astype(np.float32), nearest=True, fill=float("nan"))
    pred = rec.pointmaps[0, ..., 2].numpy()
    ok = np.isfinite(true) & (true > 0) & (pred > 0)
    ratio, weight = true[ok] / pred[ok], pred[ok] / true[ok]
    order = np.argsort(ratio)
    cumulative = np.cumsum(weight[order])
    return float(ratio[order][np.searchsorted(cumulative, 0.5 * cumulative[-1])])


def _abs_rel(rec, depth: np.ndarray, scale: float) -> float:
    true = rec.transforms[0].to_model(depth.astype(np.float32), nearest=True, fill=float("nan"))
    pred = rec.pointmaps[0, ..., 2].numpy() * scale
    ok = np.isfinite(true) & (true > 0)
    return float(np.mean(np.abs(pred[ok] - true[ok]) / true[ok]))


def _rotation_error(rec, truth: np.ndarray) -> float:
    from lsm.geometry.pose_metrics import rotation_angle_deg

    est = (torch.linalg.inv(rec.c2w[0].double()) @ rec.c2w[1].double()).numpy()
    return float(rotation_angle_deg(est[:3, :3], truth[:3, :3]))


def evaluate(perception, pairs: int = 24, log=print) -> Dict[str, object]:
    from lsm.metric import PairSensors
    from lsm.specs import MetricSpec
    from lsm_train.data.procedural import generate_room, generate_sample, generate_sequence, render_view

    rows: List[Dict[str, float]] = []
    model_units = MetricSpec(scale_source="none", depth_fusion="off")
    for k in range(pairs):
        seed = SEED0 + k
        sample = generate_sample(seed, size=SIZE)
        a, b = sample.context
        truth = np.linalg.inv(a.c2w) @ b.c2w
        row: Dict[str, float] = {"seed": seed}
        plain = perception.reconstruct([(a.image, b.image)])[0]
        known = perception.reconstruct([(a.image, b.image)], sensors=[PairSensors(K=(a.K, b.K))],
                                       metric=model_units)[0]
        star = _oracle_scale(plain, a.depth)
        row.update(rotation_estimated_K=_rotation_error(plain, truth),
                   rotation_known_K=_rotation_error(known, truth),
                   rotation_identity=float(np.degrees(np.arccos(np.clip(
                       (np.trace(truth[:3, :3]) - 1) / 2, -1, 1)))),
                   focal_true=float(plain.transforms[0].intrinsics_to_model(a.K)[0, 0]),
                   focal_estimated=plain.focal, focal_used_known=known.focal,
                   oracle_abs_rel=_abs_rel(plain, a.depth, star))
        true_z = a.depth[np.isfinite(a.depth) & (a.depth > 0)]
        row["constant_abs_rel"] = float(np.mean(np.abs(np.median(true_z) - true_z) / true_z))

        def scale_row(name, pair, sensors, source, depth, fusion="scale_only"):
            """This source's scale against the oracle of the same (unscaled) result."""
            rec = perception.reconstruct([pair], sensors=[sensors], metric=MetricSpec(
                scale_source=source, depth_fusion=fusion))[0]
            if rec.scale is None:
                row[f"scale_error_{name}"] = row[f"abs_rel_{name}"] = float("nan")
                return
            base = rec.scaled(1.0 / rec.scale, "none")
            row[f"scale_error_{name}"] = rec.scale / _oracle_scale(base, depth) - 1.0
            row[f"abs_rel_{name}"] = _abs_rel(base, depth, rec.scale)

        # stereo, rectified rig: a second camera RIG_BASELINE to the right
        room = generate_room(sample.meta["room_seed"])
        right_pose = a.c2w @ np.array([[1, 0, 0, RIG_BASELINE], [0, 1, 0, 0], [0, 0, 1, 0],
                                       [0, 0, 0, 1.0]])
        right = render_view(room, a.K, right_pose, SIZE).rgb
        scale_row("stereo_rectified", (a.image, right),
                  PairSensors(K=(a.K, a.K), rectified_baseline=RIG_BASELINE), "stereo", a.depth)
        scale_row("stereo_tf", (a.image, b.image),
                  PairSensors(K=(a.K, b.K), relative_pose=truth, pose_source="stereo"), "stereo",
                  a.depth)
        # only the baseline length, no K: the network's own camera distance
        scale_row("stereo_baseline_only", (a.image, b.image),
                  PairSensors(rectified_baseline=float(np.linalg.norm(truth[:3, 3]))), "stereo",
                  a.depth, fusion="off")
        scale_row("depth", (a.image, b.image), PairSensors(K=(a.K, b.K), depth=(a.depth, None)),
                  "depth", a.depth)
        # odometry: keyframes of a smooth path, relative pose from the true poses
        frames = generate_sequence(seed, 5, size=SIZE)
        f0, f1 = frames[4], frames[0]  # the newer keyframe is the reference
        scale_row("odometry", (f0.image, f1.image),
                  PairSensors(K=(f0.K, f1.K), relative_pose=np.linalg.inv(f0.c2w) @ f1.c2w,
                              pose_source="odometry"), "odometry", f0.depth)
        # fusion: depth with 10 % holes replaces the predicted depth; the model fills the holes
        holes = np.random.default_rng(seed).random(a.depth.shape) < 0.1
        holed = np.where(holes, np.nan, a.depth).astype(np.float32)
        fused = perception.reconstruct([(a.image, b.image)],
                                       sensors=[PairSensors(K=(a.K, b.K), depth=(holed, None))],
                                       metric=MetricSpec(scale_source="depth",
                                                         depth_fusion="replace"))[0]
        cloud = perception.point_cloud(fused)
        true_m = fused.transforms[0].to_model(a.depth.astype(np.float32), nearest=True,
                                              fill=float("nan"))
        hole_m = fused.transforms[0].to_model(holes.astype(np.uint8), nearest=True, fill=0) > 0
        z = fused.pointmaps[0, ..., 2].numpy()
        valid = np.isfinite(true_m) & ~hole_m
        row["fused_abs_rel_valid"] = float(np.mean(np.abs(z[valid] - true_m[valid]) / true_m[valid]))
        filled = np.isfinite(true_m) & hole_m
        row["fused_abs_rel_holes"] = float(np.mean(np.abs(z[filled] - true_m[filled]) / true_m[filled]))
        row["fused_cloud_points"] = int(len(cloud.points))
        rows.append(row)
        log(f"pair {k + 1}/{pairs}: rotation {row['rotation_estimated_K']:.1f} / "
            f"{row['rotation_known_K']:.1f} deg (estimated / known K); scale error "
            + ", ".join(f"{n} {100 * row[f'scale_error_{n}']:+.1f} %" for n in
                        ("stereo_rectified", "stereo_tf", "odometry", "depth")))
    return summarise(rows)


def summarise(rows: List[Dict[str, float]]) -> Dict[str, object]:
    def med(key, absolute=False):
        v = np.array([r[key] for r in rows], dtype=np.float64)
        v = np.abs(v) if absolute else v
        return float(np.nanmedian(v)) if np.isfinite(v).any() else None

    summary = {"pairs": len(rows),
               "rotation_deg": {"estimated_K": med("rotation_estimated_K"),
                                "known_K": med("rotation_known_K"),
                                "identity": med("rotation_identity")},
               "focal_used_equals_given": all(abs(r["focal_used_known"] - r["focal_true"]) < 1e-3
                                              for r in rows),
               "focal_estimated_error": med("focal_estimated", False) and float(np.median(
                   [r["focal_estimated"] / r["focal_true"] - 1 for r in rows])),
               "scale_error_median_abs": {n: med(f"scale_error_{n}", True) for n in
                                          ("stereo_rectified", "stereo_tf", "stereo_baseline_only",
                                           "odometry", "depth")},
               "metric_abs_rel": {n: med(f"abs_rel_{n}") for n in
                                  ("stereo_rectified", "stereo_tf", "stereo_baseline_only",
                                   "odometry", "depth")},
               "oracle_scale_abs_rel": med("oracle_abs_rel"),
               "best_constant_depth_abs_rel": med("constant_abs_rel"),
               "fused_abs_rel": {"valid_pixels": med("fused_abs_rel_valid"),
                                 "holes_filled_by_the_model": med("fused_abs_rel_holes")},
               "rows": rows}
    return summary


def report(s: Dict[str, object]) -> str:
    r, e, a = s["rotation_deg"], s["scale_error_median_abs"], s["metric_abs_rel"]
    pct = lambda x: "n/a" if x is None else f"{100 * x:.1f} %"  # noqa: E731
    lines = [f"held-out pairs: {s['pairs']} (seeds from {SEED0}), 640x480",
             f"relative rotation error (median): estimated K {r['estimated_K']:.2f} deg, "
             f"known K {r['known_K']:.2f} deg, identity {r['identity']:.2f} deg",
             f"known K used as given: {s['focal_used_equals_given']}; the pointmaps' own focal is "
             f"off by {pct(s['focal_estimated_error'])} (median)",
             "", "| scale source | scale error (median abs) | depth AbsRel after scaling |",
             "|---|---:|---:|"]
    for name in ("depth", "stereo_rectified", "stereo_tf", "odometry", "stereo_baseline_only"):
        lines.append(f"| {name} | {pct(e[name])} | {a[name]:.3f} |" if a[name] is not None
                     else f"| {name} | {pct(e[name])} | n/a |")
    lines += [f"| oracle scale (lowest AbsRel) | 0 | {s['oracle_scale_abs_rel']:.3f} |",
              f"| best constant depth (baseline) | | {s['best_constant_depth_abs_rel']:.3f} |", "",
              f"depth fusion 'replace' (10 % holes): cloud AbsRel {s['fused_abs_rel']['valid_pixels']:.4f}"
              f" on valid pixels, {s['fused_abs_rel']['holes_filled_by_the_model']:.3f} in the holes "
              "(filled by the model)"]
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="lsm-eval-metric", description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=24)
    parser.add_argument("--checkpoint", default="", help="model file ('' = the embedded model)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    parser.add_argument("--out", type=Path, default=None, help="folder for metric.json")
    a = parser.parse_args(argv)
    from lsm.perception import Perception, WeightSources

    perception = Perception.load(WeightSources(checkpoint=a.checkpoint), device="cpu",
                                 cpu_threads=a.threads)
    summary = evaluate(perception, a.pairs, log=log_to_stderr)
    print_and_save(summary, report(summary), a.out, "metric.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
