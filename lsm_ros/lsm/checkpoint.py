"""Saving and loading model checkpoints: lsm_ros files (the embedded default model included)
and the official LSM release.

lsm_ros file layout (a plain ``torch.save`` dict, loadable with ``weights_only=True``)::

    {"format": "lsm_ros/1", "config": LSMConfig.to_dict(), "model": state_dict, "meta": {...}}

:func:`load_model` also accepts the official ``checkpoint-final.pth`` together with the
separate DUSt3R / LSeg / CLIP files, merged by the official rule (see
:mod:`lsm.official_weights`; ``lsm-convert convert`` writes the merged model as one lsm_ros
file). Every read uses ``weights_only=True``: a pickle that would run code is refused, naming
the object, and a zip archive whose members fail their CRC-32 is refused as corrupt before it is
unpickled (:mod:`lsm.weights_file`). Any problem raises :class:`CheckpointError` with a message
that names the file and what is wrong with it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch

from .config import LSMConfig, get_config
from .official_weights import (
    CLIP_PREFIX,
    DUST3R_PREFIX,
    LSEG_PREFIX,
    WeightsFile,
    assemble_official,
    check_fit,
    normalise_dtypes,
    read_weights,
)
from .weights_file import CheckpointError, load_weights_only

__all__ = ["FORMAT", "EMBEDDED_CHECKPOINT", "CheckpointError", "read_checkpoint_file",
           "save_checkpoint", "load_model", "build_model_from_state"]

FORMAT = "lsm_ros/1"
EMBEDDED_CHECKPOINT = Path(__file__).resolve().parent / "weights" / "lsm_tiny.pt"


def read_checkpoint_file(path) -> dict:
    """``torch.load(path, weights_only=True)`` (training metadata allowed, nothing that runs
    code; zip CRC-32 checked first) with clear :class:`CheckpointError` s for missing, directory,
    empty, corrupt and unsafe files."""
    obj = load_weights_only(path)
    if not isinstance(obj, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(obj).__name__}, not a dict of weights")
    return obj


def save_checkpoint(model, path, meta: Optional[dict] = None) -> Path:
    """Write ``model`` (an :class:`~lsm.model.lsm.LSM`) as a self-contained lsm_ros file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"format": FORMAT, "config": model.config.to_dict(), "model": state,
                "meta": dict(meta or {})}, tmp)
    tmp.replace(path)
    return path


def _config_of(wf: WeightsFile) -> LSMConfig:
    try:
        return LSMConfig.from_dict(wf.config)
    except (TypeError, ValueError, AttributeError) as exc:
        raise CheckpointError(f"{wf.path}: invalid model configuration: {exc}") from exc


def build_model_from_state(config: LSMConfig, state: dict, source: str = "checkpoint",
                           check_values: bool = True):
    """Build ``LSM(config)`` and load ``state`` strictly; any missing/unexpected key, shape
    mismatch or NaN/Inf weight raises :class:`CheckpointError` listing them."""
    from .model.lsm import LSM

    try:
        model = LSM(config)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{source}: cannot build config {config.name!r}: {exc}") from exc
    reference = model.state_dict()
    report = check_fit(state, {k: tuple(v.shape) for k, v in reference.items()}, check_values)
    if not report.ok:
        raise CheckpointError(f"{source} does not fit config {config.name!r}: {report}")
    normalise_dtypes(state, reference)
    model.load_state_dict(state, strict=True)
    return model


def load_model(path=None, device: str | torch.device = "cpu", *, dust3r=None, lseg=None, clip=None,
               keep_lsm_dust3r: bool = False, keep_lsm_lseg: bool = False,
               config: str | LSMConfig = "paper"):
    """Build an :class:`~lsm.model.lsm.LSM` from a checkpoint (``None`` or ``""``: the embedded one).

    ``path`` may be

    * an lsm_ros file (its own configuration is used); ``dust3r``/``lseg``/``clip`` files, if
      given, replace those weight groups;
    * the official ``checkpoint-final.pth``: built with ``config`` (default ``"paper"``) and
      merged by the official rule -- ``dust3r`` (``DUSt3R_ViTLarge_BaseDecoder_512_dpt.pth``)
      and ``lseg`` (``demo_e200.ckpt``) are required unless ``keep_lsm_dust3r`` /
      ``keep_lsm_lseg`` keep the LSM checkpoint's own copies; ``clip`` (OpenAI ViT-B/32)
      optionally replaces the text encoder.

    The model is returned in eval mode on ``device`` with ``model.meta`` describing the sources.
    Raises :class:`CheckpointError` for any unreadable, unsafe or non-fitting file.
    """
    path = EMBEDDED_CHECKPOINT if path in (None, "") else Path(path)
    main = read_weights(path)
    if main.layout == "lsm_ros":
        cfg = _config_of(main)
        state = dict(main.state)
        sources = {"model": f"{path.name} (lsm_ros)"}
        for role, prefix in (("dust3r", (DUST3R_PREFIX,)), ("lseg", (LSEG_PREFIX,)), ("clip", (CLIP_PREFIX,))):
            extra = {"dust3r": dust3r, "lseg": lseg, "clip": clip}[role]
            if extra is None:
                continue
            wf = read_weights(extra, expect=role)
            for k in [k for k in state if k.startswith(prefix)]:
                del state[k]
            state.update(wf.state)
            sources[role] = f"{wf.path.name} ({wf.layout})"
        meta = dict(main.meta)
    elif main.layout == "lsm":
        cfg = get_config(config) if isinstance(config, str) else config
        asm = assemble_official(main, dust3r, lseg, clip, keep_lsm_dust3r, keep_lsm_lseg)
        state, sources, meta = asm.state, asm.sources, dict(main.meta)
        meta["notes"] = asm.notes
    else:
        raise CheckpointError(
            f"{path} is a {main.layout!r} weights file, not a whole model: give an lsm_ros file or "
            f"the LSM checkpoint-final.pth, with this file as its {main.layout} weights "
            f"(e.g. lsm-convert convert --lsm checkpoint-final.pth --{main.layout} {path.name} --out model.pt)")
    model = build_model_from_state(cfg, state, source=str(path))
    meta["sources"] = sources
    model.meta = meta
    return model.to(device).eval()
