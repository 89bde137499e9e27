"""lsm_node as a managed (lifecycle) node and with compressed input, in its own process over
real DDS: the transitions a lifecycle manager drives, and CompressedImage pairs in."""
from __future__ import annotations

import pytest

pytest.importorskip("rclpy")
pytest.importorskip("lsm_ros_interfaces")

from ros_harness import NodeClient, diagnostic_values, stamp_of  # noqa: E402

from lsm_tools.process import call_query, start_lsm_node, stop_process  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]


def _scene():
    from lsm_train.data.procedural import generate_sample

    return generate_sample(3, size=(240, 320))


def _service(node, srv_type, name, request, timeout=120.0):
    import rclpy

    client = node.create_client(srv_type, name)
    try:
        assert client.wait_for_service(timeout_sec=30), name
        future = client.call_async(request)
        rclpy.spin_until_future_complete(node, future, timeout_sec=timeout)
        assert future.done(), f"no answer from {name}"
        return future.result()
    finally:
        node.destroy_client(client)


def test_lifecycle_transitions_load_subscribe_and_release(rclpy_node, params_file, tmp_path):
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState, GetState

    from lsm_ros.messages import array_to_imgmsg, set_stamp

    log = tmp_path / "lifecycle.log"
    proc = start_lsm_node(params_file, ["-r", "__ns:=/managed"], log_path=log,
                          executable="lsm_lifecycle_node")
    client = NodeClient("lsm_test_managed", ["/managed/image_0", "/managed/image_1"],
                        namespace_node="/managed/lsm_node", reliable=True)
    node = client.node
    scene = _scene()

    def state():
        return _service(node, GetState, "/managed/lsm_node/get_state", GetState.Request()).current_state.label

    def change(transition):
        return _service(node, ChangeState, "/managed/lsm_node/change_state",
                        ChangeState.Request(transition=Transition(id=transition))).success

    def publish_pair(t):
        for cam in (0, 1):
            msg = array_to_imgmsg(scene.context[cam].image, "rgb8")
            set_stamp(msg, t)
            msg.header.frame_id = f"cam{cam}"
            client.publish(cam, msg)

    try:
        assert state() == "unconfigured"
        r = call_query(node, "floor", service="/managed/lsm/query", server_process=proc)
        assert not r.success and "unconfigured (lifecycle)" in r.message, r.message
        client.spin_for(1.0)
        assert all(p.get_subscription_count() == 0 for p in client.image_pubs)

        assert change(Transition.TRANSITION_CONFIGURE)  # returns once the model has loaded
        assert state() == "inactive" and b"model loaded" in log.read_bytes()
        client.spin_for(1.0)
        assert all(p.get_subscription_count() == 0 for p in client.image_pubs)  # not yet

        assert change(Transition.TRANSITION_ACTIVATE) and state() == "active"
        assert client.spin_until(lambda: all(p.get_subscription_count() > 0
                                             for p in client.image_pubs), timeout=20)
        sent = 300.0
        assert client.spin_until(lambda: any(abs(stamp_of(m.header) - sent) < 1e-6
                                             for m in client.received["points"]),
                                 timeout=120, every=lambda: publish_pair(sent), period=3.0,
                                 process=proc), log.read_text()[-3000:]

        assert change(Transition.TRANSITION_DEACTIVATE) and state() == "inactive"
        assert client.spin_until(lambda: all(p.get_subscription_count() == 0
                                             for p in client.image_pubs), timeout=20)
        values = diagnostic_values(client.received["diagnostics"][-1])
        assert client.spin_until(lambda: diagnostic_values(client.received["diagnostics"][-1])
                                 .get("lifecycle state") == "inactive", timeout=10), values

        assert change(Transition.TRANSITION_CLEANUP) and state() == "unconfigured"
        assert change(Transition.TRANSITION_UNCONFIGURED_SHUTDOWN)
        assert proc.wait(timeout=30) == 0, log.read_text()[-3000:]  # finalized: it exits
    finally:
        client.destroy()
        stop_process(proc)


def test_compressed_image_pairs_are_reconstructed(rclpy_node, params_file, tmp_path):
    """image_transport: compressed -> sensor_msgs/CompressedImage (JPEG) on
    <topic>/compressed, from another process."""
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CompressedImage

    from lsm_ros.messages import rgb_to_compressed, set_stamp

    log = tmp_path / "compressed.log"
    proc = start_lsm_node(params_file, ["-r", "__ns:=/jpeg", "-p", "image_transport:=compressed"],
                          log_path=log)
    client = NodeClient("lsm_test_jpeg", [], namespace_node="/jpeg/lsm_node")
    qos = QoSProfile(depth=4, reliability=ReliabilityPolicy.RELIABLE)
    pubs = [client.node.create_publisher(CompressedImage, f"/jpeg/image_{c}/compressed", qos)
            for c in (0, 1)]
    scene = _scene()
    sent = 400.0

    def publish_pair():
        for cam, pub in enumerate(pubs):
            msg = rgb_to_compressed(scene.context[cam].image, "jpeg")
            set_stamp(msg, sent)
            msg.header.frame_id = f"cam{cam}"
            pub.publish(msg)

    try:
        assert client.spin_until(lambda: any(abs(stamp_of(m.header) - sent) < 1e-6
                                             for m in client.received["points"]),
                                 timeout=120, every=publish_pair, period=3.0, process=proc), \
            log.read_text()[-3000:]
        cloud = next(m for m in client.received["points"] if abs(stamp_of(m.header) - sent) < 1e-6)
        assert cloud.header.frame_id == "cam0" and cloud.width > 1000
        assert "(compressed, sensor_data QoS)" in log.read_text()
    finally:
        for pub in pubs:
            client.node.destroy_publisher(pub)
        client.destroy()
        assert stop_process(proc) == 0


def test_qos_overrides_apply_to_the_image_subscriptions(rclpy_node, params_file, tmp_path):
    """qos_overrides.<topic>.subscription.reliability: reliable makes the node's image
    subscription reliable, so a best-effort camera no longer matches it (it does by default)."""
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    counts = {}
    for name, extra in (("default", []),
                        ("reliable", ["-p", "qos_overrides./qos/image_0.subscription.reliability:=reliable"])):
        log = tmp_path / f"{name}.log"
        proc = start_lsm_node(params_file, ["-r", "__ns:=/qos", *extra], log_path=log)
        pub = rclpy_node.create_publisher(Image, "/qos/image_0", qos_profile_sensor_data)
        try:
            client = NodeClient(f"lsm_test_qos_{name}", [], namespace_node="/qos/lsm_node")
            client.spin_until(lambda: any(diagnostic_values(m).get("lifecycle state") == "active"
                                          for m in client.received["diagnostics"]),
                              timeout=120, process=proc)
            client.spin_for(2.0)
            counts[name] = pub.get_subscription_count()
            client.destroy()
        finally:
            rclpy_node.destroy_publisher(pub)
            assert stop_process(proc) == 0, log.read_text()[-2000:]
    assert counts == {"default": 1, "reliable": 0}, counts
