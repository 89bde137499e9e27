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

``torch.load`` does not check the CRC-32 that a zip-format checkpoint stores for each member, so
a flipped bit inside a tensor loads silently as a wrong weight. :func:`verify_zip_crc` checks
them first (about 2-4 GB/s) and names the damaged member. Legacy (non-zip) files carry no
checksum and are loaded unchecked.

Nothing here ever calls ``torch.load`` with ``weights_only=False``.
"""
from __future__ import annotations

import _compat_pickle
import argparse
import pickle
import pickletools
import re
import zipfile
import zlib
from pathlib import Path
from typing import Dict, List, Optional

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


ZIP_MAGIC = b"PK\x03\x04"  # torch.load's own test for its zip format
_CRC_CHUNK = 16 << 20


def verify_zip_crc(path: Path) -> None:
    """Check the CRC-32 of every member of a zip-format checkpoint (``torch.load`` does not).

    Raises :class:`CheckpointError` naming the first damaged member. Files that are not zip
    archives (legacy pickles) carry no checksum and pass; so does an archive whose directory
    cannot be read (``torch.load`` then reports it). Members written without a CRC
    (``torch.serialization.set_crc32_options(False)`` stores 0) are not checked.
    """
    try:
        with open(path, "rb") as fh:
            if fh.read(4) != ZIP_MAGIC:
                return
            try:
                archive = zipfile.ZipFile(fh)
            except (zipfile.BadZipFile, EOFError, ValueError):
                return
            with archive:
                for info in archive.infolist():
                    if info.CRC == 0 or info.is_dir():
                        continue
                    try:
                        with archive.open(info) as member:
                            while member.read(_CRC_CHUNK):
                                pass
                    except (zipfile.BadZipFile, EOFError, zlib.error, NotImplementedError, ValueError) as exc:
                        reason = str(exc).rstrip(".") or type(exc).__name__
                        if reason.startswith("Bad CRC-32"):
                            reason = "its data does not match the CRC-32 stored in the archive"
                        raise CheckpointError(
                            f"checkpoint {path} is corrupt: member '{info.filename}' of the archive is "
                            f"damaged ({reason}). The file was altered after it was written (a bad "
                            "disk, copy or download): re-copy or re-download it.") from exc
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc.strerror or exc}.") from exc


def _check_path(path: Path) -> None:
    if path.is_dir():
        raise CheckpointError(f"{path} is a directory, not a checkpoint file")
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    if not path.is_file():
        raise CheckpointError(f"{path} is not a regular file, so not a checkpoint file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes)")


# ----------------------------------------------------------------------------- naming objects
_STRING_OPS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "STRING", "BINSTRING",
               "SHORT_BINSTRING"}
_MAX_PICKLES = 5  # a legacy torch file: magic number, protocol, sys info, object, storage keys


class _BoundedReader:
    """A file wrapper for :mod:`pickletools` whose reads never ask for more than the file has
    (a damaged length field must not allocate gigabytes)."""

    def __init__(self, fh, size: int):
        self.fh, self.size = fh, size

    def read(self, n: int = -1) -> bytes:
        left = max(0, self.size - self.fh.tell())
        return self.fh.read(left if n is None or n < 0 else min(n, left))

    def readline(self) -> bytes:
        return self.fh.readline()

    def tell(self) -> int:
        return self.fh.tell()


def _py3_name(module: str, name: str) -> str:
    """``module.name`` as Python 3 (and torch's unpickler) resolves it: protocol 0-2 pickles
    write Python 2 names such as ``__builtin__.set``."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        module, name = _compat_pickle.NAME_MAPPING[(module, name)]
    elif module in _compat_pickle.IMPORT_MAPPING:
        module = _compat_pickle.IMPORT_MAPPING[module]
    return f"{module}.{name}"


def pickle_globals(path: Path) -> List[str]:
    """Names (``module.name``) of the Python objects the pickle(s) of a non-zip file import,
    found by reading its opcodes (:mod:`pickletools`; nothing is unpickled or run)."""
    found: List[str] = []
    try:
        with open(path, "rb") as fh:
            reader = _BoundedReader(fh, path.stat().st_size)
            for _ in range(_MAX_PICKLES):
                strings: List[str] = []  # recent string pushes, for STACK_GLOBAL
                memo: Dict[int, object] = {}
                last: object = None
                for op, arg, _pos in pickletools.genops(reader):
                    name = op.name
                    if name in ("GLOBAL", "INST"):
                        found.append(_py3_name(*str(arg).split(" ", 1)))
                    elif name == "STACK_GLOBAL" and len(strings) >= 2:
                        found.append(_py3_name(strings[-2], strings[-1]))
                    if name in _STRING_OPS:
                        strings.append(arg if isinstance(arg, str) else arg.decode("latin-1"))
                    elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
                        memo[arg] = last
                    elif name == "MEMOIZE":
                        memo[len(memo)] = last
                    elif name in ("GET", "BINGET", "LONG_BINGET") and isinstance(memo.get(arg), str):
                        strings.append(memo[arg])
                    last = strings[-1] if name in _STRING_OPS else arg
    except Exception:  # the end of the pickles, raw tensor data or a damaged file: stop here
        pass
    return list(dict.fromkeys(found))


def _torch_allowed_globals() -> Optional[set]:
    try:
        from torch import _weights_only_unpickler as wou

        return set(wou._get_allowed_globals()) | set(wou._get_user_allowed_globals())
    except Exception:  # private torch API changed: no static listing for non-zip files
        return None


def _needed_globals(path: Path) -> List[str]:
    """The globals a file needs beyond torch's own allowlist, listed without unpickling."""
    try:
        with open(path, "rb") as fh:
            is_zip = fh.read(4) == ZIP_MAGIC
    except OSError:
        return []
    if is_zip:
        try:
            return list(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
        except Exception:  # a damaged archive: the load below decides
            return []
    allowed = _torch_allowed_globals()
    if allowed is None:
        return []
    return [g for g in pickle_globals(path) if g not in allowed]


_GLOBAL_IN_MESSAGE = re.compile(r"\bGLOBAL\s+([A-Za-z_][\w.]*[\w])")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _globals_in_message(text: str) -> List[str]:
    """Globals named in torch's UnpicklingError text ("Unsupported global: GLOBAL x.y was not an
    allowed global", "unsupported GLOBAL posix.system whose module posix is blocked"); torch
    writes ``builtins.eval`` as ``eval``."""
    names = [n if "." in n else f"builtins.{n}" for n in _GLOBAL_IN_MESSAGE.findall(text)]
    return list(dict.fromkeys(names))


def _display(qualname: str) -> str:
    module, _, attr = qualname.rpartition(".")
    return f"{qualname} (os.{attr})" if module in ("posix", "nt") else qualname


def _unsafe_message(path: Path, names: List[str]) -> str:
    shown = ", ".join(_display(n) for n in names[:5])
    if len(names) > 5:
        shown += f" and {len(names) - 5} more"
    what = "the Python object" if len(names) == 1 else "the Python objects"
    return (f"refusing {path}: the file contains {what} {shown}, which could run code when loaded "
            "(neither a tensor nor known training metadata). The file was not loaded and no code "
            "ran; use weights from a trusted source, saved as tensors and plain data only.")


def error_sentence(exc: BaseException) -> str:
    """One complete sentence describing ``exc``, without torch's advice on ``weights_only``."""
    inner = exc
    if isinstance(exc, pickle.UnpicklingError) and isinstance(exc.__context__, pickle.UnpicklingError):
        inner = exc.__context__  # torch wraps the unpickler's own error in its advice
    text = _ANSI.sub("", str(inner))
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1]
    sentences = re.split(r"(?<=[.!?])\s+|\n+", text)
    kept = [t.strip() for t in sentences
            if t.strip() and not re.search(r"weights_only|trusted source|documentation of torch\.load|"
                                           r"file an issue|Weights only load failed|two options", t)]
    body, size = [], 0
    for sentence in kept:
        if body and size + len(sentence) > 300:
            break
        body.append(sentence)
        size += len(sentence) + 1
    reason = " ".join(body).rstrip(" .:;,")
    return f"{type(inner).__name__}: {reason}" if reason else type(inner).__name__


def load_weights_only(path) -> object:
    """Load ``path`` with ``weights_only=True``; metadata objects allowed as described above.

    Raises :class:`CheckpointError` for a missing path, a directory, an empty, truncated or
    corrupt file (zip CRC-32 checked first), a TorchScript archive, and for a pickle that needs
    any other Python object (it could run code; the object is named).
    """
    path = Path(path)
    _check_path(path)
    if is_torchscript_archive(path):
        raise CheckpointError(
            f"{path} is a TorchScript archive, not a weights file; only the CLIP text-encoder role "
            "reads this format (lsm-convert convert --clip FILE)")
    verify_zip_crc(path)
    needed = _needed_globals(path)
    unsafe = [g for g in needed if not is_metadata_global(g)]
    if unsafe:
        raise CheckpointError(_unsafe_message(path, unsafe))
    try:
        try:
            return _load(path, needed, MetadataStub)
        except Exception as exc:  # a metadata mapping filled with items: stub it as a dict
            if "SETITEM" not in str(exc):
                raise
            return _load(path, needed, MappingStub)
    except Exception as exc:  # unpickling errors come in many types
        named = _globals_in_message(str(exc)) if isinstance(exc, pickle.UnpicklingError) else []
        unsafe = [g for g in named if not is_metadata_global(g)]
        if unsafe:
            raise CheckpointError(_unsafe_message(path, unsafe)) from exc
        if isinstance(exc, OSError):
            raise CheckpointError(f"cannot read checkpoint {path}: {exc.strerror or exc}.") from exc
        raise CheckpointError(f"cannot read checkpoint {path}: the file is corrupt, truncated or not a "
                              f"PyTorch checkpoint ({error_sentence(exc)}).") from exc


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
