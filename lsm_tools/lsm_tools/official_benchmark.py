"""The official NVlabs/LSM forward pass on CPU, timed and measured like ours (``lsm-benchmark
--paper --official PATH``).

The official code is never part of this repository: it is read from a local checkout the user
gives (NVlabs/LSM with its submodules dust3r + croco, PointTransformerV3 and lang_seg under
``submodules/``, as ``git submodule update --init --recursive`` leaves them). It runs in a fresh
process (``python -m lsm_tools.benchmark --official-worker SPEC``) so that its peak RSS is its
own, loads the state dict of our paper model (the key names are the official ones) strictly into
``LSM_Dust3R(configs/default.yaml)``, checks its pointmaps against ours and times its forward
pass with :class:`lsm_tools.benchmark.PeakMemory`, handed to the worker by the caller.

Patched at import time in that process only (no official file is changed), because the official
code needs CUDA or downloads weights in these places:

* ``simple_knn._C.distCUDA2`` (CUDA kernel): mean squared distance to the 3 nearest
  neighbours, exact, from a scipy KD-tree;
* ``torch_scatter`` (no CPU wheel on PyPI), when it is not importable: ``segment_csr`` from
  ``torch.segment_reduce``;
* flash attention: PTv3 built with ``enable_flash=False`` (its own non-flash attention path);
* spconv on CPU: the Native algorithm (a CUDA build of spconv picks MaskImplicitGemm, which
  asks for a CUDA stream; all algorithms share the weight layout), and since CPU kernels refuse
  a bias ("cpu don't support act and bias"), biased convolutions add it to the output features;
* ``clip.load('ViT-B/32', device='cuda')`` and timm ``pretrained=True`` download weights: a
  random-init CLIP ViT-B/32 on CPU and ``pretrained=False``;
* ``AsymmetricCroCo3DStereo.from_pretrained`` / ``LSegFeatureExtractor.from_pretrained`` read
  checkpoint files: the same modules built with the DUSt3R_ViTLarge_BaseDecoder_512_dpt
  arguments / LSeg's own constructor.
All random weights are then overwritten by the strict state-dict load.
"""
from __future__ import annotations

import collections
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Union

PathLike = Union[str, "os.PathLike[str]"]

# Files that make a directory an NVlabs/LSM checkout with its submodules in place.
CHECKOUT_FILES = (
    "large_spatial_model/model.py",
    "large_spatial_model/utils/path_manager.py",
    "configs/default.yaml",
    "submodules/dust3r/dust3r/model.py",
    "submodules/dust3r/croco/models/croco.py",
    "submodules/PointTransformerV3/model.py",
    "submodules/lang_seg/modules/models/lseg_net.py",
)
# module the official forward imports -> its pip package
DEPENDENCIES = {
    "einops": "einops", "addict": "addict", "clip": "openai-clip", "pandas": "pandas",
    "plyfile": "plyfile", "huggingface_hub": "huggingface-hub", "timm": "timm",
    "spconv": "spconv", "scipy": "scipy", "yaml": "pyyaml", "packaging": "packaging",
}
# DUSt3R_ViTLarge_BaseDecoder_512_dpt.pth's ``args.model``, as dust3r's load_model rewrites it
DUST3R_ARGS = dict(pos_embed="RoPE100", patch_embed_cls="PatchEmbedDust3R", img_size=(512, 512),
                   head_type="dpt", output_mode="pts3d", depth_mode=("exp", -float("inf"), float("inf")),
                   conf_mode=("exp", 1, float("inf")), enc_embed_dim=1024, enc_depth=24,
                   enc_num_heads=16, dec_embed_dim=768, dec_depth=12, dec_num_heads=12,
                   landscape_only=False)
# the same-weights check: max |official - ours| / max |ours| over both views' pointmaps
EQUIVALENCE_TOL = 1e-3


class OfficialCheckoutError(ValueError):
    """The path given is not an NVlabs/LSM checkout with its submodules."""


class OfficialDependencyError(RuntimeError):
    """A package the official forward pass imports is missing."""


class OfficialRunError(RuntimeError):
    """The official worker process failed."""


def check_checkout(path: PathLike) -> Path:
    """The resolved checkout root, or :class:`OfficialCheckoutError` naming what is missing."""
    root = Path(path).expanduser().resolve()
    if not root.is_dir():
        raise OfficialCheckoutError(f"{root} is not a directory: --official needs a local NVlabs/LSM checkout")
    missing = [f for f in CHECKOUT_FILES if not (root / f).is_file()]
    if missing:
        hint = ("its submodules are missing: run 'git submodule update --init --recursive' in it"
                if (root / CHECKOUT_FILES[0]).is_file() else
                "clone https://github.com/NVlabs/LSM with --recursive")
        raise OfficialCheckoutError(f"{root} is not an NVlabs/LSM checkout: missing {', '.join(missing)} ({hint})")
    return root


def official_commit(root: PathLike) -> Optional[str]:
    """``git rev-parse HEAD`` of the checkout when it has a ``.git``, else None."""
    root = Path(root)
    if not (root / ".git").exists():
        return None
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None


def _pip_hint(package: str, deps: Optional[PathLike]) -> str:
    target = str(deps) if deps else "/path/to/official_deps"
    return f"{sys.executable} -m pip install --target {target} {package}"


def _run_worker(spec: Dict[str, object], timeout: Optional[float],
                log: Optional[Callable[[str], None]]) -> Dict[str, object]:
    """Run the worker process on ``spec``; its JSON result, or the matching error raised."""
    with tempfile.TemporaryDirectory(prefix="lsm_official_") as tmp:
        spec = dict(spec, result=str(Path(tmp) / "result.json"))
        spec_file = Path(tmp) / "spec.json"
        spec_file.write_text(json.dumps(spec))
        cmd = [sys.executable, "-m", "lsm_tools.benchmark", "--official-worker", str(spec_file)]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        tail: collections.deque = collections.deque(maxlen=40)  # the official code prints; kept for errors

        def pump() -> None:
            for line in proc.stdout:
                tail.append(line.rstrip())
                if log and line.startswith("official_benchmark:"):
                    log(line.rstrip())

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise OfficialRunError(f"the official worker ran over {timeout:.0f} s") from None
        finally:
            reader.join(timeout=10)
        result_file = Path(spec["result"])
        result = json.loads(result_file.read_text()) if result_file.is_file() else None
    if result and "error" in result:
        kind = {"dependency": OfficialDependencyError, "checkout": OfficialCheckoutError}.get(
            result.get("kind"), OfficialRunError)
        raise kind(result["error"])
    if rc != 0 or result is None:
        raise OfficialRunError(f"the official worker exited with status {rc}:\n" + "\n".join(tail))
    return result


def check_official(official_path: PathLike, deps: Optional[PathLike] = None,
                   timeout: Optional[float] = 600) -> Path:
    """Fail early (seconds, no model built): the checkout is complete and the official model's
    modules import in a fresh process with the shims. Returns the checkout root."""
    root = check_checkout(official_path)
    if deps is not None and not Path(deps).is_dir():
        raise OfficialDependencyError(f"--official-deps {deps} is not a directory")
    _run_worker({"official": str(root), "deps": str(deps) if deps else None, "check_only": True},
                timeout, None)
    return root


def measure_official(official_path: PathLike, state_dict_file: PathLike, images_file: PathLike,
                     repeats: int = 2, deps: Optional[PathLike] = None, threads: Optional[int] = None,
                     timeout: Optional[float] = 3600,
                     log: Optional[Callable[[str], None]] = None) -> Dict[str, object]:
    """The official ``LSM_Dust3R`` forward pass, in its own process, with our weights and pair.

    ``state_dict_file``: ``torch.save`` of our paper model's state dict (official key names).
    ``images_file``: ``torch.save`` of {"img1", "img2": (1,3,S,S) RGB in [0,1], optional
    "pts": our fp32 pointmaps, view 1 then view 2 in view 1's frame, (2,S,S,3) or (2,1,S,S,3)}.
    ``deps``: a folder put first on the worker's sys.path (packages the official code needs
    that our venv lacks, e.g. ``pip install --target DIR einops addict openai-clip pandas``).
    ``threads``: torch threads in the worker (default: this process' torch.get_num_threads()).

    Returns {"forward_s": median of ``repeats`` timed runs after one warm-up, "runs_s",
    "peak_rss_bytes" / "working_bytes" (the last timed run, as PeakMemory measures ours),
    "official_commit" (git HEAD, None without a .git), "threads", "build_s", "load_s",
    "outputs": {"pts3d_max_abs_diff", "pts3d_rel_diff", "equivalent", ...} when "pts" is given}.
    Raises OfficialCheckoutError, OfficialDependencyError (with the pip command) or
    OfficialRunError.
    """
    root = check_checkout(official_path)
    if deps is not None and not Path(deps).is_dir():
        raise OfficialDependencyError(f"--official-deps {deps} is not a directory")
    if repeats < 1:
        raise ValueError("repeats must be >= 1")
    if threads is None:
        import torch

        threads = torch.get_num_threads()
    spec = {"official": str(root), "deps": str(deps) if deps else None,
            "state_dict": str(Path(state_dict_file).resolve()),
            "images": str(Path(images_file).resolve()), "repeats": int(repeats),
            "threads": int(threads)}
    result = _run_worker(spec, timeout, log)
    result["official_path"] = str(root)
    result["official_commit"] = official_commit(root)
    return result


# ------------------------------------------------------------------ worker (the fresh process)


def _missing_dependencies() -> List[str]:
    import importlib.util

    return [m for m in DEPENDENCIES if importlib.util.find_spec(m) is None]


def _install_shims(threads: int) -> List[str]:
    """Module-level patches for CPU and no downloads (see the module docstring); their names."""
    import types

    import numpy as np
    import torch

    applied = []
    knn = types.ModuleType("simple_knn")
    knn_c = types.ModuleType("simple_knn._C")

    def distCUDA2(points: torch.Tensor) -> torch.Tensor:  # noqa: N802 (the official name)
        from scipy.spatial import cKDTree

        p = points.detach().float().cpu().numpy()
        d, _ = cKDTree(p).query(p, k=4, workers=threads)  # itself + 3 nearest
        return torch.from_numpy((d[:, 1:] ** 2).mean(axis=1).astype(np.float32)).to(points.device)

    knn_c.distCUDA2 = distCUDA2
    knn._C = knn_c
    sys.modules["simple_knn"], sys.modules["simple_knn._C"] = knn, knn_c
    applied.append("simple_knn._C.distCUDA2 -> scipy cKDTree mean squared 3-NN distance")

    try:
        import torch_scatter  # noqa: F401
    except ImportError:
        scatter = types.ModuleType("torch_scatter")

        def segment_csr(src, indptr, out=None, reduce="sum"):
            if out is not None or indptr.dim() != 1:
                raise NotImplementedError("CPU torch_scatter shim: 1-D indptr, no out=")
            lengths = indptr[1:] - indptr[:-1]
            return torch.segment_reduce(src, reduce, lengths=lengths, axis=0)

        scatter.segment_csr = segment_csr
        sys.modules["torch_scatter"] = scatter
        applied.append("torch_scatter.segment_csr -> torch.segment_reduce")

    from spconv.pytorch import ConvAlgo
    from spconv.pytorch.conv import SparseConvolution

    conv_forward = SparseConvolution.forward

    def forward(self, input, add_input=None):
        if input.features.is_cuda:
            return conv_forward(self, input, add_input)
        self.algo = ConvAlgo.Native  # the CPU algorithm (a CUDA build picks MaskImplicitGemm)
        if self.bias is None:
            return conv_forward(self, input, add_input)
        out = self._conv_forward(self.training, input, self.weight, None, add_input, name=self.name,
                                 sparse_unique_name=self._sparse_unique_name, act_type=self.act_type,
                                 act_alpha=self.act_alpha, act_beta=self.act_beta)
        return out.replace_feature(out.features + self.bias)

    SparseConvolution.forward = forward
    applied.append("spconv SparseConvolution on CPU: Native algorithm, bias added to the output features")

    import clip
    from clip.model import CLIP

    def load(name, device="cpu", jit=False, download_root=None):
        if name != "ViT-B/32":
            raise ValueError(f"CPU clip.load shim: only ViT-B/32, not {name}")
        model = CLIP(embed_dim=512, image_resolution=224, vision_layers=12, vision_width=768,
                     vision_patch_size=32, context_length=77, vocab_size=49408,
                     transformer_width=512, transformer_heads=8, transformer_layers=12)
        return model.float().eval(), None

    clip.load = load
    applied.append("clip.load('ViT-B/32', device='cuda') -> random-init CLIP ViT-B/32 on CPU")

    import timm

    create_model = timm.create_model

    def create_model_no_download(name, pretrained=False, **kwargs):
        return create_model(name, pretrained=False, **kwargs)

    timm.create_model = create_model_no_download
    applied.append("timm.create_model(pretrained=True) -> pretrained=False")
    return applied


def _import_official(root: str, deps: Optional[str], threads: int):
    """sys.path as the official scripts set it (plus ``deps`` first), shims, then the model
    class with its two from_pretrained loads bypassed. Returns (LSM_Dust3R, shims)."""
    if deps:
        sys.path.insert(0, deps)
    missing = _missing_dependencies()
    if missing:
        raise OfficialDependencyError(
            "the official LSM forward pass needs " + ", ".join(f"{m} (pip: {DEPENDENCIES[m]})" for m in missing)
            + " -- not importable from this venv" + (f" + {deps}" if deps else "")
            + "; install with: " + _pip_hint(" ".join(DEPENDENCIES[m] for m in missing), deps))
    shims = _install_shims(threads)
    sys.path.insert(0, root)
    from large_spatial_model.utils.path_manager import init_all_submodules

    init_all_submodules()  # what demo.py / train.py do: submodules/* and the root on sys.path
    from large_spatial_model import dust3r_with_feature, lseg
    from large_spatial_model.model import LSM_Dust3R

    def dust3r_from_pretrained(cls, pretrained_model_name_or_path=None, **kw):
        return cls(**DUST3R_ARGS)

    def lseg_from_pretrained(cls, pretrained_model_name_or_path=None, *args, **kwargs):
        return cls(*args, **kwargs)

    dust3r_with_feature.AsymmetricCroCo3DStereo.from_pretrained = classmethod(dust3r_from_pretrained)
    lseg.LSegFeatureExtractor.from_pretrained = classmethod(lseg_from_pretrained)
    shims += ["AsymmetricCroCo3DStereo.from_pretrained -> the DUSt3R_ViTLarge_BaseDecoder_512_dpt "
              "constructor (no file)",
              "LSegFeatureExtractor.from_pretrained -> LSegFeatureExtractor(half_res) (no file)",
              "PTv3 enable_flash=False"]
    return LSM_Dust3R, shims


def _trim() -> None:
    import contextlib
    import ctypes
    import gc

    gc.collect()
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _worker(spec: Dict[str, object], memory_cls) -> Dict[str, object]:
    import torch
    import yaml

    threads = int(spec.get("threads") or torch.get_num_threads())
    torch.set_num_threads(threads)
    LSM_Dust3R, shims = _import_official(spec["official"], spec.get("deps"), threads)
    if spec.get("check_only"):
        return {"shims": shims}

    config = yaml.safe_load((Path(spec["official"]) / "configs" / "default.yaml").read_text())
    config["point_transformer_config"]["enable_flash"] = False
    torch.manual_seed(0)
    t0 = time.perf_counter()
    model = LSM_Dust3R(config).eval()
    build_s = time.perf_counter() - t0
    print("official_benchmark: official LSM_Dust3R built in %.1f s" % build_s, flush=True)

    t0 = time.perf_counter()
    state = torch.load(spec["state_dict"], map_location="cpu", mmap=True, weights_only=True)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise OfficialRunError(f"our state dict does not fit the official LSM_Dust3R: {len(missing)} missing "
                       f"{sorted(missing)[:10]}, {len(unexpected)} unexpected {sorted(unexpected)[:10]}")
    n_tensors = len(state)
    del state
    _trim()
    load_s = time.perf_counter() - t0

    data = torch.load(spec["images"], map_location="cpu", weights_only=True)
    views = []
    for i, key in enumerate(("img1", "img2")):
        img = data[key].float()
        views.append({"img": img * 2.0 - 1.0,  # dust3r ImgNorm: [0,1] -> [-1,1]
                      "true_shape": torch.tensor([list(img.shape[-2:])] * img.shape[0], dtype=torch.int32),
                      "idx": i, "instance": [str(i)] * img.shape[0]})

    runs: List[float] = []
    memory = None
    first = None
    for r in range(int(spec.get("repeats", 2)) + 1):
        torch.manual_seed(0)  # PTv3 shuffles its serialisation orders even at inference
        mem = memory_cls(torch.device("cpu"))
        with torch.no_grad(), mem:
            t0 = time.perf_counter()
            out1, out2 = model(views[0], views[1])
            dt = time.perf_counter() - t0
        if r == 0:
            first = torch.stack([out1["pts3d"], out2["pts3d_in_other_view"]]).float()
        else:
            runs.append(dt)
            memory = mem
        print(f"official_benchmark: forward {'warm-up' if r == 0 else r} {dt:.2f} s", flush=True)
        del out1, out2

    outputs: Dict[str, object] = {"pts3d_shape": list(first.shape),
                                  "gaussians": int(first[..., 0].numel())}
    if data.get("pts") is not None:
        ours = data["pts"].float().reshape(first.shape)
        diff = float((first - ours).abs().max())
        scale = float(ours.abs().max())
        rel = diff / max(scale, 1e-30)
        outputs.update(pts3d_max_abs_diff=diff, pts3d_max_abs_ours=scale, pts3d_rel_diff=rel,
                       tolerance=EQUIVALENCE_TOL, equivalent=bool(rel < EQUIVALENCE_TOL))
    return {"forward_s": float(statistics.median(runs)), "runs_s": runs,
            "peak_rss_bytes": int(memory.peak_bytes), "working_bytes": int(memory.working_bytes),
            "threads": threads, "build_s": build_s, "load_s": load_s, "tensors_loaded": n_tensors,
            "torch": torch.__version__, "shims": shims, "outputs": outputs}


def worker_main(spec_file: PathLike, memory_cls) -> int:
    """Entry of the worker process: run ``spec_file``'s job, write its result JSON (or
    {"error", "kind"}) to spec["result"]. ``memory_cls``: lsm_tools.benchmark.PeakMemory."""
    spec = json.loads(Path(spec_file).read_text())
    try:
        result = _worker(spec, memory_cls)
        status = 0
    except OfficialDependencyError as exc:
        result, status = {"error": str(exc), "kind": "dependency"}, 3
    except OfficialCheckoutError as exc:
        result, status = {"error": str(exc), "kind": "checkout"}, 3
    except OfficialRunError as exc:
        result, status = {"error": str(exc), "kind": "run"}, 3
    except ImportError as exc:  # a module the dependency list does not know
        name = getattr(exc, "name", None) or str(exc)
        result = {"error": f"the official LSM code failed to import {name}: {exc}; if it is a "
                           f"package, install it with: {_pip_hint(str(name).split('.')[0], spec.get('deps'))}",
                  "kind": "dependency"}
        status = 3
    Path(spec["result"]).write_text(json.dumps(result))
    return status


def ratios(ours_rows: Sequence[Dict[str, object]], official: Dict[str, object]) -> Dict[str, Dict[str, float]]:
    """{our precision: {"time": our total s / official s, "peak_memory": our peak / official
    peak}} for rows of :func:`lsm_tools.benchmark.measure_paper_precisions`."""
    out = {}
    for row in ours_rows:
        out[row["precision"]] = {
            "time": row["stages_s"]["total"] / official["forward_s"],
            "peak_memory": row["peak_memory_bytes"] / official["peak_rss_bytes"]}
    return out
