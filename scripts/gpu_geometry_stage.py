"""One geometry stage on a lent GPU within a fixed wall-clock budget, plus CUDA checks.

The geometry stage is ``lsm-train``'s (pointmap loss only, ``--train-only dust3r``, the
2-D stage path that renders nothing, on the same items: context pairs only, as for every
stage that reads no target view), with one difference that suits a machine on loan: the
run fits ``--budget-s``. A probe run measures seconds per step once the batches the data
workers prefetched are used up (the first try, 2026-12-04, timed the prefetched steps,
planned too many and ran out of time), and the real run's cosine schedule spans the steps
that fit; or ``--probe-steps 0 --max-steps N`` sets the steps. Either way a watchdog
exports the last periodic checkpoint and exits when the budget is spent.

The class-name embeddings that ``lsm-train`` computes with the text encoder are not read by
this objective (semantic, photometric and distillation terms are all off or frozen), so the
script needs no text-encoder weights: the machine it was written for has none.

Before training, with ``--device cuda``, it checks the inference path on the GPU against
the CPU (pointmaps, confidences, rendered RGB of the embedded model on held-out pairs) and
times a forward pass. Writes into ``--out``: ``summary.json``, ``metrics.csv`` and the
trained geometry-backbone weights (float32, ``dust3r.*`` keys) split into files of at most
``--chunk-mib`` MiB (``dust3r_part<N>.pt``), to be merged into a full model with
``--merge``::

    python scripts/gpu_geometry_stage.py --merge BASE.pt OUT_DIR MERGED.pt
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import sys
import threading
import time
import traceback
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lsm_ros"))

from lsm.checkpoint import (
    load_model,  # noqa: E402
    save_checkpoint,  # noqa: E402
)
from lsm.model.lsm import LSM  # noqa: E402
from lsm_train.data.sample import CLASS_NAMES  # noqa: E402
from lsm_train.training.objective import LossWeights, reads_target_views  # noqa: E402
from lsm_train.training.train import build_dataset  # noqa: E402
from lsm_train.training.trainer import TrainConfig, Trainer  # noqa: E402

GEOMETRY_ONLY = LossWeights(photometric=0.0, semantic=0.0)


def cuda_checks(model: LSM, device: torch.device, pairs: int = 4) -> dict:
    """GPU vs CPU on held-out procedural pairs: max |difference| of pointmaps (in units of
    the scene's median distance), confidences, rendered view-0 RGB; GPU forward time."""
    from lsm.inference import reconstruct_pairs
    from lsm_train.data.procedural import generate_sample

    images = []
    for seed in range(100000, 100000 + pairs):
        s = generate_sample(seed, model.config.image_size, 0)
        images.append((s.context[0].image, s.context[1].image))
    cpu_model = copy.deepcopy(model).cpu().eval()
    gpu_model = copy.deepcopy(model).to(device).eval()
    ref = reconstruct_pairs(cpu_model, images)
    got = reconstruct_pairs(gpu_model, images)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    res = {"device_name": name, "torch": torch.__version__, "pairs": []}
    for r, g in zip(ref, got):
        scale = r.pointmaps.norm(dim=-1).median()
        rr, gr = r.render_view(0, features=False), g.render_view(0, features=False)
        res["pairs"].append({
            "pointmap_max_rel": float((r.pointmaps - g.pointmaps).abs().max() / scale),
            "confidence_max_rel": float(((r.confidence - g.confidence).abs()
                                         / r.confidence.abs().clamp_min(1e-6)).max()),
            "render_rgb_max_abs": float((rr.rgb.float().cpu() - gr.rgb.float().cpu()).abs().max()),
            "render_rgb_mean_abs": float((rr.rgb.float().cpu() - gr.rgb.float().cpu()).abs().mean()),
        })
    times = {}
    for batch in (1, 8):
        timing = []
        for i in range(6):
            sync(device)
            t = time.perf_counter()
            reconstruct_pairs(gpu_model, (images * 8)[:batch])
            sync(device)
            timing.append(time.perf_counter() - t)
        times[f"batch{batch}_s"] = sorted(timing[2:])[len(timing[2:]) // 2]
    res["reconstruct_pairs_median"] = times
    return res


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def export_chunks(state: dict, out: Path, chunk_mib: float) -> list[str]:
    """The trainable geometry-backbone tensors, float32, in files of at most ``chunk_mib``."""
    limit = int(chunk_mib * 2 ** 20)
    parts, cur, size = [], {}, 0
    for k, v in state.items():
        if not k.startswith("dust3r."):
            continue
        n = v.numel() * v.element_size()
        if cur and size + n > limit:
            parts.append(cur)
            cur, size = {}, 0
        cur[k] = v.detach().float().cpu().clone()
        size += n
    if cur:
        parts.append(cur)
    names = []
    for i, p in enumerate(parts):
        name = f"dust3r_part{i}.pt"
        torch.save(p, out / name)
        names.append(name)
    return names


def _export_at_deadline(run_dir: Path, out: Path, chunk_mib: float, summary: dict, dump) -> None:
    """Budget spent before the last step: export the last periodic checkpoint and exit."""
    from lsm.checkpoint import read_checkpoint_file

    ckpt = run_dir / "checkpoint-last.pt"
    if ckpt.exists():
        saved = read_checkpoint_file(ckpt)
        summary["parts"] = export_chunks(saved["model"], out, chunk_mib)
        summary["trained_steps"] = int(saved["step"])
        summary["stopped_at_deadline"] = True
    if (run_dir / "metrics.csv").exists():
        shutil.copy(run_dir / "metrics.csv", out / "metrics.csv")
    dump()
    print(f"deadline: exported the checkpoint of step {summary.get('trained_steps')}", flush=True)
    os._exit(0)


def merge(base: str, parts_dir: str, dst: str) -> None:
    """BASE model + the dust3r_part*.pt tensors -> a float32 lsm_ros model file at DST."""
    from lsm.weights_file import load_weights_only

    model = load_model(base)
    state = model.state_dict()
    loaded = 0
    for f in sorted(Path(parts_dir).glob("dust3r_part*.pt")):
        for k, v in load_weights_only(f).items():
            if k not in state or state[k].shape != v.shape:
                raise SystemExit(f"{f}: {k} does not match the base model")
            state[k] = v
            loaded += 1
    expected = sum(1 for k in state if k.startswith("dust3r."))
    if loaded != expected:
        raise SystemExit(f"merged {loaded} dust3r tensors, the model has {expected}")
    model.load_state_dict(state)
    save_checkpoint(model.float(), dst, {"geometry": f"dust3r from {parts_dir}"})
    print(f"{dst}: {loaded} dust3r tensors from {parts_dir}")


def main(argv=None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["--merge"]:
        if len(argv) != 4:
            raise SystemExit("usage: gpu_geometry_stage.py --merge BASE.pt PARTS_DIR MERGED.pt")
        merge(*argv[1:])
        return 0
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--init", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--budget-s", type=float, required=True, help="wall clock for everything, from start")
    p.add_argument("--reserve-s", type=float, default=45, help="kept for export after training")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--seed", type=int, default=29)
    p.add_argument("--workers", type=int, default=14)
    p.add_argument("--probe-steps", type=int, default=60,
                   help="0: no probe, train --max-steps; else more than 2 x --workers")
    p.add_argument("--max-steps", type=int, default=100_000)
    p.add_argument("--device", default="cuda")
    p.add_argument("--checks", action="store_true", help="run the device checks on a CPU device too")
    p.add_argument("--no-checks", action="store_true", help="skip the device checks")
    p.add_argument("--ckpt-every", type=int, default=100)
    p.add_argument("--chunk-mib", type=float, default=15)
    a = p.parse_args(argv)
    t_start = time.perf_counter()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device(a.device)
    summary: dict = {"args": vars(a)}

    def dump():
        (out / "summary.json").write_text(json.dumps(summary, indent=1))

    model = load_model(a.init).float()
    if (device.type == "cuda" or a.checks) and not a.no_checks:
        try:
            summary["cuda_checks"] = cuda_checks(model, device)
        except Exception:  # report, then still train
            summary["cuda_checks_error"] = traceback.format_exc()
        print(json.dumps({k: summary.get(k) for k in ("cuda_checks", "cuda_checks_error")}, indent=1),
              flush=True)
        dump()

    dataset, collate = build_dataset("procedural", model.config.image_size, a.seed, 10_000_000,
                                     num_targets=int(reads_target_views(GEOMETRY_ONLY)))
    # lsm-train encodes the class names here; this objective never reads them
    unused_text = torch.zeros(len(CLASS_NAMES), model.config.semantic.text_dim)

    def config(steps: int) -> TrainConfig:
        return TrainConfig(steps=steps, batch_size=a.batch_size, lr=a.lr, warmup=min(a.warmup, steps),
                           seed=a.seed, workers=a.workers, log_every=50, ckpt_every=a.ckpt_every,
                           weights=GEOMETRY_ONLY, train_only=("dust3r",))

    if a.probe_steps > 0:
        probe = Trainer(copy.deepcopy(model), dataset, collate, unused_text, config(a.probe_steps),
                        "/tmp/gpu_geometry_probe", device)
        t = time.perf_counter()
        hist = probe.train(progress=False)
        probe_total = time.perf_counter() - t
        # the workers prefetch 2 batches each: time only the steps after those
        tail = [h["sec_per_step"] for h in hist[2 * a.workers:]] or [h["sec_per_step"] for h in hist[-1:]]
        sec_per_step = sorted(tail)[len(tail) // 2]
        del probe
        left = a.budget_s - (time.perf_counter() - t_start) - a.reserve_s - 10  # 10 s: worker start
        steps = max(1, min(a.max_steps, int(left / sec_per_step)))
        summary.update(probe_total_s=probe_total, probe_sec_per_step=sec_per_step, steps=steps)
        print(f"probe: {sec_per_step:.3f} s/step at batch {a.batch_size}; training {steps} steps", flush=True)
        dump()
    else:
        steps = a.max_steps
        summary["steps"] = steps
    run_dir = Path("/tmp/gpu_geometry_run")
    trainer = Trainer(model, dataset, collate, unused_text, config(steps), run_dir, device)
    watchdog = threading.Timer(max(1.0, a.budget_s - (time.perf_counter() - t_start)),
                               _export_at_deadline, (run_dir, out, a.chunk_mib, summary, dump))
    watchdog.daemon = True
    watchdog.start()
    t = time.perf_counter()
    try:
        hist = trainer.train(progress=False)
    finally:
        watchdog.cancel()
        summary["train_s"] = time.perf_counter() - t
        summary["trained_steps"] = trainer.step
        if (run_dir / "metrics.csv").exists():
            shutil.copy(run_dir / "metrics.csv", out / "metrics.csv")
        summary["parts"] = export_chunks(trainer.model.state_dict(), out, a.chunk_mib)
        summary["total_s"] = time.perf_counter() - t_start
        dump()
    first = [h["pointmap"] for h in hist[:100]]
    last = [h["pointmap"] for h in hist[-100:]]
    print(f"pointmap loss: first 100 steps {sum(first) / len(first):.4f}, "
          f"last 100 {sum(last) / len(last):.4f}; {summary['total_s']:.0f} s in all", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
