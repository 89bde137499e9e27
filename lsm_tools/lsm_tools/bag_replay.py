"""``lsm_bag``: replay rosbag2 bags into ROS 2 and record topics into bags (no ``ros2 bag`` needed).

Commands::

    lsm_bag info BAG
    lsm_bag play BAG [--rate 1.0 | --max] [--remap /cam0:=/image_0 ...] [--topics T ...]
    lsm_bag record OUT (--topics T ... | --all) [--storage mcap|sqlite3] [--duration S]
    lsm_bag run BAG OUT [--max] [--remap ...] [--lockstep] [--launch-node [--params-file F]]

``run`` is the offline mode: it plays BAG into a running ``lsm_node`` (or one it starts with
``--launch-node``) and records the node's outputs (``/lsm_node/points``, ``poses``,
``camera_info``, ``labels``, ``labels_color``, ``depth``, ``rendered`` and ``/diagnostics``)
into OUT.  With ``--lockstep`` it publishes one frame group (one message per image topic,
with the CameraInfo, depth and /tf messages recorded between them) and waits for the node's
answer before the next, so that no pair is dropped however slow the model is;
otherwise frames go out at the recorded rate (``--rate``) or as fast as possible
(``--max``) and the node keeps up or drops frames exactly as it would live.

Messages are published as the serialised bytes stored in the bag (header stamps unchanged).
Publishers are RELIABLE (they match reliable and best-effort subscribers), TRANSIENT_LOCAL
for ``/tf_static`` and other latched topics; a recorder subscription is RELIABLE when every
publisher of the topic is, else BEST_EFFORT, and TRANSIENT_LOCAL when every publisher is
(as ``ros2 bag record`` adapts).  Bag timestamps of recorded messages are receive times (ns).
ROS arguments (``--ros-args -r __ns:=/robot1 ...``) are accepted after the command's own.
"""
from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence

from lsm_tools.bag_io import BagError, ThreadedBagWriter, bag_topics, latched_topics, message_class, read_bag

IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")

NODE_OUTPUTS = ("points", "poses", "camera_info", "labels", "labels_color", "depth", "rendered")


def node_output_topics(node_name: str = "/lsm_node") -> List[str]:
    """Fully qualified output topics of ``lsm_node`` named ``node_name`` (with namespace)."""
    base = "/" + node_name.strip("/")
    return [f"{base}/{t}" for t in NODE_OUTPUTS] + ["/diagnostics"]


def parse_remaps(rules: Iterable[str]) -> Dict[str, str]:
    """``["old:=new", ...]`` -> {old: new}; raises ValueError on a malformed rule."""
    out = {}
    for rule in rules:
        old, sep, new = rule.partition(":=")
        if not sep or not old or not new:
            raise ValueError(f"remap {rule!r} is not of the form old:=new")
        out[old] = new
    return out


def _reliable_qos(depth: int, latched: bool = False):
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(depth=depth, history=HistoryPolicy.KEEP_LAST,
                      reliability=ReliabilityPolicy.RELIABLE,
                      durability=(DurabilityPolicy.TRANSIENT_LOCAL if latched
                                  else DurabilityPolicy.VOLATILE))


class BagPlayer:
    """Publishes a bag's messages from an rclpy node, at the recorded rate or flat out.

    ``rate``: speed factor on the recorded timing (1.0 = real time); ``None`` = maximum rate.
    ``remap``: bag topic -> published topic.  ``topics``: play only these bag topics.

    Sensors beside the images play as recorded (CameraInfo, depth, /tf); latched topics
    (``/tf_static``, or recorded from a TRANSIENT_LOCAL publisher) are published
    TRANSIENT_LOCAL, so that tf2 listeners that start late still get them.  The *frame
    topics* are the image topics (all topics when the bag has no images): a frame group is
    complete once each of them has been published again.
    """

    def __init__(self, node, bag: Path, rate: Optional[float] = 1.0,
                 remap: Optional[Dict[str, str]] = None, topics: Optional[Sequence[str]] = None,
                 queue_depth: int = 100):
        if rate is not None and not rate > 0:
            raise ValueError(f"rate must be > 0 (or None for maximum rate), got {rate}")
        self.node, self.bag, self.rate = node, Path(bag), rate
        available = bag_topics(self.bag)
        self.topics = list(topics) if topics else sorted(available)
        unknown = [t for t in self.topics if t not in available]
        if unknown:
            raise BagError(f"topics {unknown} are not in {self.bag}; it has {sorted(available)}")
        self.remap = dict(remap or {})
        self.latched = [t for t in latched_topics(self.bag) if t in self.topics]
        self.frame_topics = ([t for t in self.topics if available[t] in IMAGE_TYPES]
                             or list(self.topics))
        self.publishers = {
            t: node.create_publisher(message_class(available[t]), self.remap.get(t, t),
                                     _reliable_qos(max(queue_depth, 1000) if t in self.latched
                                                   else queue_depth, t in self.latched))
            for t in self.topics}
        self.published = 0
        self.groups = 0

    def wait_for_subscribers(self, timeout: float = 10.0, topics: Optional[Iterable[str]] = None) -> bool:
        """Wait until each frame topic's (or each of ``topics``') publisher has at least one
        matched subscriber; the other topics (CameraInfo, /tf, ...) need none."""
        wanted = list(topics) if topics is not None else self.frame_topics
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self.publishers[t].get_subscription_count() > 0 for t in wanted):
                return True
            time.sleep(0.05)
        return False

    def play(self, after_group: Optional[Callable[[int], None]] = None,
             should_stop: Callable[[], bool] = lambda: False) -> int:
        """Publish every message; returns how many were published.

        ``after_group(n)`` is called after each frame group (n = groups so far: each frame
        topic published once more, then the other topics' messages recorded within
        ``GROUP_TAIL_NS`` after it, such as a CameraInfo logged just after its image), e.g.
        to wait for the node's answer (lockstep).
        """
        start_wall, first_stamp = None, None
        pending = set(self.frame_topics)
        closed_at = None  # receive time of the message that completed a group, not yet reported
        for msg in read_bag(self.bag, self.topics):
            if should_stop():
                break
            if closed_at is not None and (msg.topic in self.frame_topics
                                          or msg.timestamp - closed_at > self.GROUP_TAIL_NS):
                closed_at = None
                self._group_done(after_group)
            if self.rate is not None:
                if first_stamp is None:
                    start_wall, first_stamp = time.monotonic(), msg.timestamp
                due = start_wall + (msg.timestamp - first_stamp) * 1e-9 / self.rate
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            self.publishers[msg.topic].publish(msg.data)
            self.published += 1
            pending.discard(msg.topic)
            if not pending:
                pending = set(self.frame_topics)
                closed_at = msg.timestamp
        if closed_at is not None and not should_stop():
            self._group_done(after_group)
        return self.published

    GROUP_TAIL_NS = 50_000_000

    def _group_done(self, after_group) -> None:
        self.groups += 1
        if after_group is not None:
            after_group(self.groups)


class BagRecorder:
    """Records topics from an rclpy node into a new bag as they appear (raw subscriptions).

    ``topics``: fully qualified names to record; ``record_all``: every topic seen (except
    ``/rosout`` and ``/parameter_events``).  Call :meth:`discover` periodically (a timer does
    it when ``discovery_period`` > 0); :meth:`close` finishes the bag.
    """

    IGNORED = ("/rosout", "/parameter_events")

    def __init__(self, node, out: Path, topics: Sequence[str] = (), storage: str = "mcap",
                 record_all: bool = False, discovery_period: float = 0.1, queue_depth: int = 100,
                 periodic: Sequence[str] = ("/diagnostics",)):
        if not topics and not record_all:
            raise ValueError("give topics to record or record_all=True")
        self.node = node
        self.wanted = [t if t.startswith("/") else "/" + t for t in topics]
        self.record_all = record_all
        self.queue_depth = queue_depth
        self._writer = ThreadedBagWriter(out, storage)
        self._closed = False
        self._subscriptions: Dict[str, object] = {}
        self.last_receive = 0.0  # last message on a non-periodic topic (monotonic s)
        self.periodic = set(periodic)  # published on a timer: never "quiet", not in last_receive
        self._timer = node.create_timer(discovery_period, self.discover) if discovery_period > 0 else None

    @property
    def path(self) -> Path:
        return self._writer.path

    @property
    def counts(self) -> Dict[str, int]:
        """Messages received per subscribed topic."""
        return self._writer.counts

    def discover(self) -> None:
        """Subscribe to wanted topics that have appeared since the last call."""
        if self._closed:
            return
        for topic, types in self.node.get_topic_names_and_types():
            if topic in self._subscriptions or not types:
                continue
            if not (topic in self.wanted or (self.record_all and topic not in self.IGNORED)):
                continue
            self._subscribe(topic, types[0])

    def _qos(self, topic: str):
        from rclpy.qos import DurabilityPolicy, ReliabilityPolicy

        infos = self.node.get_publishers_info_by_topic(topic)
        latched = bool(infos) and all(i.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL
                                      for i in infos)  # /tf_static: get what came before
        qos = _reliable_qos(self.queue_depth, latched)
        if any(i.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT for i in infos):
            qos.reliability = ReliabilityPolicy.BEST_EFFORT
        return qos

    def _subscribe(self, topic: str, msgtype: str) -> None:
        try:
            cls = message_class(msgtype)
            self._writer.add_topic(topic, msgtype)
        except BagError as exc:
            self.node.get_logger().warning(f"not recording {topic}: {exc}")
            self._subscriptions[topic] = None
            return

        def on_message(data: bytes, topic=topic, msgtype=msgtype) -> None:
            if not self._closed:
                self._writer.write(topic, msgtype, self.node.get_clock().now().nanoseconds, data)
                if topic not in self.periodic:
                    self.last_receive = time.monotonic()

        self._subscriptions[topic] = self.node.create_subscription(
            cls, topic, on_message, self._qos(topic), raw=True)

    def wait_for_topics(self, topics: Sequence[str], timeout: float = 10.0) -> bool:
        """Wait until each of ``topics`` is subscribed and matched with a publisher."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            subs = [self._subscriptions.get(t) for t in topics]
            if all(s is not None and s.get_publisher_count() > 0 for s in subs):
                return True
            time.sleep(0.05)
        return False

    def close(self) -> Dict[str, int]:
        """Stop recording and finish the bag; returns messages per topic (idempotent)."""
        if self._closed:
            return self._writer.counts
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        # Subscriptions stay (idle) until the node is destroyed: destroying them here could
        # race with an executor spinning in another thread.
        self._writer.close()
        return self._writer.counts


# ------------------------------------------------------------------ command line


class _Session:
    """rclpy context, one node and an executor spinning in a background thread."""

    def __init__(self, ros_args: List[str], name: str):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        rclpy.init(args=ros_args)
        self.node = rclpy.create_node(name)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()

    def _spin(self) -> None:
        from rclpy.executors import ExternalShutdownException

        try:
            while not self.stop.is_set():
                self.executor.spin_once(timeout_sec=0.05)
        except ExternalShutdownException:
            pass

    def close(self) -> None:
        import rclpy

        self.stop.set()
        self.thread.join(timeout=5)
        self.node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()


def _stop_on_signals(event: threading.Event) -> None:
    def handler(signum, frame):
        event.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def _print_counts(label: str, counts: Dict[str, int]) -> None:
    print(f"{label}: {sum(counts.values())} messages")
    for topic in sorted(counts):
        print(f"  {topic}: {counts[topic]}")


def cmd_info(args) -> int:
    counts: Dict[str, int] = {}
    first = last = None
    for m in read_bag(args.bag):
        counts[m.topic] = counts.get(m.topic, 0) + 1
        first = m.timestamp if first is None else first
        last = m.timestamp
    types = bag_topics(args.bag)
    duration = 0.0 if first is None else (last - first) * 1e-9
    print(f"bag {args.bag}: {sum(counts.values())} messages, {duration:.3f} s")
    for topic in sorted(types):
        print(f"  {topic} [{types[topic]}]: {counts.get(topic, 0)}")
    return 0


def _rate(args) -> Optional[float]:
    return None if args.max else args.rate


def cmd_play(args, ros_args) -> int:
    stop = threading.Event()
    session = _Session(ros_args, "lsm_bag_player")
    _stop_on_signals(stop)
    try:
        player = BagPlayer(session.node, args.bag, _rate(args), parse_remaps(args.remap), args.topics)
        if args.wait_subscribers > 0 and not player.wait_for_subscribers(args.wait_subscribers):
            print("warning: not every topic has a subscriber yet; playing anyway", file=sys.stderr)
        n = player.play(should_stop=stop.is_set)
        time.sleep(0.5)  # let reliable writers deliver the last messages
        print(f"played {n} messages from {args.bag}")
    finally:
        session.close()
    return 0


def cmd_record(args, ros_args) -> int:
    stop = threading.Event()
    session = _Session(ros_args, "lsm_bag_recorder")
    _stop_on_signals(stop)
    recorder = BagRecorder(session.node, args.out, args.topics or (), args.storage, args.all)
    try:
        start = time.monotonic()
        print(f"recording to {args.out} (Ctrl-C to stop)", flush=True)
        while not stop.is_set():
            if args.duration and time.monotonic() - start >= args.duration:
                break
            if args.max_messages and sum(recorder.counts.values()) >= args.max_messages:
                break
            time.sleep(0.05)
    finally:
        counts = recorder.close()
        session.close()
    _print_counts(f"recorded {args.out}", counts)
    return 0


def cmd_run(args, ros_args) -> int:
    stop = threading.Event()
    node_proc = None
    if args.launch_node:
        from lsm_tools.process import start_lsm_node

        node_args = list(args.node_arg or [])
        node_proc = start_lsm_node(args.params_file, node_args,
                                   log_path=args.node_log)
    session = _Session(ros_args, "lsm_bag_runner")
    _stop_on_signals(stop)
    outputs = args.topics or node_output_topics(args.node_name)
    recorder = BagRecorder(session.node, args.out, outputs, args.storage)
    code = 0
    try:
        player = BagPlayer(session.node, args.bag, _rate(args), parse_remaps(args.remap), args.topics_in)
        wait_topic = args.wait_topic or outputs[0]
        if not player.wait_for_subscribers(args.startup_timeout):
            raise BagError(f"no subscriber on {[player.remap.get(t, t) for t in player.frame_topics]} "
                           f"within {args.startup_timeout} s: is lsm_node running with these "
                           "input topics (use --remap bag_topic:=node_topic)?")
        if not recorder.wait_for_topics([wait_topic], args.startup_timeout):
            raise BagError(f"{wait_topic} did not appear within {args.startup_timeout} s")

        def lockstep(groups: int) -> None:
            deadline = time.monotonic() + args.step_timeout
            while recorder.counts.get(wait_topic, 0) < groups and not stop.is_set():
                if time.monotonic() > deadline:
                    print(f"warning: no output on {wait_topic} for frame group {groups} within "
                          f"{args.step_timeout} s", file=sys.stderr)
                    return
                time.sleep(0.01)

        n = player.play(lockstep if args.lockstep else None, stop.is_set)
        print(f"played {n} messages from {args.bag}", flush=True)
        # settle: wait until the node has been quiet for args.settle seconds
        recorder.last_receive = max(recorder.last_receive, time.monotonic())
        while not stop.is_set() and time.monotonic() - recorder.last_receive < args.settle:
            time.sleep(0.05)
    except BagError as exc:
        print(f"lsm_bag run: {exc}", file=sys.stderr)
        code = 1
    finally:
        counts = recorder.close()
        session.close()
        if node_proc is not None:
            from lsm_tools.process import stop_process

            stop_process(node_proc)
    _print_counts(f"recorded {args.out}", counts)
    return code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lsm_bag", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("info", help="topics, types and message counts of a bag")
    p.add_argument("bag", type=Path)

    def playing(p):
        p.add_argument("bag", type=Path, help="rosbag2 folder (sqlite3 or MCAP)")
        p.add_argument("--rate", type=float, default=1.0, help="speed factor on recorded timing")
        p.add_argument("--max", action="store_true", help="publish as fast as possible")
        p.add_argument("--remap", action="append", default=[], metavar="OLD:=NEW",
                       help="publish bag topic OLD on NEW (repeatable)")

    p = sub.add_parser("play", help="publish a bag's messages")
    playing(p)
    p.add_argument("--topics", nargs="+", help="bag topics to play (default: all)")
    p.add_argument("--wait-subscribers", type=float, default=2.0, metavar="S",
                   help="wait up to S s for subscribers before playing (0: don't)")

    p = sub.add_parser("record", help="record topics into a new bag")
    p.add_argument("out", type=Path, help="new bag folder")
    p.add_argument("--topics", nargs="+", help="topics to record")
    p.add_argument("--all", action="store_true", help="record every topic")
    p.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    p.add_argument("--duration", type=float, default=0.0, help="stop after S seconds")
    p.add_argument("--max-messages", type=int, default=0, help="stop after N messages")

    p = sub.add_parser("run", help="play a bag into lsm_node and record its outputs")
    playing(p)
    p.add_argument("out", type=Path, help="new bag folder for the node's outputs")
    p.add_argument("--topics-in", nargs="+", help="bag topics to play (default: all)")
    p.add_argument("--topics", nargs="+", help="topics to record (default: lsm_node outputs)")
    p.add_argument("--node-name", default="/lsm_node", help="fully qualified node name")
    p.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    p.add_argument("--lockstep", action="store_true",
                   help="wait for the node's output after each frame group")
    p.add_argument("--wait-topic", help="output that marks an answer (default: first recorded)")
    p.add_argument("--step-timeout", type=float, default=120.0)
    p.add_argument("--settle", type=float, default=3.0,
                   help="after playing, stop once outputs have been quiet for S s")
    p.add_argument("--startup-timeout", type=float, default=60.0)
    p.add_argument("--launch-node", action="store_true", help="start lsm_node for this run")
    p.add_argument("--params-file", type=Path, help="lsm_node params file (with --launch-node)")
    p.add_argument("--node-arg", action="append", metavar="ARG",
                   help="extra lsm_node ROS argument, e.g. --node-arg=-p --node-arg=qos:=reliable")
    p.add_argument("--node-log", type=Path, help="write lsm_node's output to this file")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Console script ``lsm_bag``. Exit status 0 on success, 1 on a bag/topic error, 2 on usage."""
    argv = list(sys.argv[1:] if argv is None else argv)
    ros_args: List[str] = []
    if "--ros-args" in argv:
        i = argv.index("--ros-args")
        argv, ros_args = argv[:i], argv[i:]
    args = build_parser().parse_args(argv)
    try:
        if args.command == "info":
            return cmd_info(args)
        if args.command == "play":
            return cmd_play(args, ["lsm_bag", *ros_args])
        if args.command == "record":
            if not args.topics and not args.all:
                print("lsm_bag record: give --topics or --all", file=sys.stderr)
                return 2
            return cmd_record(args, ["lsm_bag", *ros_args])
        return cmd_run(args, ["lsm_bag", *ros_args])
    except (BagError, ValueError) as exc:
        print(f"lsm_bag {args.command}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
