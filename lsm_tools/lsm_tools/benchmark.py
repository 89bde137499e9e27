"""``lsm-benchmark``: where the time goes in one LSM reconstruction, and how it scales.

Measures, on CPU (and on CUDA when present):

* per-stage time of one image pair, camera-sized (480x640) RGB in: preprocessing, encoder,
  decoder, pointmap heads (DPT), 2-D semantic features, point aggregation (PTv3), Gaussian
  head, camera recovery, rendering both views (colour + features), label maps; with ROS
  installed also image conversion and output message building/publishing (measured by
  :mod:`lsm_tools.benchmark_node`, imported lazily so that ``lsm`` stays ROS-free);
* pairs/s versus batch size; time, FLOPs and peak memory versus input resolution (number of
  Gaussians = 2 x S x S); the renderer alone versus the number of Gaussians;
* the model's FLOPs per pair (``torch.utils.flop_counter``: matmuls, convolutions,
  attention) against the measured fp32 matmul peak of the device (efficiency);
* our pure-torch renderer against a reference built from ``gsplat.cuda._torch_impl``
  (gsplat's EWA projection and tile intersection; the per-pixel composition of gsplat's
  forward kernel, vectorised) on the same scene: time and largest difference.

Stage times are medians over ``--repeats`` runs after one warm-up, wall-clock seconds;
on CUDA every stage boundary synchronises.  Writes ``benchmark.json``, ``benchmark.md`` (also
printed) and ``benchmark.png`` into ``--out``.

With ``--paper --official PATH`` the same run also times the official NVlabs/LSM forward pass
(a local checkout; :mod:`lsm_tools.official_benchmark`, in its own process, on CPU) with the paper
model's weights and pair, and prints ours / official for time and peak memory.

With ``--live`` the same run also starts lsm_node over DDS (:mod:`lsm_tools.live_benchmark`:
defaults, bf16 and the pre-freshness defaults at 4 and 30 Hz offered: published pairs/s,
latency publish -> cloud, staleness) and adds its table.

Usage: ``lsm-benchmark --quick`` (a few minutes on 2 CPU cores) or
``python -m lsm_tools.benchmark --device cuda --out results/``.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import torch

STAGES = [  # (key, label) in pipeline order
    ("image_conversion", "image conversion (ROS Image -> RGB)"),
    ("preprocess", "preprocessing (crop, resize)"),
    ("encoder", "encoder (ViT, both views)"),
    ("decoder", "decoder (cross-view, symmetric)"),
    ("heads", "pointmap heads (DPT)"),
    ("semantic", "2-D semantic features"),
    ("point_aggregation", "point aggregation (PTv3 + fusion)"),
    ("gaussian_head", "Gaussian head"),
    ("network_other", "network glue (tokens, normalisation)"),
    ("cameras", "camera recovery (focal + PnP)"),
    ("pose", "two-view pose + confidence (SIFT, optical flow, essential matrix)"),
    ("rendering", "rendering (view 0: colour, depth, features)"),
    ("labels", "labels (per Gaussian + view-0 label map)"),
    ("messages", "output arrays + message building"),
    ("publishing", "publishing"),
]
MODEL_STAGES = ("preprocess", "encoder", "decoder", "heads", "semantic", "point_aggregation",
                "gaussian_head", "network_other", "cameras", "pose")
NODE_STAGES = ("image_conversion", "messages", "publishing")
from lsm.specs import DEFAULT_LABELS  # noqa: E402  (the node's default vocabulary)

# ------------------------------------------------------------------ timing helpers


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median(xs: Sequence[float]) -> float:
    return float(statistics.median(xs)) if xs else float("nan")


@contextlib.contextmanager
def stage_timers(model, device: torch.device, totals: Dict[str, float]):
    """Time the model's stages by wrapping its submodule calls (the model code is unchanged).

    Adds seconds to ``totals`` under encoder, decoder, heads, semantic, point_aggregation and
    gaussian_head.  The wrappers are instance attributes, removed on exit.
    """
    net = model.dust3r.dust3r
    targets = [(net, "encode", "encoder"), (net, "decode", "decoder"),
               (net.downstream_head1, "forward", "heads"), (net.downstream_head2, "forward", "heads"),
               (model.lseg_feature_extractor, "forward", "semantic"),
               (model.point_transformer, "forward", "point_aggregation"),
               (model.gaussian_head, "forward", "gaussian_head")]

    def wrap(fn: Callable, key: str) -> Callable:
        def timed(*args, **kwargs):
            _sync(device)
            t0 = time.perf_counter()
            out = fn(*args, **kwargs)
            _sync(device)
            totals[key] = totals.get(key, 0.0) + time.perf_counter() - t0
            return out
        return timed

    for obj, name, key in targets:
        setattr(obj, name, wrap(getattr(obj, name), key))
    try:
        yield totals
    finally:
        for obj, name, _ in targets:
            obj.__dict__.pop(name, None)


class PeakMemory:
    """Peak memory of a block.

    CUDA: the allocator's peak (``peak_bytes``) and its rise over the allocation at entry
    (``working_bytes``).  CPU (Linux): freed heap memory is returned to the system
    (``malloc_trim``), the peak-RSS mark reset (``/proc/self/clear_refs``); ``peak_bytes``
    is the process' peak RSS inside the block (model, libraries and all), ``working_bytes``
    its rise over the RSS at entry.  Elsewhere: the lifetime peak RSS, working_bytes 0.
    """

    def __init__(self, device: torch.device):
        self.device = device
        self.peak_bytes = 0
        self.working_bytes = 0
        self._base = 0

    @staticmethod
    def _status(field: str) -> int:
        try:
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith(field + ":"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def __enter__(self) -> "PeakMemory":
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = int(torch.cuda.memory_allocated(self.device))
            return self
        with contextlib.suppress(Exception):
            import ctypes
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        with contextlib.suppress(OSError):
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
        self._base = self._status("VmRSS")
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            self.peak_bytes = int(torch.cuda.max_memory_allocated(self.device))
        else:
            self.peak_bytes = self._status("VmHWM")
        self.working_bytes = max(0, self.peak_bytes - self._base)


def count_flops(model, img1: torch.Tensor, img2: torch.Tensor) -> int:
    """FLOPs of one symmetric forward pass (as inference runs it), counted by torch (on
    aten's linear: the counter does not see oneDNN's op, which does the same products)."""
    from torch.utils.flop_counter import FlopCounterMode

    from lsm.model import cpu_linear

    with torch.no_grad(), cpu_linear.aten(), FlopCounterMode(display=False) as counter:
        model(img1, img2, symmetric=True)
    return int(counter.get_total_flops())


def matmul_peak(device: torch.device, n: int = 2048, repeats: int = 5) -> Dict[str, float]:
    """Best fp32 throughput of an n x n product (FLOP/s = 2 n^3 / time) through the route
    the model's large fixed-shape linear layers take (:mod:`lsm.model.cpu_linear`: oneDNN
    on an x86 CPU) and, on a CPU, through aten's BLAS (``torch.mm``) as well."""
    from lsm.model.cpu_linear import applies, onednn_linear

    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)

    def best_of(fn) -> float:
        with torch.no_grad():
            fn()
            _sync(device)
            best = math.inf
            for _ in range(repeats):
                t0 = time.perf_counter()
                fn()
                _sync(device)
                best = min(best, time.perf_counter() - t0)
        return best

    with torch.no_grad():
        onednn = applies(a, b)
    best = best_of(lambda: onednn_linear(a, b) if onednn else torch.mm(a, b))
    out = {"n": n, "seconds": best, "flops_per_s": 2.0 * n ** 3 / best,
           "route": "oneDNN" if onednn else "aten"}
    if onednn:
        out["aten_flops_per_s"] = 2.0 * n ** 3 / best_of(lambda: torch.mm(a, b))
    return out


# ------------------------------------------------------------------ inputs


def benchmark_pairs(n: int, size=(480, 640), seed: int = 7) -> List[tuple]:
    """``n`` camera-like RGB pairs (uint8 (H,W,3)) from one procedural room sequence."""
    from lsm_train.data.procedural import generate_sequence

    views = generate_sequence(seed, 2 * n, size)
    imgs = [_rgb_uint8(v) for v in views]
    return [(imgs[2 * i], imgs[2 * i + 1]) for i in range(n)]


def _rgb_uint8(view) -> np.ndarray:
    rgb = view.image if hasattr(view, "image") else view.rgb
    rgb = rgb.detach().cpu().numpy() if isinstance(rgb, torch.Tensor) else np.asarray(rgb)
    if rgb.ndim == 3 and rgb.shape[0] == 3 and rgb.shape[-1] != 3:
        rgb = rgb.transpose(1, 2, 0)
    if rgb.dtype != np.uint8:
        rgb = np.clip(np.round(rgb * 255.0), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(rgb)


@contextlib.contextmanager
def model_resolution(model, size: int):
    """Run the model's pipeline at ``size`` x ``size`` (any multiple of the patch size)."""
    old = model.config
    model.config = dataclasses.replace(old, image_size=int(size))
    try:
        yield model
    finally:
        model.config = old


# ------------------------------------------------------------------ measurements


def _render_and_label(perception, rec, labels, device, t: Dict[str, float]) -> None:
    """The node's render and label passes without ROS: view 0 rendered (colour, depth and
    features, kept for the label map), per-point labels and the view-0 label map."""
    t0 = time.perf_counter()
    perception.render_view(rec, 0)
    _sync(device)
    t1 = time.perf_counter()
    perception.point_labels(rec, list(labels))
    perception.label_map(rec, list(labels), 0)
    _sync(device)
    t["rendering"] = t1 - t0
    t["labels"] = time.perf_counter() - t1


def measure_stages(perception, pairs, device: torch.device, repeats: int,
                   labels: bool = True, ros: bool = True) -> Dict[str, object]:
    """Median seconds per stage of lsm_node's path for one pair (batch 1).

    With ``ros`` and ROS importable, image conversion, output building and publishing run
    through the node's own code (:mod:`lsm_tools.benchmark_node`, with the node's default
    output spec); otherwise only the core stages (rendering and labels as the node runs
    them) are timed. ``labels=False`` skips the label stages (no text encoder).
    """
    model = perception.model
    node_bench = None
    if ros and labels:
        try:
            from lsm_tools import benchmark_node as node_bench  # lazy: runs without ROS too
        except ImportError as exc:
            print(f"lsm-benchmark: ROS stages skipped ({exc})", file=sys.stderr)
    runs: Dict[str, List[float]] = {}
    extra: Dict[str, object] = {}
    cloud_only: List[float] = []  # the node's output path with no image subscriber
    try:
        for r in range(repeats + 1):  # run 0 is the warm-up
            pair = pairs[r % len(pairs)]
            t: Dict[str, float] = {}
            if node_bench is not None:
                pair = node_bench.convert_images(pair, t)
            timings: Dict[str, float] = {}
            with stage_timers(model, device, t):
                rec = perception.reconstruct([pair], timings=timings)[0]
            _sync(device)
            t["preprocess"] = timings["preprocess"]
            t["cameras"] = timings["cameras"]
            t["pose"] = timings["pose"]
            inner = sum(t.get(k, 0.0) for k in ("encoder", "decoder", "heads", "semantic",
                                                "point_aggregation", "gaussian_head"))
            t["network_other"] = max(0.0, timings["network"] - inner)
            if node_bench is not None:
                extra = node_bench.build_and_publish(perception, rec, t)
                cloud_only.append(node_bench.cloud_only_path(perception, rec))
            elif labels:
                _render_and_label(perception, rec, DEFAULT_LABELS, device, t)
            else:
                t0 = time.perf_counter()
                perception.render_view(rec, 0, features=False)
                _sync(device)
                t["rendering"] = time.perf_counter() - t0
            if r > 0:
                for k, v in t.items():
                    runs.setdefault(k, []).append(v)
    finally:
        if node_bench is not None:
            node_bench.shutdown()
    stages = {k: _median(v) for k, v in runs.items()}
    model_s = sum(stages.get(k, 0.0) for k in MODEL_STAGES)
    node_s = sum(stages.get(k, 0.0) for k in NODE_STAGES)
    return {
        "stages_s": stages,
        "model_s": model_s,
        "pipeline_s": sum(stages.values()),
        "node_overhead_s": node_s if node_bench is not None else None,
        "node_overhead_share_of_model": (node_s / model_s) if node_bench is not None else None,
        # per pair when nobody subscribes to the image outputs: the model, image conversion
        # and the cloud path (the node computes no render and no label image then)
        "pipeline_cloud_only_s": (model_s + stages.get("image_conversion", 0.0)
                                  + _median(cloud_only[1:])) if len(cloud_only) > 1 else None,
        "input_size": list(pairs[0][0].shape[:2]),
        "model_size": model.config.image_size,
        "gaussians": 2 * model.config.image_size ** 2,
        "camera_status": rec.camera_status,
        **extra,
    }


def measure_batches(model, pairs, device, batch_sizes, repeats) -> List[Dict[str, float]]:
    """Pairs/s of preprocessing + network + camera recovery for each batch size."""
    from lsm.inference import reconstruct_pairs

    rows = []
    for b in batch_sizes:
        batch = [pairs[i % len(pairs)] for i in range(b)]
        times = []
        for r in range(repeats + 1):
            _sync(device)
            t0 = time.perf_counter()
            reconstruct_pairs(model, batch)
            _sync(device)
            if r > 0:
                times.append(time.perf_counter() - t0)
        s = _median(times)
        rows.append({"batch": b, "seconds": s, "pairs_per_s": b / s})
    return rows


def _rotation_deg(a: torch.Tensor, b: torch.Tensor) -> float:
    R = a[:3, :3].T @ b[:3, :3]
    return math.degrees(math.acos(max(-1.0, min(1.0, (float(R.trace()) - 1.0) / 2.0))))


def measure_precisions(model, pairs, device: torch.device, repeats: int,
                       labels: Optional[Sequence[str]] = None) -> List[Dict[str, object]]:
    """Each precision that runs on ``device`` against fp32 on the same pairs, alternating
    within one run: seconds per pair (preprocessing + network + cameras) and the accuracy
    cost (pointmap distance relative to the fp32 point's range, depth AbsRel against fp32,
    share of Gaussians whose label changes, camera rotation difference). On a CPU where
    :mod:`lsm.model.cpu_linear` applies, also fp32 with the linear layers on aten's BLAS
    (:data:`ATEN_LINEAR`, the route before oneDNN), against the same fp32 reference."""
    from lsm.model import cpu_linear
    from lsm.perception import Perception, effective_precision
    from lsm.specs import PRECISIONS

    runs = {}
    for name in PRECISIONS:
        effective, note = effective_precision(name, str(device))
        if name == "fp32" or effective == name:
            runs[name] = Perception(model, name)
        else:
            runs.setdefault("skipped", []).append(f"{name}: {note}")
    if device.type == "cpu" and cpu_linear.available():  # the route before oneDNN
        runs[ATEN_LINEAR] = Perception(model, "fp32")
    times: Dict[str, List[float]] = {name: [] for name in runs if name != "skipped"}
    recs: Dict[str, list] = {name: [] for name in times}
    order = list(times)
    for r in range(repeats + 1):
        for i, pair in enumerate(pairs):
            shift = (r + i) % len(order)  # each configuration takes each place in turn
            for name in order[shift:] + order[:shift]:
                _sync(device)
                t0 = time.perf_counter()
                with (cpu_linear.aten() if name == ATEN_LINEAR else contextlib.nullcontext()):
                    rec = runs[name].reconstruct([pair])[0]
                _sync(device)
                if r > 0:
                    times[name].append(time.perf_counter() - t0)
                else:
                    recs[name].append(rec)
    base = _median(times["fp32"])
    rows = []
    for name in times:
        row: Dict[str, object] = {"precision": name, "seconds": _median(times[name]),
                                  "speedup": base / _median(times[name])}
        if name != "fp32":
            rel, absrel, changed, rot = [], [], [], []
            for a, b in zip(recs["fp32"], recs[name]):
                pa, pb = a.pointmaps.float(), b.pointmaps.float()
                rel.append(float(((pa - pb).norm(dim=-1) / pa.norm(dim=-1).clamp_min(1e-6))
                                 .median()))
                da, db = pa[..., 2].abs().clamp_min(1e-6), pb[..., 2]
                absrel.append(float(((da - db).abs() / da).mean()))
                rot.append(_rotation_deg(a.c2w[1].double(), b.c2w[1].double()))
                if labels:
                    la, _ = runs["fp32"].point_labels(a, list(labels))
                    lb, _ = runs["fp32"].point_labels(b, list(labels))
                    changed.append(float((np.asarray(la) != np.asarray(lb)).mean()))
            row.update(pointmap_rel_diff=max(rel), depth_absrel_vs_fp32=max(absrel),
                       rotation_diff_deg=max(rot),
                       labels_changed=max(changed) if changed else None)
        rows.append(row)
    if runs.get("skipped"):
        rows.append({"skipped": runs["skipped"]})
    return rows


STORED_BF16 = "bf16, weights stored in bf16"
ATEN_LINEAR = "fp32, linear layers on aten (MKL)"  # lsm.model.cpu_linear.aten()


def measure_paper_precisions(device: torch.device, repeats: int = 2,
                             checkpoint: Optional[str] = None,
                             config=None, export_dir: Optional[Path] = None) -> Dict[str, object]:
    """The paper configuration's forward pass (random weights unless ``checkpoint``) on one
    random 256x256 pair, in each precision that runs on ``device``, alternating: seconds
    per stage (medians), peak / working memory, and how far bf16's pointmaps and 2-D
    semantic features are from fp32's. On a CPU, the linear layers run through oneDNN as in
    the node (:mod:`lsm.model.cpu_linear`), and fp32 on aten's BLAS is measured beside it
    (:data:`ATEN_LINEAR`). On a CPU with bf16, last, as the node runs it: the
    transformer weights stored in bf16 (lsm.perception.store_autocast_weights; its
    outputs' largest difference from bf16's is reported, 0 when bit-identical).
    ``config``: another configuration (tests). ``export_dir``: also write the model's whole
    state dict (``state_dict.pt``, before :func:`lsm.perception.release_unused_weights` and
    the bf16 weight storage) and the pair with our fp32 pointmaps (``inputs.pt``) there,
    for :func:`lsm_tools.official_benchmark.measure_official`."""
    from lsm.config import paper
    from lsm.model import cpu_linear
    from lsm.model.cpu_linear import use_onednn_linear
    from lsm.model.lsm import LSM
    from lsm.perception import effective_precision, release_unused_weights
    from lsm.specs import PRECISIONS

    if checkpoint:
        from lsm.checkpoint import load_model

        model = load_model(checkpoint).to(device).eval()
    else:
        torch.manual_seed(0)
        model = LSM(config or paper()).to(device).eval()
    if export_dir is not None:  # the whole model, before the runtime frees what it never runs
        torch.save(model.state_dict(), Path(export_dir) / "state_dict.pt")
    release_unused_weights(model)  # as Perception.load does, in every precision
    aten_too = device.type == "cpu" and use_onednn_linear(model) > 0  # as Perception.load does
    size = model.config.image_size
    gen = torch.Generator().manual_seed(0)
    img1, img2 = (torch.rand(1, 3, size, size, generator=gen).to(device) for _ in range(2))
    names = [n for n in PRECISIONS if effective_precision(n, str(device))[0] == n]
    names += [ATEN_LINEAR] if aten_too else []
    runs: Dict[str, List[Dict[str, float]]] = {n: [] for n in names}
    memory: Dict[str, PeakMemory] = {}
    outputs = {}

    def forward(name: str, dtype, r: int) -> None:  # one timed pass, kept after the warm-up
        ctx = (contextlib.nullcontext() if dtype is None
               else torch.autocast(device_type=device.type, dtype=dtype))
        route = cpu_linear.aten() if name == ATEN_LINEAR else contextlib.nullcontext()
        t: Dict[str, float] = {}
        mem = PeakMemory(device)
        with torch.no_grad(), ctx, route, stage_timers(model, device, t), mem:
            _sync(device)
            t0 = time.perf_counter()
            out = model(img1, img2)
            _sync(device)
            t["total"] = time.perf_counter() - t0
        if r > 0:
            runs.setdefault(name, []).append(t)
        memory[name] = mem
        outputs[name] = (torch.cat([out.pts1, out.pts2]).float(), out.semantic_2d.float())

    dtypes = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16, ATEN_LINEAR: None}
    for r in range(repeats + 1):
        for name in names:
            forward(name, dtypes[name], r)
    if export_dir is not None:
        torch.save({"img1": img1.cpu(), "img2": img2.cpu(), "pts": outputs["fp32"][0].cpu()},
                   Path(export_dir) / "inputs.pt")
    stored = STORED_BF16
    if "bf16" in names and device.type == "cpu":  # what Perception.load does for bf16 (last:
        from lsm.perception import store_autocast_weights  # it changes the model for good)

        store_autocast_weights(model)
        for r in range(repeats + 1):
            forward(stored, torch.bfloat16, r)
        names.append(stored)
    rows = []
    for name in names:
        row: Dict[str, object] = {
            "precision": name,
            "stages_s": {k: _median([t[k] for t in runs[name]]) for k in runs[name][0]},
            "peak_memory_bytes": memory[name].peak_bytes,
            "working_memory_bytes": memory[name].working_bytes}
        if name == stored:  # bit-identical to bf16 under autocast, or this says how far
            row["max_abs_diff_vs_bf16"] = max(
                float((outputs[name][k] - outputs["bf16"][k]).abs().max()) for k in range(2))
        if name != "fp32":
            pa, pb = outputs["fp32"][0], outputs[name][0]
            fa, fb = outputs["fp32"][1], outputs[name][1]
            row["pointmap_rel_diff"] = float(((pa - pb).norm(dim=-1)
                                              / pa.norm(dim=-1).clamp_min(1e-6)).median())
            row["semantic_cosine_min"] = float(torch.nn.functional.cosine_similarity(
                fa, fb, dim=1).min())
        rows.append(row)
    return {"weights": checkpoint or f"random ({model.config.name} configuration)",
            "image_size": size,
            "rows": rows}


def measure_paper_official(device: torch.device, official: Path, deps: Optional[Path] = None,
                           repeats: int = 2, checkpoint: Optional[str] = None,
                           log: Callable[[str], None] = print) -> Dict[str, object]:
    """:func:`measure_paper_precisions`, then the official NVlabs/LSM forward pass at ``official``
    (a local checkout) with the same weights and pair, fp32, in its own process with this
    process' torch threads (:func:`lsm_tools.official_benchmark.measure_official`). Adds
    "official" (its seconds, peak memory, pointmap difference from ours, and "ratios": ours /
    official per precision row) to the paper result. The official code runs on CPU only."""
    import tempfile

    from lsm_tools.official_benchmark import measure_official, ratios

    if device.type != "cpu":
        result = measure_paper_precisions(device, repeats, checkpoint)
        result["official_skipped"] = "the official code is run on CPU only here (CUDA shims absent)"
        return result
    with tempfile.TemporaryDirectory(prefix="lsm_paper_") as tmp:
        result = measure_paper_precisions(device, repeats, checkpoint, export_dir=Path(tmp))
        log("official NVlabs/LSM forward (separate process)")
        official_result = measure_official(official, Path(tmp) / "state_dict.pt", Path(tmp) / "inputs.pt",
                                           repeats=repeats, deps=deps, threads=torch.get_num_threads(),
                                           log=log)
    official_result["ratios"] = ratios(result["rows"], official_result)
    result["official"] = official_result
    return result


def measure_resolutions(perception, pairs, device, sizes, repeats,
                        peak_flops) -> List[Dict[str, float]]:
    """Per model input size S: network + cameras time, render time, FLOPs, peak memory."""
    from lsm.inference import reconstruct_pairs
    from lsm.preprocess import prepare_image

    rows = []
    model = perception.model
    param = next(model.parameters())
    for size in sizes:
        with model_resolution(model, size):
            img1 = prepare_image(pairs[0][0], size)[0][None].to(device, param.dtype)
            img2 = prepare_image(pairs[0][1], size)[0][None].to(device, param.dtype)
            flops = count_flops(model, img1, img2)
            times, render_times = [], []
            with PeakMemory(device) as mem:
                for r in range(repeats + 1):
                    _sync(device)
                    t0 = time.perf_counter()
                    rec = reconstruct_pairs(model, [pairs[0]])[0]
                    _sync(device)
                    t1 = time.perf_counter()
                    for v in range(2):
                        perception.render_view(rec, v)
                    _sync(device)
                    if r > 0:
                        times.append(t1 - t0)
                        render_times.append(time.perf_counter() - t1)
        s = _median(times)
        rows.append({"size": size, "gaussians": 2 * size * size, "seconds": s,
                     "render_s": _median(render_times), "flops": flops,
                     "achieved_flops_per_s": flops / s,
                     "efficiency": flops / s / peak_flops, "peak_memory_bytes": mem.peak_bytes,
                     "working_memory_bytes": mem.working_bytes})
    return rows


def measure_renderer(device, counts, size, repeats) -> List[Dict[str, float]]:
    """Our renderers (forward, colour; medians: the torch rasteriser and, on CPU with numba,
    the tile rasteriser) versus the gsplat reference (one run) on the same scenes: seconds
    and the largest colour / alpha differences of the torch rasteriser to the reference and
    of the tile rasteriser to the torch one."""
    from lsm.rendering import render, tile_rasterizer
    from lsm_tools.render_benchmark import make_pointmap_scene

    tiles = device.type == "cpu" and tile_rasterizer.available()

    rows = []
    for n in counts:
        scene = make_pointmap_scene(n, size, seed=0)
        scene = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in scene.items()}
        scene["opacities"] = scene["opacities"].clamp_max(0.98)  # where 0.99/0.999 clamps agree
        ours, ref = [], []
        out = ref_out = None
        for r in range(repeats + 1):
            _sync(device)
            t0 = time.perf_counter()
            with torch.no_grad():
                out = render(scene["means"], scene["quats"], scene["scales"], scene["opacities"],
                             scene["colors"], scene["Ks"], scene["viewmats"], size, size,
                             backend="torch")
            _sync(device)
            t1 = time.perf_counter()
            if r == repeats:  # the slow reference runs once
                ref_out = gsplat_reference_render(scene, size)
                _sync(device)
                ref.append(time.perf_counter() - t1)
            if r > 0:
                ours.append(t1 - t0)
        row = {"gaussians": n, "size": size, "ours_s": _median(ours)}
        if tiles:
            args = (scene["means"], scene["quats"], scene["scales"], scene["opacities"],
                    scene["colors"], scene["Ks"], scene["viewmats"], size, size)
            times = []
            with torch.no_grad():
                for r in range(repeats + 1):
                    t0 = time.perf_counter()
                    tiled = render(*args, backend="tiles")
                    if r > 0:
                        times.append(time.perf_counter() - t0)
            row.update(tiles_s=_median(times),
                       tiles_max_abs_rgb_vs_torch=float((tiled.rgb - out.rgb).abs().max()))
        if ref_out is not None:
            rgb_ref, alpha_ref = ref_out
            row.update(reference_s=_median(ref), speedup=_median(ref) / _median(ours),
                       max_abs_rgb=float((out.rgb[0] - rgb_ref[0]).abs().max()),
                       max_abs_alpha=float((out.alpha[0] - alpha_ref[0]).abs().max()))
        rows.append(row)
    return rows


def gsplat_reference_render(scene, size: int, tile: int = 16):
    """Reference colour + alpha (C,H,W,3), (C,H,W) after gsplat, or None without gsplat.

    Projection: ``gsplat.cuda._torch_impl._quat_scale_to_covar_preci`` and
    ``_fully_fused_projection`` (EWA, 3.33-sigma radii, eps2d 0.3).  Tile intersection: the
    rule of ``_torch_impl._isect_tiles`` (16-px tiles, sort by camera, tile, depth),
    vectorised (gsplat's version loops in Python per Gaussian).  Composition: gsplat's forward
    kernel per pixel, vectorised: alpha = min(0.999, o exp(-sigma)), skipped when sigma < 0 or
    alpha < 1/255, stop before the first Gaussian with T (1 - alpha) <= 1e-4, colour +=
    alpha T c.  No background.
    """
    try:
        from gsplat.cuda import _torch_impl as gs
    except Exception:  # gsplat missing or broken
        return None
    means, quats, scales = scene["means"], scene["quats"], scene["scales"]
    opac, colors, Ks, viewmats = scene["opacities"], scene["colors"], scene["Ks"], scene["viewmats"]
    quats = torch.nn.functional.normalize(quats, dim=-1)
    device, dtype = means.device, means.dtype
    with torch.no_grad():
        covars, _ = gs._quat_scale_to_covar_preci(quats, scales, compute_preci=False)
        radii, means2d, depths, conics, _ = gs._fully_fused_projection(
            means, covars, viewmats, Ks, size, size, eps2d=0.3, near_plane=0.01, far_plane=1e10)
        cams, n = means2d.shape[:2]
        tiles = math.ceil(size / tile)
        # tile ranges per (camera, Gaussian), as _isect_tiles computes them
        lo = torch.floor(means2d / tile - radii / tile).long().clamp(0, tiles)
        hi = torch.ceil(means2d / tile + radii / tile).long().clamp(0, tiles)
        ext = (hi - lo).prod(-1) * (radii > 0).all(-1)
        cg = torch.nonzero(ext.reshape(-1) > 0).squeeze(1)
        reps = ext.reshape(-1)[cg]
        owner = torch.repeat_interleave(cg, reps)  # flat (camera * N + Gaussian) per intersection
        first = torch.cumsum(reps, 0) - reps
        k = torch.arange(owner.numel(), device=device) - torch.repeat_interleave(first, reps)
        cam, gid = owner // n, owner % n
        w_t = (hi - lo)[cam, gid, 0]
        tx = lo[cam, gid, 0] + k % w_t
        ty = lo[cam, gid, 1] + k // w_t
        depth_bits = depths[cam, gid].float().view(torch.int32).long() & 0xFFFFFFFF
        key = ((cam * tiles * tiles + ty * tiles + tx) << 32) | depth_bits
        order = torch.sort(key).indices
        cam, gid, tx, ty = cam[order], gid[order], tx[order], ty[order]
        # expand each (tile, Gaussian) intersection to the tile's pixels
        py, px = torch.meshgrid(torch.arange(tile, device=device), torch.arange(tile, device=device),
                                indexing="ij")
        y = ty[:, None] * tile + py.reshape(1, -1)
        x = tx[:, None] * tile + px.reshape(1, -1)
        inside = (x < size) & (y < size)
        pix = ((cam[:, None] * size + y) * size + x)[inside]
        g = gid[:, None].expand_as(x)[inside]
        c = cam[:, None].expand_as(x)[inside]
        xs, ys = x[inside], y[inside]
        order = torch.sort(pix, stable=True).indices  # stable: keeps the depth order per pixel
        pix, g, c, xs, ys = pix[order], g[order], c[order], xs[order], ys[order]
        dx = xs.to(dtype) + 0.5 - means2d[c, g, 0]
        dy = ys.to(dtype) + 0.5 - means2d[c, g, 1]
        a, b, cc = conics[c, g].unbind(-1)
        sigma = 0.5 * (a * dx * dx + cc * dy * dy) + b * dx * dy
        alpha = torch.clamp_max(opac[g] * torch.exp(-sigma), 0.999)
        alpha = torch.where((sigma >= 0) & (alpha >= 1.0 / 255.0), alpha, torch.zeros_like(alpha))
        log_1m = torch.log1p(-alpha).double()
        csum = torch.cumsum(log_1m, 0)
        start = torch.ones_like(pix, dtype=torch.bool)
        start[1:] = pix[1:] != pix[:-1]
        seg = torch.cumsum(start.long(), 0) - 1
        base = (csum - log_1m)[start]  # running sum before each pixel's first Gaussian
        t_incl = torch.exp(csum - base[seg])
        t_excl = torch.exp(csum - log_1m - base[seg])
        w = torch.where(t_incl > 1e-4, alpha.double() * t_excl, torch.zeros_like(t_excl)).to(dtype)
        total = cams * size * size
        rgb = torch.zeros(total, 3, dtype=dtype, device=device).index_add_(0, pix, w[:, None] * colors[g])
        acc = torch.zeros(total, dtype=dtype, device=device).index_add_(0, pix, w)
    return rgb.reshape(cams, size, size, 3), acc.reshape(cams, size, size)


# ------------------------------------------------------------------ report


def machine_info(device: torch.device) -> Dict[str, object]:
    info = {"platform": platform.platform(), "python": platform.python_version(),
            "torch": torch.__version__, "device": str(device),
            "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count()}
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    with contextlib.suppress(OSError):
        info["load_average"] = list(os.getloadavg())
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def _ms(s) -> str:
    return "n/a" if s is None or (isinstance(s, float) and math.isnan(s)) else f"{s * 1e3:.1f}"


def markdown_report(result: Dict[str, object]) -> str:
    lines = []
    for dev in result["devices"]:
        info = dev["machine"]
        st = dev["stages"]
        lines += [f"### {info['device']}: {info.get('gpu') or info.get('cpu', '')}", "",
                  f"torch {info['torch']}, {info['torch_threads']} threads, "
                  f"{info['cpu_count']} logical CPUs, load average at start "
                  f"{', '.join(f'{x:.2f}' for x in info.get('load_average', []))}; model "
                  f"`{result['model']}` at {st['model_size']}x{st['model_size']} "
                  f"({st['gaussians']} Gaussians), input {st['input_size'][1]}x{st['input_size'][0]}.",
                  "", "| stage (one pair) | ms | share |", "|---|---:|---:|"]
        total = st["pipeline_s"]
        for key, label in STAGES:
            if key in st["stages_s"]:
                v = st["stages_s"][key]
                lines.append(f"| {label} | {_ms(v)} | {100 * v / total:.1f}% |")
        lines.append(f"| **total** | **{_ms(total)}** | |")
        if st.get("pipeline_cloud_only_s") is not None:
            lines.append(f"\nWith no subscriber to the image outputs (the node computes none): "
                         f"{_ms(st['pipeline_cloud_only_s'])} ms per pair.")
        if st["node_overhead_share_of_model"] is not None:
            lines.append(f"\nNode overhead (conversion + messages + publishing): "
                         f"{_ms(st['node_overhead_s'])} ms = "
                         f"{100 * st['node_overhead_share_of_model']:.1f}% of the model time "
                         f"({_ms(st['model_s'])} ms: preprocessing to camera recovery).")
        peak = dev["matmul_peak"]
        aten = (f" (aten's BLAS, torch.mm: {peak['aten_flops_per_s'] / 1e9:.1f} GFLOP/s)"
                if peak.get("aten_flops_per_s") else "")
        lines += ["", f"fp32 matmul peak ({peak['n']}x{peak['n']}, {peak.get('route', 'aten')}, "
                      f"as the linear layers run): {peak['flops_per_s'] / 1e9:.1f} GFLOP/s{aten}.", "",
                  "| batch | ms / batch | pairs/s |", "|---:|---:|---:|"]
        for row in dev["batches"]:
            lines.append(f"| {row['batch']} | {_ms(row['seconds'])} | {row['pairs_per_s']:.2f} |")
        lines += ["", "| precision | ms / pair | speed-up | pointmap diff vs fp32 (median, "
                      "worst pair) | depth AbsRel vs fp32 | labels changed | rotation diff |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for row in dev.get("precisions", []):
            if "skipped" in row:
                lines.append(f"\nNot run here: {'; '.join(row['skipped'])}.")
            elif row["precision"] == "fp32":
                lines.append(f"| fp32 | {_ms(row['seconds'])} | 1.00x | reference | | | |")
            else:
                changed = (f"{100 * row['labels_changed']:.1f} %"
                           if row["labels_changed"] is not None else "n/a")
                lines.append(f"| {row['precision']} | {_ms(row['seconds'])} | "
                             f"{row['speedup']:.2f}x | {100 * row['pointmap_rel_diff']:.2f} % | "
                             f"{row['depth_absrel_vs_fp32']:.4f} | {changed} | "
                             f"{row['rotation_diff_deg']:.2f} deg |")
        lines += ["", "| input S | Gaussians | network + cameras ms | render ms (2 views) | "
                      "GFLOP / pair | GFLOP/s | efficiency | peak / working memory MiB |",
                  "|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for row in dev["resolutions"]:
            lines.append(f"| {row['size']} | {row['gaussians']} | {_ms(row['seconds'])} | "
                         f"{_ms(row['render_s'])} | {row['flops'] / 1e9:.2f} | "
                         f"{row['achieved_flops_per_s'] / 1e9:.1f} | {100 * row['efficiency']:.1f}% | "
                         f"{row['peak_memory_bytes'] / 2 ** 20:.0f} / "
                         f"{row['working_memory_bytes'] / 2 ** 20:.0f} |")
        lines += ["", "| renderer: Gaussians | image | torch ms | tiles ms (numba) | "
                      "gsplat reference ms | torch vs reference: speed-up, max abs diff rgb / "
                      "alpha | tiles vs torch: max abs diff rgb |",
                  "|---:|---:|---:|---:|---:|---|---:|"]
        for row in dev["renderer"]:
            tiles = (f"{_ms(row['tiles_s'])} | " if "tiles_s" in row else "n/a | ")
            tiles_diff = (f"{row['tiles_max_abs_rgb_vs_torch']:.1e}"
                          if "tiles_s" in row else "")
            if "reference_s" in row:
                lines.append(f"| {row['gaussians']} | {row['size']}x{row['size']} | "
                             f"{_ms(row['ours_s'])} | {tiles}{_ms(row['reference_s'])} | "
                             f"{row['speedup']:.1f}x, {row['max_abs_rgb']:.1e} / "
                             f"{row['max_abs_alpha']:.1e} | {tiles_diff} |")
            else:
                lines.append(f"| {row['gaussians']} | {row['size']}x{row['size']} | "
                             f"{_ms(row['ours_s'])} | {tiles}n/a (gsplat missing) | | "
                             f"{tiles_diff} |")
        if dev.get("paper"):
            lines += _paper_lines(dev["paper"])
        lines.append("")
    return "\n".join(lines)


def _paper_lines(paper: Dict[str, object]) -> List[str]:
    keys = [k for k in ("encoder", "decoder", "heads", "semantic", "point_aggregation",
                        "gaussian_head", "total") if k in paper["rows"][0]["stages_s"]]
    lines = ["", f"Paper configuration, one {paper['image_size']}x{paper['image_size']} pair, "
                 f"weights: {paper['weights']} (forward pass, seconds):", "",
             "| precision | " + " | ".join(keys) + " | peak / working memory MiB | "
             "pointmaps vs fp32 | 2-D semantic cosine vs fp32 (min) |",
             "|---|" + "---:|" * (len(keys) + 3)]
    for row in paper["rows"]:
        st = row["stages_s"]
        diff = (f"{100 * row['pointmap_rel_diff']:.2f} % | {row['semantic_cosine_min']:.4f}"
                if "pointmap_rel_diff" in row else "reference | ")
        if "max_abs_diff_vs_bf16" in row:
            diff += f" (vs bf16: max difference {row['max_abs_diff_vs_bf16']:.1e})"
        lines.append(f"| {row['precision']} | " + " | ".join(f"{st[k]:.2f}" for k in keys)
                     + f" | {row['peak_memory_bytes'] / 2 ** 20:.0f} / "
                       f"{row['working_memory_bytes'] / 2 ** 20:.0f} | {diff} |")
    if paper.get("official"):
        lines += _official_lines(paper)
    elif paper.get("official_skipped"):
        lines.append(f"\nOfficial NVlabs/LSM not run: {paper['official_skipped']}.")
    return lines


def _official_lines(paper: Dict[str, object]) -> List[str]:
    off = paper["official"]
    mib = 2 ** 20
    source = (f"commit {off['official_commit'][:12]} at {off['official_path']}" if off.get("official_commit")
              else f"{off['official_path']}, commit unknown: no .git")
    out = off.get("outputs", {})
    if "pts3d_rel_diff" in out:
        check = (f"pointmaps vs ours (fp32): max abs diff {out['pts3d_max_abs_diff']:.1e}, "
                 f"relative {out['pts3d_rel_diff']:.1e} "
                 + ("(same weights confirmed)" if out["equivalent"] else
                    f"(**not** within {out['tolerance']:g}: not the same computation, ratios doubtful)"))
    else:
        check = "pointmaps not compared"
    lines = ["", f"Official NVlabs/LSM forward pass ({source}), fp32, the same weights and pair, in its "
                 f"own process ({off['threads']} threads, CPU shims: lsm_tools.official_benchmark): "
                 f"{off['forward_s']:.2f} s (runs {', '.join(f'{x:.2f}' for x in off['runs_s'])}), "
                 f"peak / working memory {off['peak_rss_bytes'] / mib:.0f} / "
                 f"{off['working_bytes'] / mib:.0f} MiB; {check}.", "",
             "| ours: precision | ours s | official fp32 s | time ours / official | ours peak MiB | "
             "official peak MiB | peak ours / official |", "|---|---:|---:|---:|---:|---:|---:|"]
    for row in paper["rows"]:
        r = off["ratios"][row["precision"]]
        lines.append(f"| {row['precision']} | {row['stages_s']['total']:.2f} | {off['forward_s']:.2f} | "
                     f"{r['time']:.2f} | {row['peak_memory_bytes'] / mib:.0f} | "
                     f"{off['peak_rss_bytes'] / mib:.0f} | {r['peak_memory']:.2f} |")
    return lines


def plot(result: Dict[str, object], path: Path) -> Optional[Path]:
    """Scaling curves (pairs/s vs batch, time vs Gaussians, renderer vs Gaussians) as PNG."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for dev in result["devices"]:
        name = dev["machine"]["device"]
        b = dev["batches"]
        axes[0].plot([r["batch"] for r in b], [r["pairs_per_s"] for r in b], "o-", label=name)
        res = dev["resolutions"]
        g = [r["gaussians"] for r in res]
        axes[1].plot(g, [r["seconds"] * 1e3 for r in res], "o-", label=f"{name} network + cameras")
        axes[1].plot(g, [r["render_s"] * 1e3 for r in res], "s--", label=f"{name} render 2 views")
        rr = dev["renderer"]
        axes[2].plot([r["gaussians"] for r in rr], [r["ours_s"] * 1e3 for r in rr], "o-",
                     label=f"{name} ours")
        ref = [r for r in rr if "reference_s" in r]
        if ref:
            axes[2].plot([r["gaussians"] for r in ref], [r["reference_s"] * 1e3 for r in ref],
                         "s--", label=f"{name} gsplat reference")
    axes[0].set(xlabel="batch size (pairs)", ylabel="pairs / s", title="throughput vs batch")
    axes[1].set(xlabel="Gaussians (2 x S x S)", ylabel="ms", title="cost vs input resolution",
                xscale="log", yscale="log")
    axes[2].set(xlabel="Gaussians", ylabel="ms (forward)", title="renderer",
                xscale="log", yscale="log")
    for ax in axes:
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ------------------------------------------------------------------ driver


@dataclasses.dataclass
class BenchmarkSettings:
    repeats: int = 3
    batch_sizes: Sequence[int] = (1, 2, 4)
    sizes: Sequence[int] = (64, 128, 192, 256)
    render_counts: Sequence[int] = (8192, 32768, 131072)
    render_size: int = 128
    matmul_n: int = 2048
    input_size: Sequence[int] = (480, 640)
    labels: bool = True
    ros: bool = True

    @classmethod
    def quick(cls) -> "BenchmarkSettings":
        return cls(repeats=2, batch_sizes=(1, 2), sizes=(64, 128, 192),
                   render_counts=(4096, 16384), render_size=96, matmul_n=1024)


def run_benchmark(model, devices: Sequence[str], settings: BenchmarkSettings,
                  log: Callable[[str], None] = print) -> Dict[str, object]:
    """All measurements for each device; returns the JSON-ready result."""
    n_pairs = max(2, max(settings.batch_sizes))
    log(f"generating {n_pairs} procedural {settings.input_size[1]}x{settings.input_size[0]} pairs")
    pairs = benchmark_pairs(n_pairs, tuple(settings.input_size))
    from lsm.model.cpu_linear import use_onednn_linear

    result = {"model": model.config.name, "settings": dataclasses.asdict(settings), "devices": []}
    for name in devices:
        device = torch.device(name)
        from lsm.perception import Perception

        model = model.to(device).eval()
        if device.type == "cpu":  # as Perception.load does
            use_onednn_linear(model)
        perception = Perception(model)
        labels = settings.labels
        if labels:
            try:
                _ = perception.text_encoder
            except Exception as exc:  # e.g. CLIP weights of a paper model not given
                log(f"label maps skipped: {exc}")
                labels = False
        log(f"[{name}] matmul peak")
        peak = matmul_peak(device, settings.matmul_n)
        log(f"[{name}] stages")
        stages = measure_stages(perception, pairs, device, settings.repeats, labels=labels,
                                ros=settings.ros)
        log(f"[{name}] batch sizes {list(settings.batch_sizes)}")
        batches = measure_batches(model, pairs, device, settings.batch_sizes, settings.repeats)
        log(f"[{name}] precisions")
        if device.type == "cpu":  # the batch sweep changed the layers' input shapes
            use_onednn_linear(model)
        precisions = measure_precisions(model, pairs, device, settings.repeats,
                                        DEFAULT_LABELS if labels else None)
        log(f"[{name}] resolutions {list(settings.sizes)}")
        resolutions = measure_resolutions(perception, pairs, device, settings.sizes, settings.repeats,
                                          peak["flops_per_s"])
        log(f"[{name}] renderer {list(settings.render_counts)}")
        renderer = measure_renderer(device, settings.render_counts, settings.render_size,
                                    settings.repeats)
        flops = next((r["flops"] for r in resolutions if r["size"] == model.config.image_size),
                     None)
        pairs_per_s = batches[0]["pairs_per_s"]
        result["devices"].append({
            "machine": machine_info(device), "matmul_peak": peak, "stages": stages,
            "batches": batches, "precisions": precisions, "resolutions": resolutions,
            "renderer": renderer,
            "flops_per_pair": flops,
            "efficiency_batch1": (flops * pairs_per_s / peak["flops_per_s"]) if flops else None,
        })
    return result


def _devices(choice: str) -> List[str]:
    if choice == "auto":
        return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    if choice.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(f"lsm-benchmark: --device {choice} but CUDA is not available")
    return [choice]


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="lsm-benchmark", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sweeps (a few minutes on 2 cores)")
    parser.add_argument("--device", default="auto", help="auto (cpu, and cuda if present) | cpu | cuda[:N]")
    parser.add_argument("--checkpoint", default=None, help="model file (default: embedded tiny model)")
    parser.add_argument("--out", type=Path, default=Path("benchmark_results"))
    parser.add_argument("--repeats", type=int, help="timed runs per measurement (median)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--batch-sizes", type=int, nargs="+")
    parser.add_argument("--sizes", type=int, nargs="+", help="model input sizes (multiples of 16)")
    parser.add_argument("--render-gaussians", type=int, nargs="+")
    parser.add_argument("--no-ros", action="store_true", help="skip the ROS message stages")
    parser.add_argument("--no-labels", action="store_true", help="skip label maps (text encoder)")
    parser.add_argument("--paper", action="store_true",
                        help="also time the paper configuration's forward pass (random "
                             "weights, or --paper-checkpoint) in fp32 and bf16 (~1 min)")
    parser.add_argument("--paper-checkpoint", default=None,
                        help="a converted paper model for --paper (lsm-convert)")
    parser.add_argument("--official", type=Path, default=None,
                        help="with --paper: a local NVlabs/LSM checkout (with submodules); also time its "
                             "forward pass on CPU with the same weights and pair, in its own process, "
                             "and print ours / official (~3 min more)")
    parser.add_argument("--official-deps", type=Path, default=None,
                        help="a folder put first on the official run's sys.path: packages it needs that "
                             "this venv lacks (pip install --target DIR einops addict openai-clip pandas)")
    parser.add_argument("--official-worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--live", action="store_true",
                        help="also run lsm_node live over DDS (lsm-benchmark-live --compare: "
                             "pairs/s, latency, staleness at 4 and 30 Hz offered; ~4 min)")
    args = parser.parse_args(argv)
    if args.official_worker:  # the official run's own process (lsm_tools.official_benchmark)
        from lsm_tools.official_benchmark import worker_main

        return worker_main(args.official_worker, PeakMemory)
    if args.official is not None:
        if not args.paper:
            parser.error("--official needs --paper")
        from lsm_tools.official_benchmark import OfficialCheckoutError, OfficialDependencyError, check_official

        try:  # seconds now rather than a failure after the whole run
            check_official(args.official, args.official_deps)
        except (OfficialCheckoutError, OfficialDependencyError) as exc:
            parser.error(str(exc))

    settings = BenchmarkSettings.quick() if args.quick else BenchmarkSettings()
    for field, value in (("repeats", args.repeats), ("batch_sizes", args.batch_sizes),
                         ("sizes", args.sizes), ("render_counts", args.render_gaussians)):
        if value is not None:
            setattr(settings, field, value)
    settings.ros = not args.no_ros
    settings.labels = not args.no_labels
    if settings.repeats < 1:
        parser.error("--repeats must be >= 1")
    if any(s <= 0 or s % 16 for s in settings.sizes):
        parser.error("--sizes must be positive multiples of 16")
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = _devices(args.device)

    from lsm.checkpoint import load_model

    paper = []
    if args.paper:  # first: this process then holds nothing else, like a node with that model
        for name in devices:
            print(f"lsm-benchmark: [{name}] paper configuration", file=sys.stderr, flush=True)
            if args.official is not None:
                paper.append(measure_paper_official(
                    torch.device(name), args.official, args.official_deps, checkpoint=args.paper_checkpoint,
                    log=lambda m: print(f"lsm-benchmark: {m}", file=sys.stderr, flush=True)))
            else:
                paper.append(measure_paper_precisions(torch.device(name), checkpoint=args.paper_checkpoint))
    torch.manual_seed(0)
    model = load_model(args.checkpoint)
    result = run_benchmark(model, devices, settings,
                           log=lambda m: print(f"lsm-benchmark: {m}", file=sys.stderr, flush=True))
    for dev, measured in zip(result["devices"], paper):
        dev["paper"] = measured
    if args.live:
        from lsm_tools import live_benchmark  # ROS: imported only when asked for

        result["live"] = live_benchmark.run(["defaults", "bf16", "before"], [4.0, 30.0], 20.0,
                                            (480, 640), args.checkpoint or "")
    for dev in result["devices"]:
        dev["machine"]["load_average_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "benchmark.json").write_text(json.dumps(result, indent=2))
    table = markdown_report(result)
    if result.get("live"):
        from lsm_tools import live_benchmark

        table += ("\n### lsm_node live (640x480 pairs over DDS, only ~/points subscribed)\n\n"
                  + live_benchmark.report(result["live"]) + "\n")
    (args.out / "benchmark.md").write_text(table)
    png = plot(result, args.out / "benchmark.png")
    print(table)
    print(f"wrote {args.out / 'benchmark.json'}, {args.out / 'benchmark.md'}"
          + (f", {png}" if png else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
