"""``lsm-convert``: inspect weight files and convert the official LSM release into one lsm_ros file.

Usage::

    lsm-convert inspect FILE [--config paper]
    lsm-convert convert --lsm checkpoint-final.pth --dust3r DUSt3R_ViTLarge_BaseDecoder_512_dpt.pth \
        --lseg demo_e200.ckpt [--clip ViT-B-32.pt] --out lsm_paper.pt
    lsm-convert convert --lsm checkpoint-final.pth --keep-lsm-dust3r --keep-lsm-lseg --out lsm_paper_ft.pt

``inspect`` prints the layout, tensor count and size, dtypes, metadata and per-group key counts
of one file, and whether it fits the configuration (missing/unexpected keys, shape mismatches,
NaN/Inf). Exit status 0 when it fits, 1 when not, 2 when the file cannot be read.

``convert`` default = the official loading rule (``LSM_Dust3R.from_pretrained``): the LSM
checkpoint's own DUSt3R and LSeg weights are dropped and taken from ``--dust3r`` and
``--lseg``. ``--keep-lsm-dust3r`` / ``--keep-lsm-lseg`` keep the LSM checkpoint's copies
instead (its DUSt3R decoder/heads were fine-tuned with LSM). ``--clip`` replaces the CLIP text
encoder (default: the one inside the LSeg weights, as in the official code). The output is
a self-contained lsm_ros checkpoint (config + weights + provenance) for ``LSM.load`` and the
ROS node's ``checkpoint`` parameter.
"""
from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import torch
from torch.overrides import TorchFunctionMode

from .config import LSMConfig, get_config
from .official_weights import (
    CLIP_PREFIX,
    DUST3R_PREFIX,
    LSEG_PREFIX,
    FitReport,
    assemble_official,
    check_fit,
    file_sha256,
    normalise_dtypes,
    read_weights,
)
from .weights_file import CheckpointError

FORMAT = "lsm_ros/1"


class _MetaFactories(TorchFunctionMode):
    """Create parameters/buffers on the meta device (shapes only), but keep the small
    ``arange``/``linspace`` helpers real so model code can read their values."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        from torch.utils._device import _device_constructors

        kwargs = dict(kwargs or {})
        if func is torch.Tensor.to and args and isinstance(args[0], torch.Tensor) and args[0].is_meta:
            # model.to(device) inside constructors (open_clip): stay on meta, keep any dtype change
            args = tuple("meta" if isinstance(a, (str, torch.device)) else a for a in args)
            if "device" in kwargs:
                kwargs["device"] = "meta"
            return func(*args, **kwargs)
        if func in _device_constructors() and func not in (torch.arange, torch.linspace, torch.logspace) \
                and kwargs.get("device") is None:
            kwargs["device"] = "meta"
        return func(*args, **kwargs)


def model_reference(config: LSMConfig) -> Dict[str, torch.Tensor]:
    """The model's state dict on the meta device (key -> shape/dtype, no memory, ~1 s for paper)."""
    from .model.lsm import LSM

    with _MetaFactories():
        model = LSM(config)
    return model.state_dict()


def _group_counts(state) -> List[Tuple[str, int, int]]:
    groups: Dict[str, List[int]] = {}
    for k, v in state.items():
        parts = k.split(".")
        g = ".".join(parts[:3] if k.startswith("dust3r.") else parts[:2])
        c = groups.setdefault(g, [0, 0])
        c[0] += 1
        c[1] += v.numel()
    return [(g, n, e) for g, (n, e) in groups.items()]


def _subset_reference(reference, layout: str):
    prefix = {"dust3r": DUST3R_PREFIX, "lseg": LSEG_PREFIX, "clip": CLIP_PREFIX}.get(layout)
    if prefix is None:
        return reference
    return {k: v for k, v in reference.items() if k.startswith(prefix)}


def inspect_file(path, config: Optional[str] = None, out=None) -> FitReport:
    """Print what ``path`` holds and how it fits ``config`` (lsm_ros files: their own config)."""
    wf = read_weights(path, expect="clip" if _looks_torchscript(path) else None)
    p = lambda *a: print(*a, file=out or sys.stdout)  # noqa: E731
    p(f"file:     {wf.path} ({wf.path.stat().st_size / 1e6:.1f} MB)")
    p(f"layout:   {wf.layout}")
    dtypes = Counter(str(v.dtype).replace("torch.", "") for v in wf.state.values())
    p(f"tensors:  {len(wf.state)} ({wf.num_elements / 1e6:.3f} M elements; {dict(dtypes)})")
    for k, v in wf.meta.items():
        p(f"meta:     {k} = {str(v)[:200]}")
    p("groups (as LSM keys):")
    for g, n, e in _group_counts(wf.state):
        p(f"  {g:<48} {n:>5} tensors {e / 1e6:>10.3f} M")
    if wf.layout == "lsm_ros":
        try:
            cfg = LSMConfig.from_dict(wf.config)
        except (TypeError, ValueError, AttributeError) as exc:
            raise CheckpointError(f"{wf.path}: invalid model configuration: {exc}") from exc
    else:
        cfg = get_config(config or "paper")
    reference = _subset_reference(model_reference(cfg), wf.layout)
    report = check_fit(wf.state, {k: tuple(v.shape) for k, v in reference.items()})
    scope = "" if wf.layout in ("lsm_ros", "lsm") else f" ({wf.layout} part)"
    p(f"fits config {cfg.name!r}{scope}: {'yes' if report.ok else 'NO'}")
    for line in report.lines(limit=8):
        p(f"  {line}")
    if wf.layout == "lsm" and report.ok:
        p("  note: the official loader replaces this file's dust3r/lseg weights with the separate "
          "DUSt3R and LSeg files (lsm-convert convert --dust3r F --lseg F), or keep them with "
          "--keep-lsm-dust3r/--keep-lsm-lseg")
    return report


def _looks_torchscript(path) -> bool:
    from .weights_file import is_torchscript_archive

    return Path(path).is_file() and is_torchscript_archive(Path(path))


def convert(lsm, out, dust3r=None, lseg=None, clip=None, keep_lsm_dust3r: bool = False,
            keep_lsm_lseg: bool = False, config: str = "paper", hash_files: bool = True,
            log=print) -> Path:
    """Merge the official files (see :func:`lsm.official_weights.assemble_official`), check the
    result against ``config`` and write one lsm_ros checkpoint to ``out``. Returns ``out``."""
    cfg = get_config(config)
    asm = assemble_official(lsm, dust3r, lseg, clip, keep_lsm_dust3r, keep_lsm_lseg)
    for note in asm.notes:
        log(f"note: {note}")
    reference = model_reference(cfg)
    report = check_fit(asm.state, {k: tuple(v.shape) for k, v in reference.items()})
    if not report.ok:
        raise CheckpointError(f"the merged weights do not fit config {cfg.name!r}: {report}")
    cast = normalise_dtypes(asm.state, reference)
    if cast:
        log(f"note: cast {len(cast)} tensors to the model's dtypes (e.g. {cast[:2]})")
    meta = {
        "converted_from": {f.layout: f.path.name for f in asm.files},
        "sha256": {f.path.name: file_sha256(f.path) for f in asm.files} if hash_files else {},
        "sources": asm.sources,
        "rule": ("official (LSM_Dust3R.from_pretrained): dust3r/lseg from their own files"
                 if not (keep_lsm_dust3r or keep_lsm_lseg) else
                 f"keep_lsm_dust3r={keep_lsm_dust3r}, keep_lsm_lseg={keep_lsm_lseg}"),
        "notes": asm.notes,
    }
    for f in asm.files:
        for k, v in f.meta.items():
            meta[f"{f.layout}.{k}"] = v
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    state = {k: v.contiguous() for k, v in asm.state.items()}
    torch.save({"format": FORMAT, "config": cfg.to_dict(), "model": state, "meta": meta}, tmp)
    tmp.replace(out)
    for group, src in asm.sources.items():
        log(f"{group:<7} <- {src}")
    log(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB, {len(state)} tensors, config {cfg.name!r})")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="lsm-convert", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    ins = sub.add_parser("inspect", help="print what a weights file holds and whether it fits")
    ins.add_argument("file")
    ins.add_argument("--config", default=None, help="configuration to check against (default: paper; "
                     "lsm_ros files use their own)")
    con = sub.add_parser("convert", help="merge official weights into one lsm_ros checkpoint")
    con.add_argument("--lsm", required=True, help="LSM checkpoint-final.pth")
    con.add_argument("--dust3r", help="DUSt3R_ViTLarge_BaseDecoder_512_dpt.pth (official rule: required)")
    con.add_argument("--lseg", help="LSeg demo_e200.ckpt (official rule: required)")
    con.add_argument("--clip", help="OpenAI CLIP ViT-B/32 weights (default: the CLIP inside the LSeg weights)")
    con.add_argument("--keep-lsm-dust3r", action="store_true",
                     help="keep the LSM checkpoint's own (fine-tuned) DUSt3R weights instead of --dust3r")
    con.add_argument("--keep-lsm-lseg", action="store_true",
                     help="keep the LSM checkpoint's own LSeg weights instead of --lseg")
    con.add_argument("--config", default="paper")
    con.add_argument("--no-hash", action="store_true", help="skip the sha256 of the input files")
    con.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    try:
        if a.command == "inspect":
            return 0 if inspect_file(a.file, a.config).ok else 1
        convert(a.lsm, a.out, a.dust3r, a.lseg, a.clip, a.keep_lsm_dust3r, a.keep_lsm_lseg, a.config,
                hash_files=not a.no_hash)
        return 0
    except (CheckpointError, ValueError) as exc:
        print(f"lsm-convert: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
