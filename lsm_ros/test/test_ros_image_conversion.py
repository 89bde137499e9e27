"""sensor_msgs/Image <-> numpy conversions (lsm_ros.messages)."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sensor_msgs")

from sensor_msgs.msg import Image  # noqa: E402

from lsm_ros.messages import (  # noqa: E402
    ImageConversionError,
    array_to_imgmsg,
    imgmsg_to_array,
    imgmsg_to_rgb,
    mask_to_imgmsg,
    rgb_to_imgmsg,
)

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, size=(5, 7, 3), dtype=np.uint8)


def _msg(arr, encoding, pad=0, bigendian=False):
    """Hand-built message with `pad` bytes of row padding."""
    arr = np.ascontiguousarray(arr)
    if bigendian:
        arr = arr.astype(arr.dtype.newbyteorder(">"))
    rows = arr.reshape(arr.shape[0], -1).view(np.uint8)
    rows = np.concatenate([rows, np.full((rows.shape[0], pad), 0xEE, np.uint8)], axis=1)
    m = Image()
    m.height, m.width = arr.shape[:2]
    m.encoding, m.is_bigendian, m.step = encoding, int(bigendian), rows.shape[1]
    m.data = rows.tobytes()
    return m


def test_rgb_round_trip_and_header():
    from std_msgs.msg import Header
    msg = rgb_to_imgmsg(RGB, Header(frame_id="cam_optical"))
    assert (msg.encoding, msg.width, msg.height, msg.step) == ("rgb8", 7, 5, 21)
    assert msg.header.frame_id == "cam_optical"
    assert np.array_equal(imgmsg_to_rgb(msg), RGB)


@pytest.mark.parametrize("encoding,make", [
    ("bgr8", lambda a: a[:, :, ::-1]),
    ("rgba8", lambda a: np.concatenate([a, np.full(a.shape[:2] + (1,), 9, np.uint8)], 2)),
    ("bgra8", lambda a: np.concatenate([a[:, :, ::-1], np.zeros(a.shape[:2] + (1,),
                                                                   np.uint8)], 2)),
])
@pytest.mark.parametrize("pad", [0, 3])
def test_colour_encodings_become_rgb(encoding, make, pad):
    out = imgmsg_to_rgb(_msg(make(RGB), encoding, pad=pad))
    assert out.shape == (5, 7, 3) and out.dtype == np.uint8
    assert np.array_equal(out, RGB)


def test_mono8_becomes_grey_rgb():
    grey = RGB[:, :, 0]
    out = imgmsg_to_rgb(_msg(grey, "mono8", pad=1))
    assert np.array_equal(out, np.stack([grey] * 3, axis=2))


def test_depth_encodings_keep_values_and_byte_order():
    depth = RNG.uniform(0.1, 9.0, size=(4, 6)).astype(np.float32)
    assert np.array_equal(imgmsg_to_array(array_to_imgmsg(depth, "32FC1")), depth)
    mm = RNG.integers(0, 65535, size=(4, 6)).astype(np.uint16)
    back = imgmsg_to_array(_msg(mm, "16UC1", pad=2, bigendian=True))
    assert back.dtype == np.uint16 and np.array_equal(back, mm)


def test_mask_is_mono8_with_255_for_object():
    mask = np.zeros((3, 4), bool)
    mask[1, 2] = True
    msg = mask_to_imgmsg(mask)
    assert msg.encoding == "mono8"
    arr = imgmsg_to_array(msg)
    assert arr[1, 2] == 255 and arr.sum() == 255


@pytest.mark.parametrize("mutate,fragment", [
    (lambda m: setattr(m, "encoding", "yuv422"), "unsupported image encoding 'yuv422'"),
    (lambda m: setattr(m, "width", 0), "zero size"),
    (lambda m: setattr(m, "step", 20), "step 20 is smaller than"),
    (lambda m: setattr(m, "data", bytes(m.data)[:-1]), "expected step*height"),
    (lambda m: setattr(m, "height", 6), "expected step*height"),
])
def test_malformed_messages_raise_clear_errors(mutate, fragment):
    msg = rgb_to_imgmsg(RGB)
    mutate(msg)
    with pytest.raises(ImageConversionError) as err:
        imgmsg_to_rgb(msg)
    assert fragment in str(err.value)


def test_depth_is_not_rgb():
    with pytest.raises(ImageConversionError, match="unsupported image encoding '32FC1' for an RGB image"):
        imgmsg_to_rgb(array_to_imgmsg(np.zeros((2, 2), np.float32), "32FC1"))


@pytest.mark.parametrize("arr,encoding,fragment", [
    (np.zeros((2, 2, 3), np.float32), "rgb8", "dtype float32"),
    (np.zeros((2, 2), np.uint8), "rgb8", "does not fit encoding rgb8"),
    (np.zeros((0, 2, 3), np.uint8), "rgb8", "zero size"),
    (np.zeros((2, 2), np.uint8), "jpeg", "unsupported"),
])
def test_bad_arrays_raise_clear_errors(arr, encoding, fragment):
    with pytest.raises(ImageConversionError) as err:
        array_to_imgmsg(arr, encoding)
    assert fragment in str(err.value)
