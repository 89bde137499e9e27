"""Surface appearance of procedural rooms: colour pairs and pattern kinds per surface."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import List, Tuple

import numpy as np

from .base import CHECKER, NOISE, PLAIN, STRIPES, WOOD


@dataclass
class _Materials:
    """Per-surface appearance table (one row per surface id)."""

    color1: List[np.ndarray] = field(default_factory=list)
    color2: List[np.ndarray] = field(default_factory=list)
    pattern: List[int] = field(default_factory=list)
    scale: List[float] = field(default_factory=list)
    swap: List[bool] = field(default_factory=list)
    label: List[int] = field(default_factory=list)
    instance: List[int] = field(default_factory=list)

    def add(self, c1, c2, pattern, scale, swap, label, instance) -> int:
        self.color1.append(np.asarray(c1, np.float32))
        self.color2.append(np.asarray(c2, np.float32))
        self.pattern.append(int(pattern))
        self.scale.append(float(scale))
        self.swap.append(bool(swap))
        self.label.append(int(label))
        self.instance.append(int(instance))
        return len(self.pattern) - 1

    def arrays(self):
        return (np.stack(self.color1), np.stack(self.color2), np.array(self.pattern, np.int64),
                np.array(self.scale, np.float32), np.array(self.swap, bool),
                np.array(self.label, np.uint8), np.array(self.instance, np.uint16))


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    i = int(h * 6.0) % 6
    f = h * 6.0 - math.floor(h * 6.0)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    return np.array([(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i], np.float32)


def _wood(rng) -> np.ndarray:
    return _hsv(rng.uniform(0.05, 0.11), rng.uniform(0.35, 0.7), rng.uniform(0.3, 0.8))


def _fabric(rng) -> np.ndarray:
    return _hsv(rng.uniform(0, 1), rng.uniform(0.15, 0.75), rng.uniform(0.3, 0.9))


def _second(rng, c: np.ndarray, contrast: Tuple[float, float] = (0.5, 0.8)) -> np.ndarray:
    return np.clip(c * rng.uniform(*contrast) + rng.uniform(-0.05, 0.05, 3), 0, 1).astype(np.float32)


def _random_material(rng, kind: str):
    """(color1, color2, pattern, scale, swap) for a surface kind."""
    swap = bool(rng.random() < 0.5)
    if kind == "wood":
        c = _wood(rng)
        return c, _second(rng, c, (0.6, 0.85)), WOOD, rng.uniform(0.08, 0.2), swap
    if kind == "fabric":
        c = _fabric(rng)
        pat = rng.choice([PLAIN, NOISE, STRIPES, CHECKER], p=[0.3, 0.35, 0.2, 0.15])
        return c, _second(rng, c), pat, rng.uniform(0.04, 0.15), swap
    if kind == "metal":
        g = rng.uniform(0.15, 0.6)
        c = np.array([g, g, g * rng.uniform(0.95, 1.1)], np.float32)
        return c, _second(rng, c, (0.8, 0.95)), NOISE, rng.uniform(0.05, 0.2), swap
    if kind == "paint":
        c = _hsv(rng.uniform(0, 1), rng.uniform(0.0, 0.5), rng.uniform(0.5, 0.95))
        pat = rng.choice([PLAIN, NOISE, STRIPES], p=[0.3, 0.45, 0.25])
        return c, _second(rng, c, (0.75, 0.92)), pat, rng.uniform(0.1, 0.4), swap
    raise ValueError(kind)
