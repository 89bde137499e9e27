"""Training loop: AdamW, linear warm-up + cosine decay, checkpoint/resume, CSV + TensorBoard
logs, a PNG plot of the curves, and multi-process data parallel training under ``torchrun``.

Determinism: batch ``t`` of rank ``r`` holds dataset items ``t*G + r*B ... t*G + r*B + B - 1``
(``G`` = global batch), so a run resumed from a checkpoint sees exactly the batches the
uninterrupted run would have seen; RNG and optimiser states are restored too.
"""
from __future__ import annotations

import csv
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Sampler

from lsm.checkpoint import FORMAT, read_checkpoint_file

from .objective import LossWeights, compute_loss


@dataclass
class TrainConfig:
    steps: int = 1000
    batch_size: int = 2  # per process
    lr: float = 3e-4
    min_lr: float = 1e-6
    warmup: int = 50
    weight_decay: float = 0.05
    betas: tuple = (0.9, 0.95)
    grad_clip: float = 1.0
    seed: int = 0
    workers: int = 1
    log_every: int = 10
    ckpt_every: int = 100
    render_scale: float = 1.0  # 0.5: photometric/semantic terms on half-resolution renders
    weights: LossWeights = field(default_factory=LossWeights)
    # Parameter-name prefixes to train (e.g. ("feature_reduction", "gaussian_head")); every
    # other parameter is frozen. Empty: train all parameters that require gradients.
    train_only: tuple = ()


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up to ``lr`` then cosine decay to ``min_lr`` at ``steps``."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = min(1.0, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * t))


def freeze_all_but(model: torch.nn.Module, prefixes) -> int:
    """Freeze every parameter whose name starts with none of ``prefixes`` (never unfreezes a
    parameter frozen already, e.g. the paper's LSeg). Returns the number left trainable.
    Raises ValueError for a prefix that names no parameter, or when nothing is left to train."""
    names = [n for n, _ in model.named_parameters()]
    unknown = [p for p in prefixes if not any(n.startswith(p) for n in names)]
    if unknown:
        tops = sorted({n.split(".")[0] for n in names})
        raise ValueError(f"--train-only prefixes {unknown} match no parameter; modules: {tops}")
    for name, param in model.named_parameters():
        if not any(name.startswith(p) for p in prefixes):
            param.requires_grad_(False)
    left = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if left == 0:
        raise ValueError(f"--train-only {list(prefixes)}: every matching parameter is frozen already")
    return left


def train_mode(model: torch.nn.Module) -> None:
    """``model.train()``, except that every module whose parameters are all frozen runs in eval
    mode: its normalisation statistics stay as loaded and its dropout is off."""
    model.train()
    for module in model.modules():
        params = list(module.parameters())
        if params and not any(p.requires_grad for p in params):
            module.eval()


class StepSampler(Sampler):
    """Dataset indices for steps ``start..steps-1`` of this rank (see module docstring)."""

    def __init__(self, start: int, steps: int, batch: int, rank: int, world: int, length: int):
        self.start, self.steps, self.batch = start, steps, batch
        self.rank, self.world, self.length = rank, world, length

    def __iter__(self):
        g = self.batch * self.world
        for t in range(self.start, self.steps):
            for i in range(self.batch):
                yield (t * g + self.rank * self.batch + i) % self.length

    def __len__(self):
        return max(0, self.steps - self.start) * self.batch


def _dist_info():
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def setup_distributed(device: torch.device) -> bool:
    """Initialise the process group when started by ``torchrun`` (WORLD_SIZE > 1)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or (dist.is_available() and dist.is_initialized()):
        return False
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return True


class Trainer:
    """Train ``model`` on ``dataset`` (items collated by ``collate``) into ``out_dir``."""

    def __init__(self, model, dataset, collate, class_embeddings: torch.Tensor, cfg: TrainConfig,
                 out_dir, device="cpu", loss_fn: Optional[Callable] = None):
        """``loss_fn(model, batch) -> (loss, logs)`` replaces the LSM objective
        (:func:`compute_loss` with ``cfg.weights``), e.g. a distillation loss."""
        self.cfg = cfg
        self.loss_fn = loss_fn
        self.device = torch.device(device)
        self.out = Path(out_dir)
        self.rank, self.world = _dist_info()
        self.model = model.to(self.device)
        if self.world > 1:  # same initial weights everywhere
            for t in self.model.state_dict().values():
                dist.broadcast(t, src=0)
        self.dataset, self.collate = dataset, collate
        self.class_embeddings = class_embeddings.to(self.device)
        if cfg.train_only:
            freeze_all_but(model, cfg.train_only)
        params = [p for p in model.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
        self.step = 0
        self.history: list[dict] = []

    # ------------------------------------------------------------------ checkpoints
    def save(self, path: Optional[Path] = None) -> Path:
        path = Path(path or self.out / "checkpoint-last.pt")
        if self.rank == 0:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            torch.save({
                "format": FORMAT, "config": self.model.config.to_dict(),
                "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
                "optimizer": self.opt.state_dict(), "step": self.step,
                "rng": torch.get_rng_state(), "train_config": _plain(asdict(self.cfg)),
                "history": self.history, "meta": {"steps_trained": self.step},
            }, tmp)
            os.replace(tmp, path)
        return path

    def resume(self, path) -> None:
        ckpt = read_checkpoint_file(path)
        if "optimizer" not in ckpt or "step" not in ckpt:
            raise ValueError(f"{path} is not a training checkpoint (no optimizer state)")
        self.model.load_state_dict(ckpt["model"])
        self.opt.load_state_dict(ckpt["optimizer"])
        self.step = int(ckpt["step"])
        self.history = list(ckpt.get("history", []))
        torch.set_rng_state(ckpt["rng"])

    # ------------------------------------------------------------------ loop
    def train(self, progress: bool = True) -> list[dict]:
        cfg = self.cfg
        sampler = StepSampler(self.step, cfg.steps, cfg.batch_size, self.rank, self.world, len(self.dataset))
        # a private generator: creating the loader's iterator draws seeds from it, and from the
        # global RNG otherwise, which would shift the model's own randomness (PTv3 order
        # shuffling) after a resume and break "the same curve"
        loader = DataLoader(self.dataset, batch_size=cfg.batch_size, sampler=sampler,
                            num_workers=cfg.workers, collate_fn=self.collate,
                            persistent_workers=False, prefetch_factor=2 if cfg.workers else None,
                            generator=torch.Generator().manual_seed(cfg.seed + self.step))
        bar = None
        if progress and self.rank == 0:
            from tqdm import tqdm

            bar = tqdm(total=cfg.steps, initial=self.step, desc="train", dynamic_ncols=True)
        writer = self._tensorboard()
        train_mode(self.model)
        t_last = time.perf_counter()
        for batch in loader:
            batch = {k: v.to(self.device) if torch.is_tensor(v) else v for k, v in batch.items()}
            lr = lr_at(self.step, cfg)
            for group in self.opt.param_groups:
                group["lr"] = lr
            if self.loss_fn is not None:
                loss, logs = self.loss_fn(self.model, batch)
            else:
                loss, logs = compute_loss(self.model, batch, self.class_embeddings, cfg.weights,
                                          cfg.render_scale)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            if self.world > 1:
                self._average_gradients()
            if cfg.grad_clip:
                logs["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(
                    [p for p in self.model.parameters() if p.requires_grad], cfg.grad_clip))
            self.opt.step()
            self.step += 1
            now = time.perf_counter()
            logs.update(step=self.step, lr=lr, sec_per_step=now - t_last)
            t_last = now
            if self.rank == 0:
                self.history.append(logs)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix({k: f"{logs[k]:.3f}" for k in ("loss", "photometric") if k in logs})
                if writer is not None:
                    for k, v in logs.items():
                        if k != "step":
                            writer.add_scalar(f"train/{k}", v, self.step)
                if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                    self.write_logs()
            if self.step % cfg.ckpt_every == 0 or self.step == cfg.steps:
                self.save()
        if bar is not None:
            bar.close()
        if writer is not None:
            writer.close()
        if self.rank == 0:
            self.write_logs(plot=True)
        return self.history

    def _average_gradients(self) -> None:
        """Data parallelism: all-reduce the mean gradient (works for any graph, unlike DDP
        hooks, since the loss also uses modules outside the forward pass)."""
        for p in self.model.parameters():
            if p.requires_grad:
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
                dist.all_reduce(p.grad)
                p.grad /= self.world

    # ------------------------------------------------------------------ logs
    def _tensorboard(self):
        if self.rank != 0:
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            return None
        return SummaryWriter(str(self.out / "tensorboard"))

    def write_logs(self, plot: bool = False) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        keys = sorted({k for row in self.history for k in row}, key=lambda k: (k != "step", k))
        with open(self.out / "metrics.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=keys)
            w.writeheader()
            w.writerows(self.history)
        if plot and self.history:
            plot_history(self.history, self.out / "curves.png")


def plot_history(history: list[dict], path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in ("loss", "pointmap", "pointmap_relative", "photometric", "semantic", "distill", "point_distill",
                        "distill_contrast", "semantic_contrast", "l1") if k in history[0]]
    steps = [h["step"] for h in history]
    fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 3), squeeze=False)
    for ax, k in zip(axes[0], keys):
        ax.plot(steps, [h.get(k, float("nan")) for h in history], lw=0.8)
        ax.set_title(k)
        ax.set_xlabel("step")
        ax.set_yscale("log")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _plain(obj):
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj
