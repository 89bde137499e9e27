"""Helpers for the bag tests: write image-pair bags with rosbags, run lsm_bag as a process."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import List, Sequence

import numpy as np

from lsm_tools.bag_io import BagMessage, serialize, typestore, write_bag

IMAGE = "sensor_msgs/msg/Image"


def image_bytes(rgb: np.ndarray, stamp_ns: int, frame_id: str) -> bytes:
    """CDR bytes of an rgb8 sensor_msgs/Image (rosbags serialisation)."""
    t = typestore().types
    header = t["std_msgs/msg/Header"](
        stamp=t["builtin_interfaces/msg/Time"](sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9),
        frame_id=frame_id)
    h, w, _ = rgb.shape
    msg = t[IMAGE](header=header, height=h, width=w, encoding="rgb8", is_bigendian=0,
                   step=3 * w, data=np.ascontiguousarray(rgb, np.uint8).reshape(-1))
    return serialize(msg, IMAGE)


def write_pair_bag(path: Path, pairs: Sequence, topics=("/cam0", "/cam1"), start_ns=10**18,
                   period_ns=200_000_000, storage="mcap") -> Path:
    """A bag with one message per camera per frame, both stamped (and received) together."""
    messages: List[BagMessage] = []
    for i, pair in enumerate(pairs):
        stamp = start_ns + i * period_ns
        for cam, (topic, rgb) in enumerate(zip(topics, pair)):
            messages.append(BagMessage(topic, IMAGE, stamp, image_bytes(rgb, stamp, f"camera_{cam}")))
    return write_bag(path, messages, storage)


def lsm_bag(*args: str, timeout: float = 120.0, background: bool = False, log: Path = None):
    """Run ``python -m lsm_tools.bag_replay ARGS`` (same code as the ``lsm_bag`` console script)."""
    cmd = [sys.executable, "-m", "lsm_tools.bag_replay", *map(str, args)]
    if background:
        out = open(log, "wb") if log else subprocess.DEVNULL
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
