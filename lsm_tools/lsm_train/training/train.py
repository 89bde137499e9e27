"""``lsm-train``: train an LSM model on procedural scenes, a sample folder or ScanNet-style data.

Examples::

    lsm-train --config tiny --steps 2000 --out runs/tiny
    lsm-train --resume runs/tiny/checkpoint-last.pt --steps 3000 --out runs/tiny
    torchrun --nproc_per_node 2 -m lsm_train.training.train --config tiny --steps 100 --out runs/ddp
    lsm-train --data scannet:/data/scannet/scene0000_00 --init model.pt --out runs/ft
"""
from __future__ import annotations

import argparse
import json
import sys

import torch

from lsm.checkpoint import load_model
from lsm.config import get_config
from lsm.model.lsm import LSM

from .objective import LossWeights, reads_target_views
from .trainer import TrainConfig, Trainer, setup_distributed


def build_dataset(spec: str, size: int, seed: int, length: int, num_targets: int = 1,
                  augment: bool = False):
    """``procedural`` | ``folder:PATH`` | ``scannet:PATH`` -> (dataset, collate).

    ``num_targets``: target views per procedural item (0 when the objective reads none; an
    item's context pair is the same either way)."""
    from ..data import dataset as ds

    if spec == "procedural":
        return ds.ProceduralDataset(num_samples=length, seed=seed, size=size,
                                    num_targets=num_targets, augment=augment), ds.collate
    if augment:
        raise ValueError("--augment applies to procedural data only")
    kind, _, path = spec.partition(":")
    if kind == "folder" and path:
        return ds.FolderDataset(path), ds.collate
    if kind == "scannet" and path:
        from ..data.scannet import ScanNetStyleDataset

        return ScanNetStyleDataset(path, size=size), ds.collate
    raise ValueError(f"unknown --data {spec!r}: use procedural, folder:PATH or scannet:PATH")


def point_student(model: LSM, stride: int, teacher_weights: str):
    """``model`` rebuilt with ``ptv3.point_stride = stride`` (same weights) and the loss that
    distils its point transformer from the teacher (``teacher_weights``, frozen). The point
    transformer's BatchNorm layers are frozen too (their running statistics then stay as
    the teacher's, in training as in inference)."""
    import dataclasses
    from functools import partial

    from .objective import point_distillation_loss

    if not teacher_weights:
        raise ValueError("--point-stride needs --teacher (or --init) weights to distil from")
    cfg = model.config
    student = LSM(dataclasses.replace(cfg, ptv3=dataclasses.replace(cfg.ptv3, point_stride=stride)))
    student.load_state_dict(model.state_dict())
    for module in student.point_transformer.modules():  # statistics and affine stay the teacher's:
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):  # frozen modules run in eval
            module.requires_grad_(False)  # mode, so training sees what inference computes
    teacher = load_model(teacher_weights).eval()
    if teacher.config.ptv3 != dataclasses.replace(cfg.ptv3, point_stride=teacher.config.ptv3.point_stride):
        raise ValueError("the teacher's point transformer differs from the student's in more than point_stride")
    for param in teacher.parameters():
        param.requires_grad_(False)
    return student, partial(point_distillation_loss, teacher=teacher)


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="lsm-train", description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="tiny", help="model configuration (tiny|paper)")
    p.add_argument("--init", default="", help="start from these lsm_ros weights")
    p.add_argument("--resume", default="", help="continue a training checkpoint (same curve)")
    p.add_argument("--data", default="procedural", help="procedural | folder:PATH | scannet:PATH")
    p.add_argument("--dataset-size", type=int, default=1_000_000, help="procedural samples before repeating")
    p.add_argument("--out", required=True, help="output folder (checkpoints, metrics.csv, curves.png)")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--ckpt-every", type=int, default=100)
    p.add_argument("--render-scale", type=float, default=1.0, choices=(0.5, 1.0),
                   help="render the loss views at this fraction of the input size (0.5: 4x "
                        "cheaper rasterisation, for CPU training)")
    p.add_argument("--train-only", default="",
                   help="comma-separated parameter-name prefixes to train, the rest frozen "
                        "(e.g. feature_reduction,feature_expansion,gaussian_head)")
    p.add_argument("--augment", action="store_true",
                   help="domain randomisation of procedural samples: zoom (field of view), "
                        "exposure, white balance, noise, blur, JPEG (lsm_train.data.augment)")
    p.add_argument("--point-stride", type=int, default=0,
                   help="distil a point transformer that sees every N-th pixel (ptv3.point_stride) "
                        "from the --teacher model's (default: the --init weights); trains "
                        "point_transformer only unless --train-only says otherwise")
    p.add_argument("--teacher", default="", help="teacher weights for --point-stride")
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-progress", action="store_true")
    for name, default in vars(LossWeights()).items():
        p.add_argument(f"--w-{name.replace('_', '-')}", type=float, default=default, dest=f"w_{name}")
    return p.parse_args(argv)


def main(argv=None) -> int:
    a = parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    distributed = setup_distributed(device)
    torch.manual_seed(a.seed)
    train_only = tuple(x.strip() for x in a.train_only.split(",") if x.strip())
    if a.point_stride and not train_only:
        train_only = ("point_transformer",)
    cfg = TrainConfig(steps=a.steps, batch_size=a.batch_size, lr=a.lr, warmup=a.warmup, seed=a.seed,
                      workers=a.workers, log_every=a.log_every, ckpt_every=a.ckpt_every,
                      render_scale=a.render_scale, train_only=train_only,
                      weights=LossWeights(**{k: getattr(a, f"w_{k}") for k in vars(LossWeights())}))
    if a.init:
        model = load_model(a.init)
    elif a.resume:
        from lsm.checkpoint import read_checkpoint_file
        from lsm.config import LSMConfig

        model = LSM(LSMConfig.from_dict(read_checkpoint_file(a.resume)["config"]))
    else:
        model = LSM(get_config(a.config))
    loss_fn = None
    if a.point_stride:
        model, loss_fn = point_student(model, a.point_stride, a.teacher or a.init)
    dataset, collate = build_dataset(a.data, model.config.image_size, a.seed, a.dataset_size,
                                     num_targets=1 if reads_target_views(cfg.weights) and not loss_fn else 0,
                                     augment=a.augment)
    class_names = getattr(dataset, "class_names", None)
    if class_names is None:
        from ..data.sample import CLASS_NAMES as class_names
    class_embeddings = model.text_encoder().encode(list(class_names))
    trainer = Trainer(model, dataset, collate, class_embeddings, cfg, a.out, device, loss_fn=loss_fn)
    if a.resume:
        trainer.resume(a.resume)
    history = trainer.train(progress=not a.no_progress)
    if trainer.rank == 0 and history:
        print(json.dumps({"step": trainer.step, "last": history[-1]}))
    if distributed:
        torch.distributed.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
