"""Official LSM / DUSt3R / LSeg / CLIP weight files -> one state dict for :class:`lsm.model.lsm.LSM`.

Recognised layouts (:func:`detect_layout`), each mapped to our (= the official LSM) key names:

========== ====================================================== ==================================
layout     file                                                   keys -> LSM keys
========== ====================================================== ==================================
lsm_ros    ours: ``{"format": "lsm_ros/1", "config", "model"}``   unchanged
lsm        ``checkpoint-final.pth``: ``{"model": LSM_Dust3R sd}`` unchanged
dust3r     ``DUSt3R_ViTLarge_BaseDecoder_512_dpt.pth``:           ``k`` -> ``dust3r.dust3r.k``
           ``{"model": AsymmetricCroCo3DStereo sd}``
lseg       ``demo_e200.ckpt``: ``{"state_dict": {"net.k": ...}}``   ``net.k`` -> ``lseg_feature_extractor.k``
clip       OpenAI CLIP ViT-B/32 state dict (or its TorchScript    ``k`` -> ``lseg_feature_extractor.
           archive ``ViT-B-32.pt``, role ``clip`` only)            clip_pretrained.k``
========== ====================================================== ==================================

A ``module.`` prefix (DataParallel) is stripped. Bare state dicts (no ``model``/``state_dict``
wrapper) are recognised by their keys too.

**Assembly rule** (:func:`assemble_official`). The official loader
``LSM_Dust3R.from_pretrained`` builds DUSt3R and LSeg from their own files and *drops* every
``dust3r*`` and ``lseg_feature_extractor*`` key of ``checkpoint-final.pth``; so by default
(``keep_lsm_dust3r=False, keep_lsm_lseg=False``) the DUSt3R and LSeg files are required and
replace those groups. ``keep_lsm_dust3r`` / ``keep_lsm_lseg`` instead keep the LSM
checkpoint's own copies (its DUSt3R decoder and heads were fine-tuned with LSM; the official
demo does not use them). A CLIP file, if given, replaces only
``lseg_feature_extractor.clip_pretrained.*`` (the text encoder); without it, CLIP comes with
the LSeg weights, as in the official code (LSeg's strict load overwrites ``clip.load``).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Tuple

import torch

from .weights_file import (
    CheckpointError,
    error_sentence,
    is_torchscript_archive,
    load_weights_only,
    tensor_dict,
    verify_zip_crc,
)

LSM_ROS_FORMAT = "lsm_ros/1"
DUST3R_PREFIX = "dust3r.dust3r."
LSEG_PREFIX = "lseg_feature_extractor."
CLIP_PREFIX = "lseg_feature_extractor.clip_pretrained."
# OpenAI's archive carries these as tensors; open_clip / LSM modules hold them as attributes.
CLIP_META_KEYS = ("input_resolution", "context_length", "vocab_size")
LAYOUTS = ("lsm_ros", "lsm", "dust3r", "lseg", "clip")


@dataclass
class WeightsFile:
    """One file's tensors renamed to LSM keys, with what was found in it."""

    path: Path
    layout: str
    state: Dict[str, torch.Tensor]  # LSM key names
    meta: Dict[str, object] = field(default_factory=dict)  # e.g. {"args.model": "...", "epoch": 99}
    config: Optional[dict] = None  # lsm_ros files only

    @property
    def num_elements(self) -> int:
        return sum(v.numel() for v in self.state.values())


@dataclass
class FitReport:
    """How a state dict fits a model: missing/unexpected keys, shape mismatches, bad values."""

    missing: List[str] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)
    mismatched: List[Tuple[str, tuple, tuple]] = field(default_factory=list)  # key, got, expected
    nonfinite: List[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched or self.nonfinite)

    def lines(self, limit: int = 5) -> List[str]:
        out = []
        if self.missing:
            out.append(f"missing {len(self.missing)} keys: {self.missing[:limit]}")
        if self.unexpected:
            out.append(f"unexpected {len(self.unexpected)} keys: {self.unexpected[:limit]}")
        if self.mismatched:
            shown = [f"{k} {tuple(g)} (expected {tuple(e)})" for k, g, e in self.mismatched[:limit]]
            out.append(f"{len(self.mismatched)} shape mismatches: {shown}")
        if self.nonfinite:
            out.append(f"{len(self.nonfinite)} tensors with NaN/Inf: {self.nonfinite[:limit]}")
        return out

    def __str__(self) -> str:
        return "; ".join(self.lines()) or "fits exactly"


# ----------------------------------------------------------------------------- layouts
def _strip(state: Mapping[str, torch.Tensor], prefix: str) -> Dict[str, torch.Tensor]:
    if state and all(k.startswith(prefix) for k in state):
        return {k[len(prefix):]: v for k, v in state.items()}
    return dict(state)


def _layout_of_state(keys) -> Optional[str]:
    keys = list(keys)
    if any(k.startswith((DUST3R_PREFIX, "point_transformer.", "gaussian_head.")) for k in keys):
        return "lsm"
    if any(k.startswith("net.") for k in keys) and any(k.startswith(("net.scratch.", "net.pretrained."))
                                                       for k in keys):
        return "lseg"
    if any(k.startswith(("enc_blocks.", "patch_embed.")) for k in keys) and \
            any(k.startswith(("dec_blocks.", "downstream_head1.")) for k in keys):
        return "dust3r"
    if "token_embedding.weight" in keys and any(k.startswith("transformer.resblocks.") for k in keys):
        return "clip"
    return None


def detect_layout(obj) -> Tuple[str, Dict[str, torch.Tensor]]:
    """``(layout, raw_state_dict)`` of a loaded checkpoint object (see the module table)."""
    if not isinstance(obj, dict):
        raise CheckpointError(f"the file holds a {type(obj).__name__}, not a dict of weights")
    if obj.get("format") == LSM_ROS_FORMAT:
        return "lsm_ros", tensor_dict(obj.get("model"), "the lsm_ros file's 'model'")
    for wrapper in ("model", "state_dict"):
        inner = obj.get(wrapper)
        if isinstance(inner, dict) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
            state = _strip(tensor_dict(inner, f"'{wrapper}'"), "module.")
            layout = _layout_of_state(state)
            if layout:
                return layout, state
    if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        state = _strip(tensor_dict(obj, "the state dict"), "module.")
        layout = _layout_of_state(state)
        if layout:
            return layout, state
    keys = sorted(map(str, obj))[:8]
    raise CheckpointError(
        f"unrecognised weights layout (top-level keys {keys}); expected an lsm_ros checkpoint, "
        "LSM checkpoint-final.pth ('model'), DUSt3R .pth ('model'), LSeg .ckpt ('state_dict' "
        "with 'net.' keys) or an OpenAI CLIP ViT-B/32 state dict")


def to_lsm_keys(layout: str, state: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Rename a raw state dict of ``layout`` to LSM key names."""
    if layout in ("lsm_ros", "lsm"):
        return dict(state)
    if layout == "dust3r":
        return {DUST3R_PREFIX + k: v for k, v in state.items()}
    if layout == "lseg":
        return {LSEG_PREFIX + k[len("net."):]: v for k, v in state.items() if k.startswith("net.")}
    if layout == "clip":
        return {CLIP_PREFIX + k: v for k, v in state.items() if k not in CLIP_META_KEYS}
    raise ValueError(f"unknown layout {layout!r}")


def _metadata(obj: dict) -> Dict[str, object]:
    meta: Dict[str, object] = {}
    args = obj.get("args")
    if args is not None and hasattr(args, "__dict__"):
        for name in ("model", "pretrained", "train_dataset"):
            value = getattr(args, name, None)
            if isinstance(value, str):
                meta[f"args.{name}"] = value
    for name in ("epoch", "global_step", "pytorch-lightning_version"):
        if isinstance(obj.get(name), (int, float, str)):
            meta[name] = obj[name]
    if isinstance(obj.get("meta"), dict):
        meta.update({k: v for k, v in obj["meta"].items() if isinstance(v, (int, float, str, bool))})
    return meta


def _read_torchscript_clip(path: Path) -> Dict[str, torch.Tensor]:
    """OpenAI's ``ViT-B-32.pt``: ``torch.jit.load`` (TorchScript, no Python unpickling); only its
    state dict is used, none of its code is run."""
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return dict(torch.jit.load(str(path), map_location="cpu").state_dict())
    except Exception as exc:
        raise CheckpointError(f"cannot read TorchScript archive {path} ({error_sentence(exc)}).") from exc


def read_weights(path, expect: Optional[str] = None) -> WeightsFile:
    """Read one weights file, detect its layout and rename its tensors to LSM keys.

    ``expect``: a layout from :data:`LAYOUTS` the file must have (a role such as ``--dust3r``);
    ``"clip"`` also accepts OpenAI's TorchScript archive. Zip archives have their CRC-32 checked
    before anything is read (:func:`~lsm.weights_file.verify_zip_crc`). Raises :class:`CheckpointError`.
    """
    path = Path(path)
    if expect is not None and expect not in LAYOUTS:
        raise ValueError(f"expect must be one of {LAYOUTS}, got {expect!r}")
    if expect == "clip" and path.is_file() and is_torchscript_archive(path):
        verify_zip_crc(path)  # torch.jit.load does not check the members' CRC-32 either
        raw = _read_torchscript_clip(path)
        layout, obj = _layout_of_state(raw), {}
        if layout != "clip":
            raise CheckpointError(f"{path}: TorchScript archive is not a CLIP model")
        state = raw
    else:
        obj = load_weights_only(path)
        layout, state = detect_layout(obj)
    if expect is not None and layout != expect:
        raise CheckpointError(f"{path} is a {layout!r} weights file, but a {expect!r} file is needed here")
    renamed = to_lsm_keys(layout, state)
    if not renamed:
        raise CheckpointError(f"{path}: no {layout} tensors found")
    config = obj.get("config") if layout == "lsm_ros" else None
    return WeightsFile(path, layout, renamed, _metadata(obj) if isinstance(obj, dict) else {}, config)


# ----------------------------------------------------------------------------- fitting
def check_fit(state: Mapping[str, torch.Tensor], expected: Mapping[str, Tuple[int, ...]],
              check_values: bool = True) -> FitReport:
    """Compare ``state`` with the model's ``expected`` key -> shape map."""
    report = FitReport()
    report.missing = sorted(set(expected) - set(state))
    report.unexpected = sorted(set(state) - set(expected))
    report.mismatched = [(k, tuple(state[k].shape), tuple(expected[k])) for k in expected
                         if k in state and tuple(state[k].shape) != tuple(expected[k])]
    if check_values:
        report.nonfinite = [k for k, v in state.items()
                            if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    return report


def _group(key: str) -> str:
    if key.startswith(DUST3R_PREFIX) or key.startswith("dust3r."):
        return "dust3r"
    if key.startswith(CLIP_PREFIX):
        return "clip"
    if key.startswith(LSEG_PREFIX):
        return "lseg"
    return "lsm"


@dataclass
class Assembly:
    """The merged state dict and where each key group came from."""

    state: Dict[str, torch.Tensor]
    sources: Dict[str, str]  # group ("lsm", "dust3r", "lseg", "clip") -> "file (layout)"
    files: List[WeightsFile]
    notes: List[str] = field(default_factory=list)


def assemble_official(lsm, dust3r=None, lseg=None, clip=None, keep_lsm_dust3r: bool = False,
                      keep_lsm_lseg: bool = False) -> Assembly:
    """Merge official files into one LSM state dict following the official loading rule.

    ``lsm``: ``checkpoint-final.pth`` (path or :class:`WeightsFile`); ``dust3r``, ``lseg``,
    ``clip``: the separate files (paths, ``WeightsFile`` or ``None``). See the module docstring
    for the rule and the two ``keep_lsm_*`` alternatives. Raises :class:`CheckpointError`.
    """
    def _read(x, role):
        return x if isinstance(x, WeightsFile) or x is None else read_weights(x, expect=role)

    lsm_f = _read(lsm, "lsm")
    if lsm_f is None:
        raise CheckpointError("an LSM checkpoint (checkpoint-final.pth) is required")
    dust3r_f, lseg_f, clip_f = _read(dust3r, "dust3r"), _read(lseg, "lseg"), _read(clip, "clip")
    if keep_lsm_dust3r and dust3r_f is not None:
        raise CheckpointError("contradictory choice: a DUSt3R file was given together with keep_lsm_dust3r")
    if keep_lsm_lseg and lseg_f is not None:
        raise CheckpointError("contradictory choice: an LSeg file was given together with keep_lsm_lseg")
    if not keep_lsm_dust3r and dust3r_f is None:
        raise CheckpointError(
            "the official rule takes the DUSt3R weights from DUSt3R_ViTLarge_BaseDecoder_512_dpt.pth "
            "and drops the LSM checkpoint's own: give that file (--dust3r), or choose to keep the "
            "LSM checkpoint's fine-tuned DUSt3R weights (--keep-lsm-dust3r)")
    if not keep_lsm_lseg and lseg_f is None:
        raise CheckpointError(
            "the official rule takes the LSeg weights from demo_e200.ckpt and drops the LSM "
            "checkpoint's own: give that file (--lseg), or keep the LSM checkpoint's LSeg "
            "weights (--keep-lsm-lseg)")

    state: Dict[str, torch.Tensor] = {}
    sources: Dict[str, str] = {}
    notes: List[str] = []
    drop = set()
    if not keep_lsm_dust3r:
        drop.add("dust3r")
    if not keep_lsm_lseg:
        drop |= {"lseg", "clip"}
    dropped = 0
    for k, v in lsm_f.state.items():
        if _group(k) in drop:
            dropped += 1
        else:
            state[k] = v
    sources["lsm"] = f"{lsm_f.path.name} (lsm)"
    if dropped:
        notes.append(f"dropped {dropped} dust3r/lseg tensors of {lsm_f.path.name} (official rule)")
    if keep_lsm_dust3r:
        sources["dust3r"] = f"{lsm_f.path.name} (lsm, kept)"
    if keep_lsm_lseg:
        sources["lseg"] = sources["clip"] = f"{lsm_f.path.name} (lsm, kept)"
    for f, groups in ((dust3r_f, ("dust3r",)), (lseg_f, ("lseg", "clip"))):
        if f is not None:
            state.update(f.state)
            for g in groups:
                sources[g] = f"{f.path.name} ({f.layout})"
    if clip_f is not None:
        replaced = [k for k in state if k.startswith(CLIP_PREFIX)]
        for k in replaced:
            del state[k]
        state.update(clip_f.state)
        sources["clip"] = f"{clip_f.path.name} ({clip_f.layout})"
        notes.append(f"text encoder: {len(clip_f.state)} CLIP tensors from {clip_f.path.name} "
                     f"replace {len(replaced)}")
    files = [f for f in (lsm_f, dust3r_f, lseg_f, clip_f) if f is not None]
    return Assembly(state, sources, files, notes)


def normalise_dtypes(state: Dict[str, torch.Tensor], like: Mapping[str, torch.Tensor]) -> List[str]:
    """Cast tensors in place to the dtype of the model's tensor of the same key; return the cast keys."""
    cast = []
    for k, v in list(state.items()):
        ref = like.get(k)
        if ref is not None and v.dtype != ref.dtype:
            state[k] = v.to(ref.dtype)
            cast.append(k)
    return cast


def file_sha256(path, chunk: int = 1 << 24) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()
