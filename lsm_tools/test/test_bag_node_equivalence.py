"""Offline mode: a bag the test writes, replayed through lsm_node with ``lsm_bag run``, gives
the same outputs as streaming the same frames live to the same node."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rclpy")
pytest.importorskip("rosbags")
pytest.importorskip("lsm_ros_interfaces")

from bag_helpers import lsm_bag, write_pair_bag  # noqa: E402
from ros_harness import NodeClient, image_array, image_msg, stamp_of  # noqa: E402

from lsm_tools.bag_io import deserialize, read_bag  # noqa: E402
from lsm_tools.process import start_lsm_node, stop_process  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]


def _cloud(msg):
    from lsm_ros.messages import read_pointcloud

    return read_pointcloud(msg)


def _pose_vectors(msg):
    return np.array([[p.position.x, p.position.y, p.position.z, p.orientation.x,
                      p.orientation.y, p.orientation.z, p.orientation.w] for p in msg.poses])


def _live_outputs(client, proc, pairs):
    """Publish each pair (reliably, one at a time) and keep points/labels/poses per pair."""
    results = []
    for i, (a, b) in enumerate(pairs):
        t = 500.0 + i

        def publish():
            client.publish(0, image_msg(a, t, "camera_0"))
            client.publish(1, image_msg(b, t, "camera_1"))

        def done():
            return all(any(abs(stamp_of(m.header) - t) < 1e-6 for m in client.received[k])
                       for k in ("points", "labels", "poses"))

        assert client.spin_until(done, timeout=120, every=publish, period=30.0, process=proc)
        results.append({k: next(m for m in client.received[k] if abs(stamp_of(m.header) - t) < 1e-6)
                        for k in ("points", "labels", "poses")})
    return results


def test_bag_replay_gives_the_same_outputs_as_live_streaming(tmp_path, params_file, rclpy_node):
    import rclpy  # noqa: F401  (the session fixture initialised it)

    from lsm_train.data.procedural import generate_sequence

    frames = generate_sequence(7, 6, size=(120, 160))
    pairs = [(frames[0].image, frames[4].image), (frames[1].image, frames[5].image)]
    bag = write_pair_bag(tmp_path / "in", pairs, topics=("/image_0", "/image_1"))
    log = tmp_path / "lsm_node.log"
    proc = start_lsm_node(params_file, log_path=log)
    try:
        client = NodeClient("lsm_test_live", ["/image_0", "/image_1"], reliable=True)
        try:
            live = _live_outputs(client, proc, pairs)
        finally:
            client.destroy()
        run = lsm_bag("run", bag, tmp_path / "out", "--lockstep", timeout=300)
        assert run.returncode == 0, run.stdout + run.stderr + log.read_text()
    finally:
        assert stop_process(proc) == 0, log.read_text()

    recorded = {}
    for m in read_bag(tmp_path / "out"):
        recorded.setdefault(m.topic, []).append(deserialize(m))
    for key in ("points", "labels", "poses"):
        msgs = sorted(recorded[f"/lsm_node/{key}"], key=lambda m: stamp_of(m.header))
        assert len(msgs) == len(pairs), key
        for got, want in zip(msgs, live):
            want = want[key]
            assert got.header.frame_id == want.header.frame_id == "camera_0"
            if key == "points":
                g, w = _cloud(got), _cloud(want)
                assert len(g["points"]) == len(w["points"]) > 100
                np.testing.assert_allclose(g["points"], w["points"], rtol=1e-5, atol=1e-6)
                assert (g["labels"] == w["labels"]).all() and (g["colors"] == w["colors"]).all()
            elif key == "labels":
                assert (np.asarray(got.data) == np.frombuffer(bytes(want.data), np.uint8)).all()
                assert image_array(want).shape == (120, 160)
            else:
                np.testing.assert_allclose(_pose_vectors(got), _pose_vectors(want), atol=1e-5)
