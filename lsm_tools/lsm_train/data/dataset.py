"""torch ``Dataset`` wrappers around :class:`SceneSample` sources and the batch ``collate``.

Batch dictionary produced by :func:`collate` (B samples, V = 2 context + T target views,
context first; every sample of a batch must have the same V and image size):

* ``"images"``: float32 (B, V, 3, H, W), RGB in [0, 1]
* ``"depth"``:  float32 (B, V, H, W), metric z-depth, 0 = invalid
* ``"valid"``:  bool    (B, V, H, W), ``depth > 0``
* ``"labels"``: int64   (B, V, H, W), class ids, 255 = ignore
* ``"K"``:      float32 (B, V, 3, 3) intrinsics (pixel centres at +0.5)
* ``"c2w"``:    float32 (B, V, 4, 4) camera-to-world, OpenCV camera axes
* ``"num_context"``: int, always 2 (views ``[:, :2]`` are the model input pair)
* ``"class_names"``: tuple of str (taken from the first sample)
* ``"meta"``: list of the samples' meta dicts
"""
from __future__ import annotations

import os
from typing import Dict, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from .procedural import generate_room, generate_sample, parse_size
from .sample import SceneSample, load_sample


def sample_seed(seed: int, index: int) -> int:
    """Stable 63-bit seed of sample ``index`` of a dataset seeded with ``seed``."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(2, np.uint64)[0] >> np.uint64(1))


class ProceduralDataset(Dataset):
    """``num_samples`` procedural scenes; item i is deterministic (seed = hash(seed, i)).

    ``views_per_room`` > 1 renders that many consecutive items from one room (cached, room
    generation is cheap but this gives more view triplets per layout). ``augment``: domain
    randomisation of every item (:mod:`lsm_train.data.augment`), deterministic per item.
    """

    def __init__(self, num_samples: int, seed: int = 0, size=128, num_targets: int = 1,
                 views_per_room: int = 1, augment: bool = False) -> None:
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        if views_per_room < 1:
            raise ValueError(f"views_per_room must be >= 1, got {views_per_room}")
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        self.num_samples = int(num_samples)
        self.seed = int(seed)
        self.size = parse_size(size)
        self.num_targets = int(num_targets)
        self.views_per_room = int(views_per_room)
        self.augment = bool(augment)  # lsm_train.data.augment.randomise every item
        self._room_cache: Dict[int, object] = {}

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, index: int) -> SceneSample:
        if not 0 <= index < self.num_samples:
            raise IndexError(f"index {index} out of range for {self.num_samples} samples")
        s = sample_seed(self.seed, index)
        room = None
        if self.views_per_room > 1:
            room_index = index // self.views_per_room
            room = self._room_cache.get(room_index)
            if room is None:
                room = generate_room(int(np.random.SeedSequence([self.seed, room_index, 0x200]).generate_state(1)[0]))
                self._room_cache = {room_index: room}
        sample = generate_sample(s, self.size, self.num_targets, room=room)
        sample.meta["index"] = int(index)
        if self.augment:
            from .augment import randomise

            sample = randomise(sample, np.random.default_rng([s, 0xA06]))
        return sample


class FolderDataset(Dataset):
    """Sample folders written by :func:`lsm_train.data.sample.save_sample` under ``root`` (sorted)."""

    def __init__(self, root: str) -> None:
        if not os.path.isdir(root):
            raise ValueError(f"dataset root {root} does not exist")
        self.folders = [os.path.join(root, n) for n in sorted(os.listdir(root))
                        if os.path.isfile(os.path.join(root, n, "cameras.json"))]
        if not self.folders:
            raise ValueError(f"{root} holds no sample folders (subfolders with cameras.json)")

    def __len__(self) -> int:
        return len(self.folders)

    def __getitem__(self, index: int) -> SceneSample:
        return load_sample(self.folders[index])


def sample_to_tensors(sample: SceneSample) -> Dict[str, torch.Tensor]:
    """One sample as unbatched tensors (V, ...) with the keys of :func:`collate`."""
    views = sample.views
    images = np.stack([v.image for v in views])  # (V, H, W, 3) uint8
    depth = np.stack([v.depth for v in views]).astype(np.float32)
    return {
        "images": torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255.0),
        "depth": torch.from_numpy(depth),
        "valid": torch.from_numpy(depth > 0),
        "labels": torch.from_numpy(np.stack([v.labels for v in views]).astype(np.int64)),
        "K": torch.from_numpy(np.stack([v.K for v in views]).astype(np.float32)),
        "c2w": torch.from_numpy(np.stack([v.c2w for v in views]).astype(np.float32)),
    }


def collate(samples: Sequence[SceneSample]) -> Dict[str, object]:
    """Stack :class:`SceneSample` s into the batch dictionary described in the module docstring."""
    if len(samples) == 0:
        raise ValueError("collate needs at least one sample")
    per = [sample_to_tensors(s) for s in samples]
    shapes = {tuple(p["images"].shape) for p in per}
    if len(shapes) != 1:
        raise ValueError(f"all samples of a batch need the same views and image size, got {sorted(shapes)}")
    batch: Dict[str, object] = {k: torch.stack([p[k] for p in per]) for k in per[0]}
    batch["num_context"] = 2
    batch["class_names"] = tuple(samples[0].class_names)
    batch["meta"] = [dict(s.meta) for s in samples]
    return batch
