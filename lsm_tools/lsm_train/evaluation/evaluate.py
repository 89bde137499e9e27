"""``lsm-eval``: the paper's evaluation protocol on procedural scenes or ScanNet-style data.

For every sample the context pair is reconstructed in one forward pass; the predicted scene
is aligned to the ground truth by the least-squares scale between predicted and true
pointmaps, then evaluated with ground-truth cameras (as the official training/test code):

* source views: label maps from rendered features (mIoU, accuracy over the classes) and
  depth (view 1: the pointmap's z; view 2: its pointmap moved into its own camera);
* target views: rendered RGB (PSNR, SSIM, LPIPS when local weights are given).

Prints a table shaped like the paper's Table 1, writes ``metrics.json`` and PNG panels.

    lsm-eval --data procedural --seeds 100000:100020 --out eval/
    lsm-eval --checkpoint my.pt --data scannet:/data/scene0000_00 --out eval/

``lsm-eval --suite`` instead reports the model beyond its training generator, the way the
node uses it, beside trivial baselines: held-out procedural rooms, an independent renderer,
real RGB-D frames (tuning and held-out splits) and any ``--real-data`` folders; see
:mod:`lsm_train.evaluation.generalisation`.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ..training.losses import gt_pointmaps, optimal_scale
from ..training.objective import render_views, scaled_relative_poses
from .metrics import LPIPSMetric, confusion_matrix, depth_scores, mean_of, psnr, segmentation_scores, ssim


def align_to_truth(out, batch: dict):
    """The protocol's alignment of a prediction to the ground truth.

    The least-squares scale between predicted and true pointmaps puts the true cameras in
    the prediction's units. Returns ``rel`` (B,V,4,4), every view's pose in view 1's frame,
    and ``depth`` (B,2,H,W), the predicted depth of both source views, each in its own
    camera (view 2's pointmap moved into view 2's camera)."""
    gt, valid = gt_pointmaps(batch["depth"], batch["K"], batch["c2w"])
    pred = torch.stack([out.pts1, out.pts2], dim=1)
    rel = scaled_relative_poses(batch["c2w"], optimal_scale(pred, gt[:, :2], valid[:, :2]))
    w2c = torch.linalg.inv(rel[:, 1])
    p2_own = torch.einsum("bij,bhwj->bhwi", w2c[:, :3, :3], out.pts2) + w2c[:, None, None, :3, 3]
    return rel, torch.stack([out.pts1[..., 2], p2_own[..., 2]], dim=1)


@torch.no_grad()
def evaluate_batch(model, batch: dict, class_embeddings: torch.Tensor, lpips: LPIPSMetric | None = None):
    """Metrics for one collated batch: a list of per-sample dicts and per-sample panels."""
    images, depth, labels, K = (batch[k] for k in ("images", "depth", "labels", "K"))
    B, V, _, H, W = images.shape
    model.eval()
    t0 = time.perf_counter()
    out = model(images[:, 0], images[:, 1])
    seconds = (time.perf_counter() - t0) / B
    rel, pred_depth = align_to_truth(out, batch)
    rows, panels = [], []
    C = class_embeddings.shape[0]
    for b in range(B):
        r = render_views(out.gaussians[b], K[b], rel[b], W, H)
        feats = model.expand_features(r.features.permute(0, 3, 1, 2))  # (V,D,H/2,W/2)
        feats = torch.nn.functional.interpolate(feats, size=(H, W), mode="bilinear")
        sim = torch.einsum("vdhw,cd->vchw", torch.nn.functional.normalize(feats, dim=1),
                           class_embeddings.to(feats.dtype))
        pred_labels = sim.argmax(dim=1)  # (V,H,W)
        row = {"seconds_per_pair": seconds}
        seg = segmentation_scores(confusion_matrix(pred_labels[:2], labels[b, :2], C))
        row.update(source_miou=seg["miou"], source_accuracy=seg["accuracy"])
        if V > 2:
            seg_t = segmentation_scores(confusion_matrix(pred_labels[2:], labels[b, 2:], C))
            row.update(target_miou=seg_t["miou"], target_accuracy=seg_t["accuracy"])
        row.update(depth_scores(pred_depth[b], depth[b, :2]))
        tgt = slice(2, V) if V > 2 else slice(0, 2)
        rgb = r.rgb.permute(0, 3, 1, 2).clamp(0, 1)
        row["psnr"] = float(np.mean([psnr(rgb[v], images[b, v]) for v in range(V)[tgt]]))
        row["ssim"] = ssim(rgb[tgt], images[b, tgt])
        row["lpips"] = lpips(rgb[tgt], images[b, tgt]) if lpips is not None else None
        row["source_psnr"] = float(np.mean([psnr(rgb[v], images[b, v]) for v in range(2)]))
        rows.append(row)
        panels.append({"images": images[b], "rgb": rgb, "depth": r.depth, "pred_labels": pred_labels,
                       "labels": labels[b], "gt_depth": depth[b]})
    return rows, panels


def save_panel(panel: dict, path, class_count: int) -> None:
    """One PNG row per view: input, rendered RGB, rendered depth, predicted labels, GT labels."""
    import cv2

    from lsm.semantics.labels import colorize

    def depth_img(d):
        d = d.float().cpu().numpy()
        v = d[d > 0]
        lo, hi = (np.percentile(v, 2), np.percentile(v, 98)) if v.size else (0, 1)
        x = np.clip((d - lo) / max(hi - lo, 1e-6), 0, 1)
        return cv2.applyColorMap((255 * (1 - x)).astype(np.uint8), cv2.COLORMAP_TURBO)[..., ::-1]

    def rgb(t):
        return (t.permute(1, 2, 0).clamp(0, 1).cpu().numpy() * 255).astype(np.uint8)

    rows = []
    for v in range(panel["images"].shape[0]):
        lab = panel["labels"][v].cpu().clone()
        lab[(lab < 0) | (lab >= class_count)] = -1  # ignore -> black
        rows.append(np.concatenate([
            rgb(panel["images"][v]), rgb(panel["rgb"][v]), depth_img(panel["depth"][v]),
            colorize(panel["pred_labels"][v].cpu(), num_labels=class_count).numpy(),
            colorize(lab, num_labels=class_count).numpy()], axis=1))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(np.concatenate(rows, axis=0), cv2.COLOR_RGB2BGR))


SUMMARY_KEYS = ("source_miou", "source_accuracy", "abs_rel", "tau", "psnr", "ssim", "lpips",
                "seconds_per_pair")


def summarise(rows: list) -> dict:
    return {k: (mean_of(rows, k) if any(r.get(k) is not None for r in rows) else None) for k in SUMMARY_KEYS}


def format_table(summary: dict, name: str) -> str:
    def f(v, pct=False):
        if v is None:
            return "n/a"
        return f"{100 * v:.2f}" if pct else f"{v:.4f}"

    head = "| model | time (s) | mIoU | Acc. | rel | tau (%) | PSNR | SSIM | LPIPS |"
    sep = "|---|---|---|---|---|---|---|---|---|"
    s = summary
    line = (f"| {name} | {f(s['seconds_per_pair'])} | {f(s['source_miou'])} | {f(s['source_accuracy'])} | "
            f"{f(s['abs_rel'])} | {f(s['tau'], True)} | {f(s['psnr'])} | {f(s['ssim'])} | {f(s['lpips'])} |")
    return "\n".join([head, sep, line])


def parse_seeds(spec: str) -> list:
    if ":" in spec:
        a, b = spec.split(":")
        return list(range(int(a), int(b)))
    return [int(x) for x in spec.split(",") if x]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="lsm-eval", description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", default="", help="lsm_ros checkpoint ('' = embedded model)")
    p.add_argument("--data", default="procedural", help="procedural | folder:PATH | scannet:PATH")
    p.add_argument("--seeds", default="100000:100016", help="procedural sample indices, a:b or a,b,c")
    p.add_argument("--out", default="eval")
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--panels", type=int, default=4, help="PNG panels to write")
    p.add_argument("--lpips-weights", default="")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--suite", action="store_true",
                   help="generalisation report: in domain, independent renderer, real RGB-D")
    p.add_argument("--pairs", type=int, default=12, help="--suite: pairs per synthetic source")
    p.add_argument("--real-data", action="append", default=[],
                   help="--suite: an extra ScanNet-style RGB-D folder (evaluation only; repeatable)")
    p.add_argument("--network-pose", action="store_true",
                   help="--suite: keep the network's poses (node parameter two_view_pose false)")
    p.add_argument("--no-depth-pose", action="store_true",
                   help="--suite: with the robot's depth, do not refine the pose on it "
                        "(node parameter depth_pose false)")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    if a.suite:
        return suite_main(a)
    from lsm.checkpoint import load_model

    from ..data import dataset as ds
    from ..data.sample import CLASS_NAMES
    model = load_model(a.checkpoint or None)
    size = model.config.image_size
    if a.data == "procedural":
        base = ds.ProceduralDataset(num_samples=10 ** 9, seed=0, size=size)
        items = [base[i] for i in parse_seeds(a.seeds)]
    else:
        from ..training.train import build_dataset

        dataset, _ = build_dataset(a.data, size, 0, 0)
        items = [dataset[i] for i in range(len(dataset))]
    if not items:
        raise SystemExit("no samples to evaluate")
    class_names = list(CLASS_NAMES)
    emb = model.text_encoder().encode(class_names)
    lp = LPIPSMetric(a.lpips_weights or None)
    out = Path(a.out)
    rows, n_panels = [], 0
    for i in range(0, len(items), a.batch_size):
        batch = ds.collate(items[i:i + a.batch_size])
        r, panels = evaluate_batch(model, batch, emb, lp)
        rows += r
        for pnl in panels:
            if n_panels < a.panels:
                save_panel(pnl, out / f"panel_{n_panels:03d}.png", len(class_names))
                n_panels += 1
    summary = summarise(rows)
    name = f"lsm_ros {model.config.name}"
    table = format_table(summary, name)
    print(table)
    if not lp.available:
        print(f"LPIPS: not computed -- {lp.reason}")
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps({"model": name, "data": a.data, "summary": summary,
                                                  "samples": rows, "lpips_note": lp.reason}, indent=2))
    return 0


def suite_main(a) -> int:
    from lsm.perception import Perception
    from lsm.specs import WeightSources

    from . import log_to_stderr, print_and_save
    from .generalisation import report, run_suite

    perception = Perception.load(WeightSources(checkpoint=a.checkpoint))
    summaries = run_suite(perception, pairs=a.pairs, real_data=a.real_data, log=log_to_stderr,
                          two_view_pose=not a.network_pose, depth_pose=not a.no_depth_pose)
    poses = "the network's poses" if a.network_pose else "two-view poses where supported"
    poses += "; with depth: " + ("not refined on it" if a.no_depth_pose else "refined on it")
    text = (f"model: {a.checkpoint or 'embedded tiny'}; every pair through lsm.Perception as "
            f"the node runs it ({poses}); medians over pairs, baselines in brackets\n\n"
            + report(summaries))
    print_and_save(summaries, text, Path(a.out), "suite.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
