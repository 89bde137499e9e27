"""Reading weight files safely: ``torch.load(weights_only=True)`` plus inert training metadata.

Official checkpoints carry training metadata next to their tensors: DUSt3R and LSM store
an ``argparse.Namespace`` under ``args``; PyTorch-Lightning checkpoints (LSeg's
``demo_e200.ckpt``) store hyper-parameter containers and callback states. A plain
``weights_only=True`` load refuses all of these. This module lists the Python objects a file
needs *before* unpickling it (:func:`torch.serialization.get_unsafe_globals_in_checkpoint`)
and then:

* ``argparse.Namespace`` is loaded as itself (an attribute bag; nothing runs);
* objects from known metadata libraries (:data:`METADATA_MODULES`: Lightning, OmegaConf,
  pathlib, numpy scalars, ...) are replaced by :class:`MetadataStub` instances, which store
  nothing and run nothing; their values are never needed for weights;
* anything else (``os.system``, ``builtins.eval``, an arbitrary class...) is refused with
  :class:`CheckpointError` naming the object, because the file could run code when loaded.

Nothing here ever calls ``torch.load`` with ``weights_only=False``.
"""
from __future__ import annotations

import argparse
import zipfile
from pathlib import Path
from typing import Dict, List

import torch

# Module prefixes (or exact names) whose objects are training metadata, stubbed when loading.
METADATA_MODULES = (
    "pytorch_lightning.", "lightning_fabric.", "lightning.", "omegaconf.", "pathlib.",
    "numpy.", "collections.", "typing.", "datetime.", "_codecs.encode",
    "builtins.set", "builtins.frozenset", "builtins.slice", "torch.torch_version.",
)
REAL_GLOBALS = {"argparse.Namespace": argparse.Namespace}


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, unreadable, corrupt, unsafe or does not fit the model."""


class MetadataStub:
    """Stand-in for a metadata object of a checkpoint: accepts any construction, keeps only its name."""

    qualname = "?"

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        pass

    def __repr__(self) -> str:
        return f"<{self.qualname}>"


class MappingStub(MetadataStub):
    """Stand-in for a metadata *mapping* (e.g. Lightning's ``AttributeDict``): becomes a plain
    dict, because the safe unpickler fills only plain dicts with items."""

    def __new__(cls, *args, **kwargs):
        return {}


def _stub_for(qualname: str, base: type = MetadataStub) -> type:
    return type("MetadataStub_" + qualname.replace(".", "_"), (base,), {"qualname": qualname})


def is_metadata_global(qualname: str) -> bool:
    return qualname in REAL_GLOBALS or any(
        qualname == m or (m.endswith(".") and qualname.startswith(m)) for m in METADATA_MODULES)


def is_torchscript_archive(path: Path) -> bool:
    """True for a TorchScript zip (``torch.jit.save``), e.g. OpenAI's ``ViT-B-32.pt``."""
    try:
        if not zipfile.is_zipfile(path):
            return False
        with zipfile.ZipFile(path) as z:
            return any(n.endswith("constants.pkl") for n in z.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300]}" if text else type(exc).__name__


def load_weights_only(path) -> object:
    """Load ``path`` with ``weights_only=True``; metadata objects allowed as described above.

    Raises :class:`CheckpointError` for a missing, empty, truncated or corrupt file, for a
    TorchScript archive, and for a pickle that needs any other Python object (it could run code).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes)")
    if is_torchscript_archive(path):
        raise CheckpointError(
            f"{path} is a TorchScript archive, not a weights file; only the CLIP text-encoder role "
            "reads this format (lsm-convert convert --clip FILE)")
    needed: List[str] = []
    try:
        needed = list(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
    except Exception:  # legacy (non-zip) format or a damaged archive: the load below decides
        needed = []
    unsafe = [g for g in needed if not is_metadata_global(g)]
    if unsafe:
        raise CheckpointError(
            f"refusing {path}: its pickle needs the Python object(s) {unsafe[:5]}, which are neither "
            "tensors nor known training metadata, so loading it could run code (weights_only=True)")
    try:
        try:
            return _load(path, needed, MetadataStub)
        except Exception as exc:  # a metadata mapping filled with items: stub it as a dict
            if "SETITEM" not in str(exc):
                raise
            return _load(path, needed, MappingStub)
    except Exception as exc:  # unpickling errors come in many types
        msg = _short(exc)
        if "Unsupported global" in str(exc) or "weights_only" in str(exc).split("\n")[0]:
            raise CheckpointError(
                f"refusing {path}: its pickle needs Python objects beyond plain weights "
                f"(weights_only=True): {msg}") from exc
        raise CheckpointError(f"cannot read checkpoint {path}: {msg} "
                              "(the file is corrupt, truncated or not a PyTorch checkpoint)") from exc


def _load(path: Path, needed: List[str], stub_base: type):
    allowed = [REAL_GLOBALS[g] if g in REAL_GLOBALS else (_stub_for(g, stub_base), g) for g in needed]
    with torch.serialization.safe_globals(allowed):
        try:
            return torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as exc:
            if "mmap" not in str(exc):
                raise
            return torch.load(str(path), map_location="cpu", weights_only=True)


def tensor_dict(obj, what: str) -> Dict[str, torch.Tensor]:
    """Check that ``obj`` is a non-empty ``{str: Tensor}`` mapping; return it as a plain dict."""
    if not isinstance(obj, dict) or not obj:
        raise CheckpointError(f"{what} is not a non-empty dict of tensors (got {type(obj).__name__})")
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{what} has {len(bad)} entries that are not tensors, e.g. {bad[:3]}")
    return dict(obj)
