"""PointCloud2 building and reading (lsm_ros.messages)."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sensor_msgs")

from lsm_ros.messages import (  # noqa: E402
    PointCloudError,
    make_pointcloud,
    pack_rgb,
    read_pointcloud,
    unpack_rgb,
)

RNG = np.random.default_rng(1)
N = 50
PTS = RNG.normal(size=(N, 3)).astype(np.float32)
COL = RNG.integers(0, 256, size=(N, 3), dtype=np.uint8)
LAB = RNG.integers(0, 8, size=N)
CONF = RNG.uniform(1, 10, size=N).astype(np.float32)


def test_full_cloud_layout_matches_rviz_pcl_convention():
    msg = make_pointcloud(PTS, COL, LAB, CONF)
    fields = [(f.name, f.offset, f.datatype, f.count) for f in msg.fields]
    assert fields == [("x", 0, 7, 1), ("y", 4, 7, 1), ("z", 8, 7, 1), ("rgb", 12, 7, 1),
                      ("label", 16, 6, 1), ("confidence", 20, 7, 1)]
    assert (msg.height, msg.width, msg.point_step, msg.row_step) == (1, N, 24, 24 * N)
    assert len(msg.data) == 24 * N and msg.is_dense and not msg.is_bigendian
    # packed colour of point 0 is the uint32 0x00RRGGBB read from bytes 12..16
    u = np.frombuffer(bytes(msg.data[12:16]), "<u4")[0]
    r, g, b = COL[0].astype(int)
    assert u == (r << 16) | (g << 8) | b


def test_round_trip():
    back = read_pointcloud(make_pointcloud(PTS, COL, LAB, CONF))
    assert np.array_equal(back["points"], PTS)
    assert np.array_equal(back["colors"], COL)
    assert np.array_equal(back["labels"], LAB.astype(np.uint32))
    assert np.array_equal(back["confidence"], CONF)


def test_xyz_only_and_empty_and_nan():
    msg = make_pointcloud(PTS[:3].astype(np.float64))
    assert [f.name for f in msg.fields] == ["x", "y", "z"] and msg.point_step == 12
    back = read_pointcloud(msg)
    assert set(back) == {"points"} and np.allclose(back["points"], PTS[:3])
    empty = make_pointcloud(np.zeros((0, 3), np.float32))
    assert empty.width == 0 and read_pointcloud(empty)["points"].shape == (0, 3)
    pts = PTS[:4].copy()
    pts[2, 1] = np.nan
    nan_msg = make_pointcloud(pts)
    assert not nan_msg.is_dense
    assert np.isnan(read_pointcloud(nan_msg)["points"][2, 1])


def test_rgb_packing_round_trip_all_extremes():
    c = np.array([[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 0, 255], [1, 2, 3]], np.uint8)
    assert np.array_equal(unpack_rgb(pack_rgb(c)), c)


@pytest.mark.parametrize("kw,fragment", [
    (dict(points=np.zeros((4, 2))), "points must be (N, 3)"),
    (dict(points=PTS, colors=COL[:3]), "rgb has 3 entries, points have 50"),
    (dict(points=PTS, colors=COL.astype(float)), "colors must be uint8"),
    (dict(points=PTS, labels=LAB[:5]), "labels must be (50,)"),
    (dict(points=PTS, labels=-LAB - 1), "non-negative"),
    (dict(points=PTS, confidence=CONF[:, None]), "confidence must be (50,)"),
])
def test_bad_inputs_raise_clear_errors(kw, fragment):
    with pytest.raises(PointCloudError) as err:
        make_pointcloud(**kw)
    assert fragment in str(err.value)


def test_reading_checks_the_message():
    msg = make_pointcloud(PTS)
    msg.data = bytes(msg.data)[:-4]
    with pytest.raises(PointCloudError, match="expected row_step"):
        read_pointcloud(msg)
    msg = make_pointcloud(PTS)
    msg.fields = msg.fields[:2]
    with pytest.raises(PointCloudError, match="no field 'z'"):
        read_pointcloud(msg)
