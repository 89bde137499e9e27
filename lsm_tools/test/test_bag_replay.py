"""lsm_bag play / record / info over real DDS, on bags written by the tests (rosbags)."""
from __future__ import annotations

import signal

import numpy as np
import pytest

pytest.importorskip("rclpy")
pytest.importorskip("rosbags")

from bag_helpers import IMAGE, lsm_bag, write_pair_bag  # noqa: E402

from lsm_tools.bag_io import BagError, bag_topics, deserialize, read_bag  # noqa: E402
from lsm_tools.bag_replay import node_output_topics, parse_remaps  # noqa: E402

pytestmark = pytest.mark.ros


def _pairs(n, h=24, w=32, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.integers(0, 256, (h, w, 3), np.uint8), rng.integers(0, 256, (h, w, 3), np.uint8))
            for _ in range(n)]


def _images(bag, topic):
    """(stamp ns, frame_id, (H,W,3) array) of every Image on ``topic``."""
    out = []
    for m in read_bag(bag, [topic]):
        msg = deserialize(m)
        stamp = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
        out.append((stamp, msg.header.frame_id,
                    np.asarray(msg.data).reshape(msg.height, msg.width, 3)))
    return out


def _record_while_playing(tmp_path, bag, play_args, topics=("/image_0", "/image_1"),
                          storage="mcap"):
    out = tmp_path / "recorded"
    rec = lsm_bag("record", out, "--topics", *topics, "--storage", storage,
                  background=True, log=tmp_path / "record.log")
    try:
        played = lsm_bag("play", bag, "--wait-subscribers", "20", *play_args)
        assert played.returncode == 0, played.stdout + played.stderr
        assert "warning" not in played.stderr, played.stderr
    finally:
        rec.send_signal(signal.SIGINT)
        assert rec.wait(timeout=30) == 0, (tmp_path / "record.log").read_text()
    return out, played


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_play_then_record_round_trips_every_image(tmp_path, storage):
    pairs = _pairs(5)
    bag = write_pair_bag(tmp_path / "in", pairs, storage=storage)
    out, played = _record_while_playing(
        tmp_path, bag, ["--max", "--remap", "/cam0:=/image_0", "--remap", "/cam1:=/image_1"],
        storage=storage)
    assert "played 10 messages" in played.stdout
    assert bag_topics(out) == {"/image_0": IMAGE, "/image_1": IMAGE}
    for cam, topic in enumerate(("/image_0", "/image_1")):
        got = _images(out, topic)
        want = _images(bag, f"/cam{cam}")
        assert len(got) == len(want) == 5
        for (s_got, f_got, a_got), (s_want, f_want, a_want), pair in zip(got, want, pairs):
            assert s_got == s_want  # header stamps pass through untouched
            assert f_got == f_want == f"camera_{cam}"
            np.testing.assert_array_equal(a_got, pair[cam])


def test_recorded_rate_is_respected(tmp_path):
    # 6 frames 0.2 s apart = 1.0 s of recording; at --rate 2 that takes >= 0.5 s to play.
    bag = write_pair_bag(tmp_path / "in", _pairs(6, 8, 8), topics=("/image_0", "/image_1"))
    out, _ = _record_while_playing(tmp_path, bag, ["--rate", "2.0", "--topics", "/image_0"],
                                   topics=("/image_0",))
    stamps = [m.timestamp for m in read_bag(out)]
    assert len(stamps) == 6
    span = (max(stamps) - min(stamps)) * 1e-9
    assert span >= 0.5 * 0.9, span  # receive times: lower bound only (the machine may be slow)


def test_info_lists_topics_counts_and_duration(tmp_path):
    bag = write_pair_bag(tmp_path / "in", _pairs(3, 8, 8), storage="sqlite3")
    res = lsm_bag("info", bag)
    assert res.returncode == 0, res.stderr
    assert "6 messages, 0.400 s" in res.stdout
    assert "/cam0 [sensor_msgs/msg/Image]: 3" in res.stdout


def test_bad_input_gives_clear_errors(tmp_path):
    res = lsm_bag("info", tmp_path)
    assert res.returncode == 1 and "not a rosbag2 folder" in res.stderr
    bag = write_pair_bag(tmp_path / "in", _pairs(1, 8, 8))
    res = lsm_bag("play", bag, "--topics", "/nope")
    assert res.returncode == 1 and "['/nope'] are not in" in res.stderr
    res = lsm_bag("play", bag, "--remap", "/cam0")
    assert res.returncode == 1 and "not of the form old:=new" in res.stderr
    res = lsm_bag("record", tmp_path / "x")
    assert res.returncode == 2 and "--topics or --all" in res.stderr
    with pytest.raises(BagError, match="already exists"):
        write_pair_bag(bag, _pairs(1, 8, 8))
    with pytest.raises(ValueError):
        parse_remaps(["a:="])


def test_node_output_topics_follow_the_node_name():
    assert node_output_topics("/robot1/lsm_node")[:2] == ["/robot1/lsm_node/points",
                                                         "/robot1/lsm_node/poses"]
    assert node_output_topics()[-1] == "/diagnostics"
