"""The model side of lsm_node: load LSM once, reconstruct batches of view pairs.

No ROS imports (runs in the worker thread; unit-testable).  torch is imported lazily so
that the node process answers its service before the model has loaded.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Any, List, Sequence, Tuple

from lsm_ros.outputs import ReconstructionOutputs, reconstruction_outputs


@dataclass
class Engine:
    model: Any  # lsm.model.lsm.LSM in eval mode
    text_encoder: Any
    device: str  # resolved torch device, e.g. 'cpu' or 'cuda:0'
    precision: str  # fp32 | fp16 | bf16 (effective)
    load_seconds: float


def resolve_device(device: str) -> str:
    """'auto' -> 'cuda' when available else 'cpu'; a CUDA request without CUDA raises."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device '{device}' requested but torch sees no CUDA device "
                           "(use device:=auto or cpu)")
    return device


def load_engine(model_config: str, checkpoint: str, device: str, precision: str,
                dust3r: str = "", lseg: str = "", clip: str = "", keep_lsm_dust3r: bool = False,
                keep_lsm_lseg: bool = False, cpu_threads: int = 0) -> Engine:
    """Load the model: ``checkpoint`` path (lsm_ros file or official ``checkpoint-final.pth``
    merged with the ``dust3r``/``lseg``/``clip`` files by the official rule, see
    :func:`lsm.checkpoint.load_model`), or the embedded weights when it is ''."""
    import os

    import torch
    from lsm.checkpoint import load_model

    start = time.monotonic()
    if not checkpoint and model_config != "tiny":
        raise ValueError(f"model_config '{model_config}' has no embedded weights; set the "
                         "'checkpoint' parameter to a checkpoint file")
    dev = resolve_device(device)
    # process-wide: leave a core to the ROS executor (callbacks, services) unless told otherwise
    torch.set_num_threads(cpu_threads or max(1, (os.cpu_count() or 2) - 1))
    model = load_model(checkpoint or None, dev, dust3r=dust3r or None, lseg=lseg or None,
                       clip=clip or None, keep_lsm_dust3r=keep_lsm_dust3r,
                       keep_lsm_lseg=keep_lsm_lseg, config=model_config)
    model.eval()
    text_encoder = model.text_encoder()
    effective = precision if dev.startswith("cuda") else "fp32"
    return Engine(model, text_encoder, dev, effective, time.monotonic() - start)


def _autocast(engine: Engine):
    if engine.precision == "fp32":
        return contextlib.nullcontext()
    import torch

    dtype = torch.float16 if engine.precision == "fp16" else torch.bfloat16
    return torch.autocast(device_type="cuda", dtype=dtype)


def reconstruct_batch(engine: Engine, image_pairs: Sequence[Tuple[Any, Any]],
                      labels: Sequence[str], confidence_threshold: float, stride: int,
                      max_points: int) -> List[Tuple[Any, ReconstructionOutputs, dict]]:
    """One forward pass for all pairs; per pair (Reconstruction, outputs, timings)."""
    from lsm.inference import reconstruct_pairs

    timings: dict = {}
    with _autocast(engine):
        recs = reconstruct_pairs(engine.model, list(image_pairs),
                                 text_encoder=engine.text_encoder, timings=timings)
    results = []
    for rec in recs:
        start = time.monotonic()
        outputs = reconstruction_outputs(rec, labels, confidence_threshold, stride, max_points)
        results.append((rec, outputs, dict(timings, outputs=time.monotonic() - start)))
    return results
