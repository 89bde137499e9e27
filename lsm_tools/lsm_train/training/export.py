"""``lsm-export``: a training checkpoint -> a compact inference checkpoint (no optimiser state,
float tensors stored as float16 by default), e.g. the embedded default model."""
from __future__ import annotations

import argparse
import sys

import torch

from lsm.checkpoint import FORMAT, read_checkpoint_file


def export(src, dst, half: bool = True, meta: dict | None = None) -> dict:
    ckpt = read_checkpoint_file(src)
    if ckpt.get("format") != FORMAT:
        raise ValueError(f"{src} is not an lsm_ros checkpoint")
    state = {k: (v.half() if half and v.is_floating_point() else v) for k, v in ckpt["model"].items()}
    info = dict(ckpt.get("meta", {}))
    info.update(steps_trained=int(ckpt.get("step", info.get("steps_trained", 0))),
                train_config=ckpt.get("train_config", {}), **(meta or {}))
    if ckpt.get("history"):
        info["last_train_logs"] = ckpt["history"][-1]
    out = {"format": FORMAT, "config": ckpt["config"], "model": state, "meta": info}
    torch.save(out, dst)
    return info


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="lsm-export", description=__doc__)
    p.add_argument("src")
    p.add_argument("dst")
    p.add_argument("--fp32", action="store_true", help="keep float32 tensors")
    a = p.parse_args(argv)
    info = export(a.src, a.dst, half=not a.fp32)
    print(f"wrote {a.dst} (steps trained: {info['steps_trained']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
