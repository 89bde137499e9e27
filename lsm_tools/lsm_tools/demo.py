"""``lsm_demo`` (``make demo``): the main job end to end, over real topics, into one folder.

1. Renders a procedural indoor sequence (one room, a smooth camera path, with true depth,
   classes and poses) at the camera resolution given by ``--size``, and simulates a robot
   (lsm_tools.robot_sim): CameraInfo with every image and, in its own process, odometry on
   /tf (odom -> camera optical frame); the node puts its outputs in ``odom``.
2. **Pair mode**: starts ``lsm_node`` on the embedded model (or ``--checkpoint``) in its own
   process, publishes ``--pairs`` pairs of a rectified stereo rig (frame k of the path and
   a second camera 12 cm to its right; the right CameraInfo holds the baseline, so the
   scale comes from block matching), waits for every output of each pair, and asks
   ``/lsm/query`` for each ``--query`` label (a synonym such as "couch" included).
3. **Mono mode**: restarts the node with ``mode:=mono`` as an RGB-D camera (an aligned
   depth topic: scale and geometry from the depth sensor) and streams ``--mono-frames``
   frames of the path at ``--rate`` Hz; the node forms keyframe pairs itself.
   ``--no-sensors``: neither CameraInfo, depth nor TF, and the pair-mode cameras are frames
   k and k + gap of the path: the model alone, in model units.
4. **Map**: restarts the node as an RGB-D camera once more and drives through the whole
   room (``--map-keyframes`` keyframes ``--map-spacing`` m apart); every pair is fused into
   the node's map in ``odom``; asks ``/lsm/query`` with scope SCOPE_MAP for every furniture
   class and a synonym (instances against the true boxes) and calls ``~/save_map``
   (lsm_tools.demo_map). Pair mode also fuses its stereo pairs and is asked once.
5. Calls ``~/save_scene`` and writes into ``--out``:

   * ``pair_NNN.png`` / ``mono_NNN.png``: inputs, rendered RGB, rendered depth, coloured labels
     and one panel per query mask;
   * ``pair_NNN_points.ply`` ...: the labelled cloud of each reconstruction as published;
   * ``scene/``: the last reconstruction from ``~/save_scene`` (``gaussians.ply`` for 3DGS
     viewers, ``points.ply``, ``cameras.json``);
   * ``map/`` (map.ply, map.json) and ``map_topdown.png``: the map from above, the answered
     instance boxes against the true object boxes;
   * ``poses.json``: estimated vs true relative poses and focal lengths per reconstruction;
   * ``summary.json`` and the printed summary: reconstructions, latency per pair, the
     published depth against the true depth (scale error, AbsRel), queries (IoU with the
     true pixels, centroid error in metres in odom against the true object's visible
     points).

Exit status 0 only when every reconstruction arrived with all outputs, every query was
answered and every file was written; 1 otherwise (the node's log is printed).
DDS traffic stays on this machine (lsm_tools.dds_env).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from lsm_ros.diagnostics import diagnostic_values
from lsm_ros.messages import imgmsg_to_array, pose_matrix, stamp_seconds
from lsm_tools.dds_env import loopback_dds_environment
from lsm_tools.paths import config_file

OUTPUTS = ("points", "poses", "camera_info", "labels", "labels_color", "depth", "rendered")
DEFAULT_QUERIES = ("couch", "bed", "table", "chair", "floor")
# Which scene class a query word means, to score masks against the truth (demo only: the
# node itself is open-vocabulary and knows nothing of this table).
TRUE_CLASS_OF = {"couch": "sofa", "settee": "sofa", "desk": "table", "armchair": "chair"}


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="lsm_demo", description=__doc__.splitlines()[0])
    p.add_argument("--out", default="lsm_demo_output", help="output folder (created)")
    p.add_argument("--seed", type=int, default=7,
                   help="procedural scene seed (7: a room with sofa, bed, table and chairs)")
    p.add_argument("--size", default="480x640", help="camera images HxW (default 480x640)")
    p.add_argument("--pairs", type=int, default=4, help="image pairs streamed in pair mode")
    p.add_argument("--gap", type=int, default=4, help="path frames between the two cameras")
    p.add_argument("--mono-frames", type=int, default=13,
                   help="frames streamed in mono mode (0 = skip mono mode)")
    p.add_argument("--keyframe-interval", type=int, default=4, help="mono keyframe interval")
    p.add_argument("--rate", type=float, default=4.0, help="mono frame rate, Hz")
    p.add_argument("--query", nargs="+", default=list(DEFAULT_QUERIES),
                   help="labels to ask /lsm/query for (default: %(default)s)")
    p.add_argument("--checkpoint", default="", help="model checkpoint ('' = embedded model)")
    p.add_argument("--params-file", default=None, help="node parameters (default: "
                   "config/lsm.yaml of the package)")
    p.add_argument("--timeout", type=float, default=180.0,
                   help="seconds to wait for the node per step")
    p.add_argument("--no-sensors", action="store_true",
                   help="no CameraInfo, depth or TF: the model alone, in model units")
    p.add_argument("--baseline", type=float, default=0.12,
                   help="stereo rig baseline in metres (pair mode with sensors)")
    p.add_argument("--map-keyframes", type=int, default=16,
                   help="RGB-D keyframes of the drive through the room that builds the map "
                        "(0 = skip the map phase; it needs the sensors)")
    p.add_argument("--map-spacing", type=float, default=0.4,
                   help="metres between map keyframes")
    return p.parse_args(argv)


@dataclass
class ReceivedPair:
    """What the demo got back for one published pair."""

    mode: str
    frames: tuple  # (reference frame index, other frame index) in the path
    stamp: float
    sent_at: float
    messages: Dict[str, object] = field(default_factory=dict)
    received_at: float = float("nan")
    queries: List[dict] = field(default_factory=list)
    n_points: int = 0
    pose: Optional[dict] = None  # pose_record(), filled at the end
    depth: Optional[dict] = None  # depth_record(): published vs true depth

    @property
    def latency(self) -> float:
        return self.received_at - self.sent_at


class DemoClient:
    """rclpy side of the demo: image publishers, output subscriptions keyed by stamp."""

    def __init__(self, cameras: Sequence[str], depth: bool = False) -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from geometry_msgs.msg import PoseArray
        from sensor_msgs.msg import CameraInfo, Image, PointCloud2

        from lsm_tools.robot_sim import CameraPublisher

        self.node = rclpy.create_node("lsm_demo")
        # reliable publishers match the node's best-effort (sensor data) subscriptions too
        self.cameras = [CameraPublisher(self.node, c, depth=depth) for c in cameras]
        types = {"points": PointCloud2, "poses": PoseArray, "camera_info": CameraInfo}
        self.by_stamp: Dict[float, Dict[str, object]] = defaultdict(dict)
        self.arrived: Dict[float, float] = {}
        self.diagnostics = None
        self.diagnostics_at = 0.0
        self._subs = [self.node.create_subscription(
            types.get(name, Image), f"/lsm_node/{name}",
            lambda msg, n=name: self._keep(n, msg), 10) for name in OUTPUTS]
        self._subs.append(self.node.create_subscription(
            DiagnosticArray, "/diagnostics", self._keep_diagnostics, 10))

    def _keep(self, name: str, msg) -> None:
        key = round(stamp_seconds(msg.header), 6)
        self.by_stamp[key][name] = msg
        if len(self.by_stamp[key]) == len(OUTPUTS):
            self.arrived.setdefault(key, time.monotonic())

    def _keep_diagnostics(self, msg) -> None:
        self.diagnostics = msg
        self.diagnostics_at = time.monotonic()

    def spin(self, seconds: float) -> None:
        import rclpy

        end = time.monotonic() + seconds
        while time.monotonic() < end:
            rclpy.spin_once(self.node, timeout_sec=0.02)

    def wait_for(self, stamps: Sequence[float], timeout: float, proc) -> bool:
        import rclpy

        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if all(round(s, 6) in self.arrived for s in stamps):
                return True
            if proc.poll() is not None:
                raise RuntimeError(f"lsm_node exited with status {proc.returncode}")
            rclpy.spin_once(self.node, timeout_sec=0.05)
        return False

    def publish(self, camera: int, view, stamp: float, frame_id: str, baseline: float = 0.0,
                depth: bool = False) -> None:
        """The view's image with its CameraInfo (and depth image when ``depth``)."""
        self.cameras[camera].publish(view.image, view.K, stamp, frame_id,
                                     depth=view.depth if depth else None, baseline=baseline)

    def model_state(self) -> str:
        if self.diagnostics is None:
            return "unknown"
        return diagnostic_values(self.diagnostics).get("model state", "unknown")

    def wait_until_ready(self, timeout: float, proc) -> None:
        """Until the node subscribes to our topics and reports its model loaded."""
        end = time.monotonic() + timeout
        while (any(not c.subscribed() for c in self.cameras)
               or not self.model_state().startswith("ready")):
            if proc.poll() is not None:
                raise RuntimeError(f"lsm_node exited with status {proc.returncode}")
            if self.model_state().startswith("failed"):
                raise RuntimeError(f"lsm_node could not load its model: {self.model_state()}")
            if time.monotonic() > end:
                raise TimeoutError(f"lsm_node not ready within {timeout} s "
                                   f"(model state: {self.model_state()})")
            self.spin(0.1)

    def save_scene(self, timeout: float):
        import rclpy
        from std_srvs.srv import Trigger

        client = self.node.create_client(Trigger, "/lsm_node/save_scene")
        try:
            if not client.wait_for_service(timeout_sec=timeout):
                raise TimeoutError("/lsm_node/save_scene did not appear")
            future = client.call_async(Trigger.Request())
            rclpy.spin_until_future_complete(self.node, future, timeout_sec=timeout)
            if not future.done():
                raise TimeoutError("no answer from /lsm_node/save_scene")
            return future.result()
        finally:
            self.node.destroy_client(client)

    def destroy(self) -> None:
        self.node.destroy_node()


# ----------------------------------------------------------------------------- results
def pose_record(rec: ReceivedPair, frames) -> dict:
    """Estimated vs true pose of the second view in the reference view's frame."""
    from lsm.geometry.pose_metrics import relative_pose_errors

    poses = rec.messages["poses"].poses  # in odom with sensors, else in view 0's frame
    est = np.linalg.inv(pose_matrix(poses[0])) @ pose_matrix(poses[1])
    ref, other = frames[rec.frames[0]], frames[rec.frames[1]]
    true = np.linalg.inv(ref.c2w) @ other.c2w
    rot, direction = (float(np.asarray(e).reshape(-1)[0]) for e in relative_pose_errors(est, true))
    k_est = np.array(rec.messages["camera_info"].k).reshape(3, 3)
    return {
        "mode": rec.mode, "frames": list(rec.frames), "stamp": rec.stamp,
        "estimated_c2w": est.tolist(), "true_c2w": true.tolist(),
        "rotation_error_deg": rot, "translation_direction_error_deg": direction,
        "estimated_focal_px": float(k_est[0, 0]), "true_focal_px": float(ref.K[0, 0]),
        "estimated_translation_norm": float(np.linalg.norm(est[:3, 3])),
        "true_translation_norm_m": float(np.linalg.norm(true[:3, 3])),
    }


def depth_record(rec: ReceivedPair, frames) -> dict:
    """The published (rendered) depth of the reference view against its true depth: the
    median ratio's error (the scale error) and AbsRel, on pixels both have."""
    depth = imgmsg_to_array(rec.messages["depth"]).astype(np.float64)
    true = frames[rec.frames[0]].depth
    ok = np.isfinite(depth) & (depth > 0) & np.isfinite(true) & (true > 0)
    values = _diagnostics_of(rec)
    units = values.get("units", "?")
    return {"units": units if units == "m" else "model units",
            "scale_source": values.get("scale source", "").split(";")[0],
            "scale_error": float(np.median(depth[ok] / true[ok]) - 1.0),
            "abs_rel": float(np.mean(np.abs(depth[ok] - true[ok]) / true[ok]))}


def _diagnostics_of(rec: ReceivedPair) -> dict:
    return dict(rec.messages.get("diagnostics_values", {}))


def true_class_centroid(view, class_id: int) -> Optional[np.ndarray]:
    """Median of the true world (odom) points of the class's pixels in ``view``."""
    sel = (view.labels == class_id) & np.isfinite(view.depth) & (view.depth > 0)
    if not sel.any():
        return None
    v, u = np.nonzero(sel)
    z = view.depth[sel]
    cam = np.stack([(u + 0.5 - view.K[0, 2]) / view.K[0, 0] * z,
                    (v + 0.5 - view.K[1, 2]) / view.K[1, 1] * z, z, np.ones_like(z)], -1)
    return np.median((cam @ view.c2w.T)[:, :3], axis=0)


def query_record(label: str, response, view, class_names) -> dict:
    """One query's answer; IoU against the true pixels when the label names a scene class,
    and, for a metric answer in odom, the centroid's distance to the true class centroid."""
    truth_labels = view.labels
    out = {"label": label, "success": bool(response.success), "message": response.message,
           "score": float(response.score), "units": response.units,
           "frame": response.header.frame_id}
    name = TRUE_CLASS_OF.get(label.strip().lower(), label.strip().lower())
    mask = None
    if response.success:
        mask = imgmsg_to_array(response.mask) > 0
        out.update(mask_pixels=int(mask.sum()), points=int(response.points.width),
                   centroid=[response.centroid.x, response.centroid.y, response.centroid.z],
                   extent=[response.extent.x, response.extent.y, response.extent.z])
    if name in class_names:
        truth = truth_labels == class_names.index(name)
        out["true_class"] = name
        out["true_pixels"] = int(truth.sum())
        if mask is not None and (mask | truth).any():
            out["iou"] = float((mask & truth).sum() / (mask | truth).sum())
        centroid = true_class_centroid(view, class_names.index(name))
        if response.success and centroid is not None and response.units == "m" \
                and response.header.frame_id == "odom":
            out["centroid_error_m"] = float(np.linalg.norm(np.asarray(out["centroid"]) - centroid))
    return out, mask


def write_panel(path: Path, rec: ReceivedPair, frames, masks: Dict[str, np.ndarray]) -> None:
    """Inputs, rendered RGB, depth, coloured labels, then one tile per query mask."""
    import cv2

    def tile(img, title):
        t = cv2.resize(img, (320, 240), interpolation=cv2.INTER_AREA)
        t = np.ascontiguousarray(t)
        cv2.putText(t, title, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 2)
        cv2.putText(t, title, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1)
        return t

    ref, other = frames[rec.frames[0]].image, frames[rec.frames[1]].image
    depth = imgmsg_to_array(rec.messages["depth"]).astype(np.float32)
    finite = np.isfinite(depth)
    d = np.zeros(depth.shape, np.uint8)
    if finite.any():
        lo, hi = np.percentile(depth[finite], [2, 98])
        d[finite] = np.clip(255 * (depth[finite] - lo) / max(hi - lo, 1e-6), 0, 255)
    depth_rgb = cv2.applyColorMap(d, cv2.COLORMAP_VIRIDIS)[:, :, ::-1]
    depth_rgb[~finite] = 0
    tiles = [tile(ref, "reference view"), tile(other, "second view"),
             tile(imgmsg_to_array(rec.messages["rendered"]), "rendered RGB"),
             tile(depth_rgb, "rendered depth"),
             tile(imgmsg_to_array(rec.messages["labels_color"]), "labels")]
    for label, mask in masks.items():
        overlay = ref.copy()
        if mask is not None:
            overlay[mask] = (0.45 * overlay[mask] + 0.55 * np.array([255, 40, 40])).astype(np.uint8)
        tiles.append(tile(overlay, f"query '{label}'" + ("" if mask is not None else ": none")))
    while len(tiles) % 4:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [np.concatenate(tiles[i:i + 4], axis=1) for i in range(0, len(tiles), 4)]
    cv2.imwrite(str(path), cv2.cvtColor(np.concatenate(rows, axis=0), cv2.COLOR_RGB2BGR))


def write_cloud(path: Path, msg) -> int:
    from lsm.io.ply import save_labelled_points_ply
    from lsm_ros.messages import read_pointcloud

    cloud = read_pointcloud(msg)
    save_labelled_points_ply(cloud["points"], cloud["colors"], cloud["labels"],
                             cloud["confidence"], path)
    return len(cloud["points"])


# ----------------------------------------------------------------------------- phases
class Demo:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.out = Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.env = loopback_dds_environment()
        os.environ.update(self.env)  # this client must be on the same (private) DDS domain
        self.params = Path(args.params_file) if args.params_file else config_file("lsm.yaml")
        self.logs: List[Path] = []
        self.results: List[ReceivedPair] = []
        self.problems: List[str] = []
        self.map_queries: List[dict] = []  # map phase answers (demo_map.map_query_record)
        self.map_floor_query: Optional[dict] = None  # demo_map.floor_query_record
        self.pair_map_query: Optional[dict] = None
        self.t0 = time.monotonic()

    def say(self, text: str) -> None:
        print(f"[lsm_demo {time.monotonic() - self.t0:6.1f} s] {text}", flush=True)

    def start_node(self, mode: str, topics: Sequence[str], extra: Sequence[str] = ()):
        from lsm_tools.process import start_lsm_node

        log = Path(tempfile.mkdtemp(prefix="lsm_demo_")) / f"lsm_node_{mode}.log"
        self.logs.append(log)
        ros_args = ["-p", f"mode:={mode}", "-p", f"image_topics:=[{','.join(topics)}]",
                    "-p", "queue_size:=20", "-p", "pending_pairs:=20",  # every pair, measured
                    "-p", f"save_directory:={self.out.resolve()}", *extra]
        if not self.args.no_sensors:
            ros_args += ["-p", "world_frame:=odom", "-p", "odom_frame:=odom"]
        if self.args.checkpoint:
            ros_args += ["-p", f"checkpoint:={self.args.checkpoint}"]
        self.say(f"starting lsm_node ({mode} mode, log {log})")
        return start_lsm_node(self.params, ros_args, env=self.env, log_path=log)

    def ask(self, client: DemoClient, proc, rec: ReceivedPair, frames, class_names) -> None:
        from lsm_tools.process import call_query

        masks = {}
        view = frames[rec.frames[0]]
        for label in self.args.query:
            r = call_query(client.node, label, server_process=proc, timeout=self.args.timeout,
                           service="/lsm/query")
            q, mask = query_record(label, r, view, class_names)
            rec.queries.append(q)
            masks[label] = mask
        name = f"{rec.mode}_{sum(r.mode == rec.mode for r in self.results):03d}"
        write_panel(self.out / f"{name}.png", rec, frames, masks)
        rec.n_points = write_cloud(self.out / f"{name}_points.ply", rec.messages["points"])
        answers = ", ".join(
            f"{q['label']}: " + (f"score {q['score']:.2f}" + (f", IoU {q['iou']:.2f}" if "iou" in q else "")
                                 + (f", centroid off by {q['centroid_error_m']:.2f} m"
                                    if "centroid_error_m" in q else "")
                                 if q["success"] else "no match") for q in rec.queries)
        self.say(f"  {name}: {rec.n_points} points, latency {rec.latency:.2f} s; {answers}")
        self.results.append(rec)

    def collect(self, client: DemoClient, recs: List[ReceivedPair]) -> None:
        for rec in recs:
            key = round(rec.stamp, 6)
            rec.messages = dict(client.by_stamp[key])
            rec.received_at = client.arrived[key]
        end = time.monotonic() + 2.5  # /diagnostics (1 Hz) after the last of them
        while client.diagnostics_at <= max(r.received_at for r in recs) and time.monotonic() < end:
            client.spin(0.05)
        for rec in recs:
            if client.diagnostics is not None:
                rec.messages["diagnostics_values"] = diagnostic_values(client.diagnostics)

    def odometry(self, stamps: Sequence[float], views, frame_id: str):
        """A separate process publishing odom -> ``frame_id`` for ``stamps`` (robot_sim)."""
        import subprocess

        from lsm_tools.robot_sim import save_poses

        path = Path(tempfile.mkdtemp(prefix="lsm_demo_tf_")) / "poses.npz"
        save_poses(path, stamps, [v.c2w for v in views], "odom", frame_id)
        return subprocess.Popen([sys.executable, "-m", "lsm_tools.robot_sim", "tf", str(path)],
                                env=self.env)

    def run_pair_mode(self, frames, class_names, room) -> None:

        a = self.args
        sensors = not a.no_sensors
        starts = np.linspace(0, len(frames) - 1 - a.gap, a.pairs).round().astype(int)
        stamps = [1000.0 + i for i in range(len(starts))]
        odometry = self.odometry(stamps, [frames[k] for k in starts], "left_optical") \
            if sensors else None
        proc = self.start_node("pair", ["/demo/left/image", "/demo/right/image"])
        client = DemoClient(["/demo/left", "/demo/right"])
        try:
            client.wait_until_ready(a.timeout, proc)
            self.say("lsm_node is ready (model loaded)")
            if sensors:
                client.spin(1.5)  # the node's TF buffer receives the odometry
            for i, k in enumerate(starts):
                stamp = stamps[i]
                if sensors:  # a rectified rig: the second camera a.baseline to the right
                    frames.append(_partner(room, frames[k], a.baseline))
                    other = len(frames) - 1
                else:
                    other = int(k + a.gap)
                rec = ReceivedPair("pair", (int(k), other), stamp, time.monotonic())
                client.publish(0, frames[k], stamp, "left_optical")
                client.publish(1, frames[other], stamp + 0.001, "right_optical",
                               baseline=a.baseline if sensors else 0.0)
                what = f"frame {k} and its stereo partner" if sensors else f"frames {k}, {other}"
                self.say(f"pair mode: published pair {i + 1}/{a.pairs} ({what})")
                if not client.wait_for([stamp], a.timeout, proc):
                    self.problems.append(f"pair {i}: outputs missing after {a.timeout} s")
                    continue
                self.collect(client, [rec])
                self.ask(client, proc, rec, frames, class_names)
            self.save_scene(client)
            if sensors:  # the stereo pairs were fused into the node's map in odom too
                from lsm_tools.demo_map import SCOPE_MAP, map_query_record
                from lsm_tools.process import call_query
                from lsm_train.evaluation.map import object_boxes

                answer = call_query(client.node, "couch", scope=SCOPE_MAP, server_process=proc,
                                    timeout=a.timeout)
                self.pair_map_query = dict(map_query_record("couch", answer, object_boxes(room)),
                                           mode="pair")
                self.say(f"pair mode: map query 'couch' over {len(starts)} stereo pairs: "
                         + (f"{len(answer.instances)} instance(s)" if answer.success
                            else answer.message))
        finally:
            self.stop(client, proc, odometry, "pair mode")

    def run_mono_mode(self, frames, class_names) -> None:

        a = self.args
        sensors = not a.no_sensors
        n = min(a.mono_frames, len(frames))
        stamps = [2000.0 + i / a.rate for i in range(n)]
        odometry = self.odometry(stamps, frames[:n], "camera_optical") if sensors else None
        extra = ["-p", f"keyframe_interval:={a.keyframe_interval}",
                 "-p", "keyframe_min_seconds:=0.0", "-p", "keyframe_min_translation:=0.0"]
        if sensors:
            extra += ["-p", "depth_topics:=[/demo/camera/depth]"]
        proc = self.start_node("mono", ["/demo/camera/image"], extra)
        client = DemoClient(["/demo/camera"], depth=sensors)
        try:
            client.wait_until_ready(a.timeout, proc)
            self.say("lsm_node is ready (model loaded)")
            if sensors:
                client.spin(1.5)  # the node's TF buffer receives the odometry
            self.say(f"mono mode: streaming {n} frames at {a.rate:g} Hz "
                     f"(keyframe every {a.keyframe_interval} frames"
                     + (", with an aligned depth image)" if sensors else ")"))
            sent = {}
            for i in range(n):
                client.publish(0, frames[i], stamps[i], "camera_optical", depth=sensors)
                sent[i] = time.monotonic()
                client.spin(1.0 / a.rate)
            # keyframes: frame 0, then every keyframe_interval-th; each new one is the reference
            keys = list(range(0, n, a.keyframe_interval))
            recs = [ReceivedPair("mono", (k, p), stamps[k], sent[k]) for p, k in zip(keys, keys[1:])]
            if not client.wait_for([r.stamp for r in recs], a.timeout, proc):
                missing = [r.frames for r in recs if round(r.stamp, 6) not in client.arrived]
                self.problems.append(f"mono mode: no outputs for keyframe pairs {missing}")
                recs = [r for r in recs if round(r.stamp, 6) in client.arrived]
            self.collect(client, recs)
            for rec in recs:  # queries answer from the latest reconstruction: ask for the last
                if rec is recs[-1]:
                    self.ask(client, proc, rec, frames, class_names)
                    continue
                name = f"mono_{sum(r.mode == 'mono' for r in self.results):03d}"
                rec.n_points = write_cloud(self.out / f"{name}_points.ply", rec.messages["points"])
                write_panel(self.out / f"{name}.png", rec, frames, {})
                self.say(f"  {name} (frames {rec.frames[0]}, {rec.frames[1]}): "
                         f"{rec.n_points} points, latency {rec.latency:.2f} s")
                self.results.append(rec)
        finally:
            self.stop(client, proc, odometry, "mono mode")

    def stop(self, client, proc, odometry, what: str) -> None:
        """End a phase: the demo's client, the node (like Ctrl-C) and the odometry process."""
        from lsm_tools.process import stop_process

        client.destroy()
        code = stop_process(proc)
        if odometry is not None:
            odometry.kill()
            odometry.wait()
        if code != 0:
            self.problems.append(f"lsm_node ({what}) exited with status {code}")

    def save_scene(self, client: DemoClient) -> None:
        import shutil

        r = client.save_scene(self.args.timeout)
        if not r.success:
            self.problems.append(f"~/save_scene failed: {r.message}")
            return
        target = self.out / "scene"
        shutil.rmtree(target, ignore_errors=True)
        Path(r.message).rename(target)
        self.say(f"saved the last pair-mode scene to {target} (gaussians.ply, points.ply, "
                 "cameras.json)")

    def summary(self) -> dict:
        poses = [r.pose for r in self.results]
        lat = [r.latency for r in self.results]
        queries = [dict(q, mode=r.mode, frames=list(r.frames)) for r in self.results for q in r.queries]
        return {
            "reconstructions": len(self.results),
            "pair_mode": sum(r.mode == "pair" for r in self.results),
            "mono_mode": sum(r.mode == "mono" for r in self.results),
            "latency_s": {"mean": float(np.mean(lat)) if lat else None,
                          "max": float(np.max(lat)) if lat else None},
            "rotation_error_deg_median": float(np.median([p["rotation_error_deg"] for p in poses]))
            if poses else None,
            "translation_direction_error_deg_median": float(np.median(
                [p["translation_direction_error_deg"] for p in poses])) if poses else None,
            "depth": [dict(r.depth, mode=r.mode, frames=list(r.frames)) for r in self.results
                      if r.depth is not None],
            "queries": queries,
            "map_queries": self.map_queries + ([self.pair_map_query] if self.pair_map_query
                                               else []),
            "map_floor_query": self.map_floor_query,
            "problems": self.problems,
            "output_folder": str(self.out.resolve()),
        }


def _partner(room, view, baseline: float):
    """The view of a camera ``baseline`` m to the right of ``view`` (a rectified rig)."""
    from lsm_train.data.procedural import render_view

    shift = np.eye(4)
    shift[0, 3] = baseline
    c2w = view.c2w @ shift
    return render_view(room, view.K, c2w, view.image.shape[:2]).to_view(view.K, c2w)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    h, w = (int(x) for x in args.size.lower().split("x"))
    demo = Demo(args)

    import rclpy

    from lsm.specs import DEFAULT_LABELS
    from lsm_train.data.procedural import generate_room, generate_sequence

    class_names = list(DEFAULT_LABELS)
    n_frames = max(args.mono_frames, (args.gap + 1) if args.pairs else 1, 2)
    demo.say(f"rendering a procedural sequence: seed {args.seed}, {n_frames} frames of {w}x{h}")
    frames = generate_sequence(args.seed, n_frames, size=(h, w))
    room = generate_room(args.seed)  # the sequence's room (stereo partners are rendered in it)
    rclpy.init(args=[])
    try:
        if args.pairs:
            demo.run_pair_mode(frames, class_names, room)
        if args.mono_frames:
            demo.run_mono_mode(frames, class_names)
        if args.map_keyframes and not args.no_sensors:
            from lsm_tools.demo_map import run_map_mode

            demo.map_queries = run_map_mode(demo, (h, w), DemoClient)
    except (TimeoutError, RuntimeError) as exc:
        demo.problems.append(str(exc))
    finally:
        rclpy.shutdown()

    for rec in demo.results:
        rec.pose = pose_record(rec, frames)
        rec.depth = depth_record(rec, frames)
    (demo.out / "poses.json").write_text(json.dumps([r.pose for r in demo.results], indent=2))
    summary = demo.summary()
    (demo.out / "summary.json").write_text(json.dumps(summary, indent=2))
    expected = args.pairs + (max(0, (min(args.mono_frames, n_frames) - 1) // args.keyframe_interval)
                             if args.mono_frames else 0)
    if summary["reconstructions"] != expected:
        demo.problems.append(f"{summary['reconstructions']} of {expected} reconstructions arrived")
    if args.pairs and not (demo.out / "scene" / "gaussians.ply").is_file():
        demo.problems.append("scene/gaussians.ply was not written")
    if args.map_keyframes and not args.no_sensors and not (demo.out / "map_topdown.png").is_file():
        demo.problems.append("map_topdown.png was not written")
    print_summary(summary, demo)
    if demo.problems:
        for log in demo.logs:
            if log.is_file():
                print(f"---- {log}\n{log.read_text(errors='replace')[-4000:]}", file=sys.stderr)
        return 1
    return 0


def print_summary(summary: dict, demo: Demo) -> None:
    print("\n==== lsm_demo summary ====")
    print(f"reconstructions: {summary['reconstructions']} "
          f"({summary['pair_mode']} pair mode, {summary['mono_mode']} mono mode)")
    if summary["reconstructions"]:
        print(f"latency per pair (publish -> all outputs): mean {summary['latency_s']['mean']:.2f} s, "
              f"max {summary['latency_s']['max']:.2f} s")
        known = "" if demo.args.no_sensors else (
            " (published poses: the stereo rig's and odometry's, which replace the network's "
            "estimate once the scale is metric; lsm-eval-metric measures the estimate)")
        print(f"relative pose vs truth (median): rotation {summary['rotation_error_deg_median']:.1f} deg, "
              f"translation direction {summary['translation_direction_error_deg_median']:.1f} deg"
              + known)
    for d in summary["depth"]:
        print(f"published depth vs truth ({d['mode']} frames {d['frames']}, {d['units']}): scale "
              f"error {100 * d['scale_error']:+.1f} %, AbsRel {d['abs_rel']:.3f} "
              f"[{d['scale_source']}]")
    for q in summary["queries"]:
        iou = f", IoU with the true '{q['true_class']}' pixels {q['iou']:.2f}" if "iou" in q else ""
        where = (f", centroid {q['centroid_error_m']:.2f} m from the true one in odom"
                 if "centroid_error_m" in q else "")
        what = f"score {q['score']:.2f}, {q.get('mask_pixels', 0)} mask pixels{iou}{where}" \
            if q["success"] else q["message"]
        print(f"query {q['label']!r} ({q['mode']} frames {q['frames']}): {what}")
    for q in summary["map_queries"]:
        where = (f", nearest {q['nearest_error_m']:.2f} m from the true centre in odom"
                 if "nearest_error_m" in q else "")
        what = (f"{q['instances']} instance(s){where}, {q['false_instances']} false"
                if q["success"] else q["message"])
        print(f"map query {q['label']!r}{' (pair mode)' if q.get('mode') == 'pair' else ''}: {what}")
    if summary.get("map_floor_query"):
        from lsm_tools.demo_map import floor_query_text

        print(f"map query 'floor': {floor_query_text(summary['map_floor_query'])}")
    print(f"files: {summary['output_folder']} (panels *.png, clouds *_points.ply, scene/gaussians.ply, "
          "map/, map_topdown.png, poses.json, summary.json)")
    for p in summary["problems"]:
        print(f"PROBLEM: {p}")
    print("result:", "OK" if not summary["problems"] else "FAILED")


if __name__ == "__main__":
    sys.exit(main())
