"""sensor_msgs/Image <-> numpy, with strict checks.

Conventions: colour arrays are ``(H, W, 3)`` uint8 in RGB order; masks and grey images
``(H, W)`` uint8; depth ``(H, W)`` float32 (32FC1, metres) or uint16 (16UC1, millimetres).
Rows of a message may be padded (``step`` > width * bytes per pixel); padding is dropped.

ROS 2's cv_bridge is used for decoding when it is importable and passes a self-check
(the unrelated ROS 1 ``cv-bridge`` repackaging on PyPI fails it and is ignored); otherwise
the numpy code below does the work.  Both go through the same checks first.
"""
from __future__ import annotations

import sys
from typing import Dict, Tuple

import numpy as np

# encoding -> (numpy dtype, channels)
ENCODINGS: Dict[str, Tuple[np.dtype, int]] = {
    "rgb8": (np.dtype(np.uint8), 3),
    "bgr8": (np.dtype(np.uint8), 3),
    "rgba8": (np.dtype(np.uint8), 4),
    "bgra8": (np.dtype(np.uint8), 4),
    "mono8": (np.dtype(np.uint8), 1),
    "32FC1": (np.dtype(np.float32), 1),
    "16UC1": (np.dtype(np.uint16), 1),
}
COLOR_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8")


class ImageConversionError(ValueError):
    """An Image message or array cannot be converted (the message says why)."""


def _check_message(msg) -> Tuple[np.dtype, int]:
    encoding = msg.encoding
    if encoding not in ENCODINGS:
        raise ImageConversionError(
            f"unsupported image encoding {encoding!r}; supported: {', '.join(ENCODINGS)}")
    dtype, channels = ENCODINGS[encoding]
    if msg.width <= 0 or msg.height <= 0:
        raise ImageConversionError(f"image has zero size ({msg.width}x{msg.height})")
    row_bytes = msg.width * channels * dtype.itemsize
    if msg.step < row_bytes:
        raise ImageConversionError(
            f"step {msg.step} is smaller than width*bytes per pixel = {row_bytes} "
            f"({msg.width} px, {encoding})")
    expected = msg.step * msg.height
    if len(msg.data) != expected:
        raise ImageConversionError(
            f"data holds {len(msg.data)} bytes, expected step*height = {msg.step}*"
            f"{msg.height} = {expected}")
    return dtype, channels


def _numpy_decode(msg, dtype: np.dtype, channels: int) -> np.ndarray:
    raw = np.frombuffer(msg.data, dtype=np.uint8).reshape(msg.height, msg.step)
    raw = raw[:, :msg.width * channels * dtype.itemsize]
    big = bool(msg.is_bigendian)
    arr = np.ascontiguousarray(raw).view(dtype.newbyteorder(">" if big else "<"))
    arr = arr.astype(dtype, copy=False)  # to native byte order
    shape = (msg.height, msg.width) if channels == 1 else (msg.height, msg.width, channels)
    return arr.reshape(shape).copy()


_BRIDGE = None
_BRIDGE_CHECKED = False


def _cv_bridge():
    """A working ROS 2 CvBridge, or None."""
    global _BRIDGE, _BRIDGE_CHECKED
    if not _BRIDGE_CHECKED:
        _BRIDGE_CHECKED = True
        try:
            from cv_bridge import CvBridge
            bridge = CvBridge()
            probe = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
            back = bridge.imgmsg_to_cv2(bridge.cv2_to_imgmsg(probe, "rgb8"), "passthrough")
            if back.shape == probe.shape and np.array_equal(back, probe):
                _BRIDGE = bridge
        except Exception:
            _BRIDGE = None
    return _BRIDGE


def imgmsg_to_array(msg) -> np.ndarray:
    """Image -> array in the message's own layout and dtype (no colour conversion).

    Returns ``(H, W)`` for mono8/32FC1/16UC1, ``(H, W, C)`` otherwise.
    Raises ImageConversionError for unsupported encodings, zero size or a data/step
    mismatch.
    """
    dtype, channels = _check_message(msg)
    bridge = _cv_bridge()
    if bridge is not None:
        try:
            arr = np.asarray(bridge.imgmsg_to_cv2(msg, "passthrough"))
            expected = (msg.height, msg.width) if channels == 1 else (msg.height, msg.width,
                                                                      channels)
            if arr.shape == expected and arr.dtype == dtype:
                return arr
        except Exception:
            pass
    return _numpy_decode(msg, dtype, channels)


def imgmsg_to_rgb(msg) -> np.ndarray:
    """Colour or grey Image -> ``(H, W, 3)`` uint8 RGB (alpha dropped, grey replicated)."""
    if msg.encoding not in COLOR_ENCODINGS:
        raise ImageConversionError(
            f"unsupported image encoding {msg.encoding!r} for an RGB image; supported: "
            f"{', '.join(COLOR_ENCODINGS)}")
    arr = imgmsg_to_array(msg)
    enc = msg.encoding
    if enc == "mono8":
        return np.repeat(arr[:, :, None], 3, axis=2)
    if enc.startswith("bgr"):
        arr = arr[:, :, 2::-1]
    return np.ascontiguousarray(arr[:, :, :3])


def _encoding_for(array: np.ndarray, encoding: str) -> None:
    if encoding not in ENCODINGS:
        raise ImageConversionError(
            f"unsupported image encoding {encoding!r}; supported: {', '.join(ENCODINGS)}")
    dtype, channels = ENCODINGS[encoding]
    want = "(H, W)" if channels == 1 else f"(H, W, {channels})"
    ok_shape = (array.ndim == 2 and channels == 1) or (array.ndim == 3
                                                        and array.shape[2] == channels)
    if not ok_shape:
        raise ImageConversionError(
            f"array of shape {array.shape} does not fit encoding {encoding} {want}")
    if array.dtype != dtype:
        raise ImageConversionError(
            f"array dtype {array.dtype} does not fit encoding {encoding} ({dtype})")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ImageConversionError(f"array has zero size {array.shape}")


def array_to_imgmsg(array: np.ndarray, encoding: str, header=None):
    """Array -> Image with ``encoding`` (mono8, rgb8, bgr8, rgba8, bgra8, 32FC1, 16UC1).

    The array must already have the encoding's dtype and channel count; rows are packed
    (step = width * bytes per pixel) in the machine's byte order.
    """
    from sensor_msgs.msg import Image

    array = np.asarray(array)
    _encoding_for(array, encoding)
    array = np.ascontiguousarray(array)
    msg = Image()
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(array.shape[0]), int(array.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = int(sys.byteorder == "big")
    msg.step = int(array.strides[0])
    msg.data = array.tobytes()
    return msg


def rgb_to_imgmsg(rgb: np.ndarray, header=None):
    """``(H, W, 3)`` uint8 RGB -> rgb8 Image."""
    return array_to_imgmsg(rgb, "rgb8", header)


def mask_to_imgmsg(mask: np.ndarray, header=None):
    """Boolean or uint8 ``(H, W)`` mask -> mono8 Image with 255 = object, 0 = background."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ImageConversionError(f"mask must be (H, W), got shape {mask.shape}")
    return array_to_imgmsg(np.where(mask.astype(bool), 255, 0).astype(np.uint8), "mono8",
                           header)
