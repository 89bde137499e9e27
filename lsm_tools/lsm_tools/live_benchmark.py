"""``lsm-benchmark-live``: what a live camera gets from lsm_node, end to end over DDS.

Starts ``lsm_node`` (pair mode, the embedded model unless ``--checkpoint``) in its own
process for each configuration, offers 640x480 image pairs at each ``--rates`` (Hz) for
``--seconds`` from this process, with only ``~/points`` subscribed (a planner's view), and
measures on this process's monotonic clock:

* published pairs/s: clouds received for the pairs offered in the window / window length;
* latency publish -> cloud (median, 90th percentile);
* staleness: median latency divided by the mean time between published clouds (how many
  pair times old an answer is when it arrives).

Configurations run in one invocation, so their ratios compare on this machine's speed of
the moment: ``defaults`` (the node's parameters as shipped) and, with ``--compare``,
``bf16`` (``precision: bf16``, where the CPU has native bf16) and ``before`` (the
pre-freshness defaults: ``pending_pairs 10``, one torch thread on 2 cores); ``--configs``
picks any of them, and ``checkpoint=PATH`` runs the defaults with another weights file (e.g.
two models alternating in one run).

Usage: ``lsm-benchmark-live [--rates 4 30] [--seconds 20] [--compare | --configs NAME..]``.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

CONFIGS = {"defaults": [],
           "bf16": ["-p", "precision:=bf16"],
           "before": ["-p", "pending_pairs:=10", "-p", "cpu_threads:=1"]}


def config_arguments(name: str) -> List[str]:
    """The node's ``--ros-args`` for a configuration name: one of :data:`CONFIGS`, or
    ``checkpoint=PATH`` (the defaults with that weights file)."""
    if name in CONFIGS:
        return list(CONFIGS[name])
    kind, _, path = name.partition("=")
    if kind == "checkpoint" and path:
        if not Path(path).is_file():
            raise ValueError(f"configuration {name!r}: no such file")
        return ["-p", f"checkpoint:={Path(path).resolve()}"]
    raise ValueError(f"unknown configuration {name!r}: one of {sorted(CONFIGS)} or checkpoint=PATH")


def _pairs(size):
    from lsm_train.data.procedural import generate_sample

    return [tuple(v.image for v in generate_sample(seed, size=size).context) for seed in (11, 12)]


def measure(name: str, ros_args: Sequence[str], rates: Sequence[float], seconds: float, size,
            env: Dict[str, str], log=print) -> List[dict]:
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image, PointCloud2

    from lsm_ros.diagnostics import diagnostic_values
    from lsm_ros.messages import array_to_imgmsg, set_stamp, stamp_seconds
    from lsm_tools.process import start_lsm_node, stop_process

    pairs = _pairs(size)
    safe = "".join(c if c.isalnum() else "_" for c in name)  # for checkpoint=PATH too
    log_path = Path(tempfile.mkdtemp(prefix="lsm_live_")) / f"lsm_node_{safe}.log"
    proc = start_lsm_node(None, ["-r", "__ns:=/live", "-p", "image_topics:=[/live/cam0, /live/cam1]",
                                 *ros_args], env=env, log_path=log_path)
    node = rclpy.create_node(f"lsm_live_benchmark_{safe}")
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    pubs = [node.create_publisher(Image, f"/live/cam{i}", qos) for i in range(2)]
    arrived: Dict[float, float] = {}
    node.create_subscription(PointCloud2, "/live/lsm_node/points",
                             lambda m: arrived.setdefault(round(stamp_seconds(m.header), 6),
                                                          time.monotonic()), 10)
    ready, precision = [], []
    from diagnostic_msgs.msg import DiagnosticArray

    def on_diagnostics(m):
        values = diagnostic_values(m)
        ready.append(values.get("model state", "").startswith("ready"))
        if "precision" in values:
            precision.append(values["precision"])

    node.create_subscription(DiagnosticArray, "/diagnostics", on_diagnostics, 10)
    results = []
    try:
        end = time.monotonic() + 180
        while not (any(ready) and all(p.get_subscription_count() > 0 for p in pubs)):
            if proc.poll() is not None or time.monotonic() > end:
                raise RuntimeError(f"lsm_node ({name}) did not get ready: "
                                   + log_path.read_text()[-2000:])
            rclpy.spin_once(node, timeout_sec=0.1)
        stamp0 = 10000.0
        for rate in rates:
            sent: Dict[float, float] = {}
            t0 = time.monotonic()
            k = 0
            while time.monotonic() - t0 < seconds:
                stamp = round(stamp0 + k / rate, 6)
                for cam, img in enumerate(pairs[k % 2]):
                    msg = array_to_imgmsg(img, "rgb8")
                    set_stamp(msg, stamp)
                    msg.header.frame_id = f"cam{cam}_optical"
                    pubs[cam].publish(msg)
                sent[stamp] = time.monotonic()
                k += 1
                next_at = t0 + k / rate
                while time.monotonic() < next_at:
                    rclpy.spin_once(node, timeout_sec=max(0.0, min(0.01, next_at - time.monotonic())))
            drain = time.monotonic() + 5.0  # answers of pairs offered in the window
            while time.monotonic() < drain:
                rclpy.spin_once(node, timeout_sec=0.05)
            got = sorted((arrived[s], arrived[s] - sent[s]) for s in sent if s in arrived)
            latency = np.array([lat for _, lat in got])
            n = len(got)
            span = (got[-1][0] - got[0][0]) if n > 1 else float("nan")
            throughput = (n - 1) / span if n > 1 else 0.0
            median = float(np.median(latency)) if n else float("nan")
            r = {"config": name, "precision": precision[-1] if precision else "?",
                 "offered_hz": rate, "offered": len(sent), "published": n,
                 "pairs_per_s": throughput, "latency_median_s": median,
                 "latency_p90_s": float(np.percentile(latency, 90)) if n else float("nan"),
                 "staleness_pair_times": median * throughput if n > 1 else float("nan")}
            results.append(r)
            log(f"{name} @ {rate:g} Hz: {n} of {len(sent)} pairs published, "
                f"{throughput:.2f} pairs/s, latency {median:.2f} s median")
            stamp0 += seconds + 10.0
            arrived.clear()
    finally:
        node.destroy_node()
        code = stop_process(proc)
        if code != 0:
            log(f"lsm_node ({name}) exited with status {code}; log {log_path}")
    return results


def report(rows: List[dict]) -> str:
    lines = ["| configuration | precision (effective) | offered | published pairs/s | latency median (p90) | staleness "
             "(pair times) | published / offered |", "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['config']} | {r['precision']} | {r['offered_hz']:g} Hz | {r['pairs_per_s']:.2f} | "
                     f"{r['latency_median_s']:.2f} s ({r['latency_p90_s']:.2f} s) | "
                     f"{r['staleness_pair_times']:.1f} | {r['published']} / {r['offered']} |")
    return "\n".join(lines)


def run(names: Sequence[str], rates: Sequence[float], seconds: float, size,
        checkpoint: str = "") -> List[dict]:
    """Every configuration in ``names`` (bf16 skipped where the CPU lacks it), one after the
    other in this process's DDS domain on the loopback interface; rows as :func:`measure`."""
    import rclpy

    from lsm.perception import effective_precision
    from lsm_tools.dds_env import loopback_dds_environment

    env = loopback_dds_environment()
    os.environ.update(env)
    extra = ["-p", f"checkpoint:={checkpoint}"] if checkpoint else []
    names = list(names)
    if "bf16" in names and effective_precision("bf16", "cpu")[0] != "bf16":
        print(f"lsm-benchmark-live: bf16 skipped ({effective_precision('bf16', 'cpu')[1]})",
              file=sys.stderr)
        names.remove("bf16")
    rclpy.init(args=[])
    rows: List[dict] = []
    try:
        for name in names:
            rows += measure(name, config_arguments(name) + extra, rates, seconds, size, env,
                            log=lambda m: print(m, file=sys.stderr, flush=True))
    finally:
        rclpy.try_shutdown()
    return rows


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="lsm-benchmark-live", description=__doc__.splitlines()[0])
    parser.add_argument("--rates", type=float, nargs="+", default=[4.0, 30.0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--size", default="480x640", help="HxW of the offered images")
    parser.add_argument("--compare", action="store_true",
                        help="also run bf16 (where the CPU has it) and the pre-freshness "
                             "defaults ('before') in the same run")
    parser.add_argument("--configs", nargs="+", metavar="NAME",
                        help=f"configurations to run, in this order: {', '.join(sorted(CONFIGS))} or "
                             "checkpoint=PATH (default: defaults)")
    parser.add_argument("--checkpoint", default="")
    a = parser.parse_args(argv)
    size = tuple(int(x) for x in a.size.lower().split("x"))
    names = a.configs or (["defaults", "bf16", "before"] if a.compare else ["defaults"])
    for name in names:
        try:
            config_arguments(name)
        except ValueError as exc:
            parser.error(str(exc))
    rows = run(names, a.rates, a.seconds, size, a.checkpoint)
    print(f"lsm_node live, {size[1]}x{size[0]} pairs, {os.cpu_count()} cores, only ~/points "
          "subscribed")
    print(report(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
