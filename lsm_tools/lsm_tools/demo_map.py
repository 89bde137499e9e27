"""The demo's map phase (``lsm_demo``, step 4): an RGB-D camera with odometry drives through
a whole procedural room in mono mode; lsm_node fuses every keyframe pair into its map in
``odom``; the demo asks ``/lsm/query`` with scope SCOPE_MAP for every furniture class and a
synonym, and for the floor (decided by geometry: ``floor_frame`` odom, the room's floor),
saves the map (``~/save_map``) into the output folder and draws it from above with the
instance boxes the node answered against the true object boxes (``map_topdown.png``).
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Dict, List

import numpy as np

MAP_QUERIES = ("sofa", "couch", "bed", "table", "chair")
SCOPE_MAP = 1
PALETTE = {"sofa": (230, 90, 60), "couch": (230, 90, 60), "bed": (90, 160, 240),
           "table": (250, 200, 60), "chair": (120, 220, 120)}


def instance_footprint(instance) -> np.ndarray:
    """(4, 2) xy corners of an Instance message's oriented box seen from above."""
    from lsm_ros.messages import quaternion_to_rotation

    q = instance.box.orientation
    R = quaternion_to_rotation([q.x, q.y, q.z, q.w])
    c = np.array([instance.box.position.x, instance.box.position.y, instance.box.position.z])
    s = np.array([instance.box_size.x, instance.box_size.y, instance.box_size.z]) / 2
    corners = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)]) * s
    return _hull((corners @ R.T + c)[:, :2])


def _hull(xy: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.convexHull(xy.astype(np.float32)).reshape(-1, 2)


def write_topdown(path: Path, points: np.ndarray, colors: np.ndarray, answers: Dict[str, object],
                  truth: Dict[str, list], room_size, px_per_m: float = 120.0) -> None:
    """The map's voxels from above (their colours, highest on top), each answered instance's
    box in its class colour with its label, and the true object boxes in white."""
    import cv2

    margin = 0.3
    w, d = float(room_size[0]), float(room_size[1])
    width, height = int((w + 2 * margin) * px_per_m), int((d + 2 * margin) * px_per_m)
    canvas = np.full((height, width, 3), 30, np.uint8)

    def pix(xy):  # world x right, world y up in the picture
        xy = np.asarray(xy, np.float64)
        return np.stack([(xy[..., 0] + margin) * px_per_m,
                         height - (xy[..., 1] + margin) * px_per_m], -1).round().astype(np.int32)

    order = np.argsort(points[:, 2])
    uv = pix(points[order, :2])
    ok = (uv[:, 0] >= 0) & (uv[:, 0] < width) & (uv[:, 1] >= 0) & (uv[:, 1] < height)
    r = max(1, int(round(0.025 * px_per_m)))
    for (u, v), c in zip(uv[ok], colors[order][ok]):
        canvas[max(0, v - r):v + r, max(0, u - r):u + r] = c
    for label, boxes in truth.items():
        for box in boxes:
            cv2.polylines(canvas, [pix(_hull(box["corners"][:, :2]))], True, (255, 255, 255), 2)
            u, v = pix(box["center"][:2])
            cv2.putText(canvas, f"true {label}", (int(u) - 30, int(v) + 18),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1)
    for label, answer in answers.items():
        if answer is None or not answer.success or label == "couch":
            continue
        colour = PALETTE.get(label, (255, 0, 255))
        for k, inst in enumerate(answer.instances):
            cv2.polylines(canvas, [pix(instance_footprint(inst))], True, colour, 2)
            u, v = pix([inst.centroid.x, inst.centroid.y])
            cv2.drawMarker(canvas, (int(u), int(v)), colour, cv2.MARKER_CROSS, 12, 2)
            if k == 0:
                cv2.putText(canvas, f"{label} {inst.score:.2f}", (int(u) + 6, int(v) - 6),
                            cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 2)
    cv2.putText(canvas, "map from above: white = truth, colours = answers", (8, 18),
                cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1)
    cv2.imwrite(str(path), cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))


def map_query_record(label: str, answer, truth: Dict[str, list]) -> dict:
    """What one map answer says against the truth: instances, the nearest one's distance to
    the true object's centre, and instances in no true box of the class (false)."""
    from lsm_train.evaluation.map import FALSE_MARGIN, SYNONYMS

    cls = SYNONYMS.get(label, label)
    rec = {"label": label, "success": bool(answer.success), "message": answer.message,
           "instances": len(answer.instances), "score": float(answer.score)}
    boxes = truth.get(cls, [])
    cents = [np.array([i.centroid.x, i.centroid.y, i.centroid.z]) for i in answer.instances]
    if boxes and cents:
        rec["nearest_error_m"] = float(min(np.linalg.norm(c - b["center"]) for c in cents
                                           for b in boxes))
    rec["false_instances"] = sum(not any(np.all(c >= b["lo"] - FALSE_MARGIN)
                                         and np.all(c <= b["hi"] + FALSE_MARGIN) for b in boxes)
                                 for c in cents)
    return rec


def floor_query_record(answer) -> dict:
    """What the map's floor query gave: its instances and the share of the top one's points
    within 5 cm of the room's floor (odom z = 0)."""
    from lsm_ros.messages import read_pointcloud

    record = {"label": "floor", "success": bool(answer.success), "message": answer.message,
              "instances": len(answer.instances), "on_floor": 0.0}
    if answer.success:
        z = read_pointcloud(answer.points)["points"][:, 2]
        record["on_floor"] = float(np.mean(np.abs(z) < 0.05)) if len(z) else 0.0
    return record


def floor_query_text(record: dict) -> str:
    return (f"{record['instances']} instance(s), {record['on_floor']:.0%} of the top one's "
            "points within 5 cm of the floor (decided by geometry: floor_frame odom)"
            if record["success"] else record["message"])


def run_map_mode(demo, size, make_client) -> List[dict]:
    """Step 4 of the demo (see the module docstring); returns the map query records.
    ``demo``: the running lsm_tools.demo.Demo; ``make_client(cameras, depth)``: its
    DemoClient (publishers and output subscriptions)."""
    from lsm_tools.process import call_query, call_trigger
    from lsm_train.evaluation.map import object_boxes, sweep

    a = demo.args
    room, views = sweep(a.seed, a.map_keyframes, a.map_spacing, size=size)
    truth = {k: v for k, v in object_boxes(room).items() if k in PALETTE}
    stamps = [3000.0 + 0.5 * i for i in range(len(views))]
    odometry = demo.odometry(stamps, views, "camera_optical")
    extra = ["-p", "keyframe_interval:=1", "-p", "keyframe_min_seconds:=0.0",
             "-p", "keyframe_min_translation:=0.0", "-p", "depth_topics:=[/demo/camera/depth]",
             "-p", "floor_frame:=odom"]  # the room's floor is odom's z = 0 (as base_footprint's)
    proc = demo.start_node("mono", ["/demo/camera/image"], extra)
    client = make_client(["/demo/camera"], depth=True)
    records: List[dict] = []
    try:
        client.wait_until_ready(a.timeout, proc)
        client.spin(1.5)  # the node's TF buffer receives the odometry
        demo.say(f"map: driving through room {a.seed}: {len(views)} RGB-D keyframes "
                 f"{a.map_spacing} m apart, odometry on /tf")
        for view, stamp in zip(views, stamps):
            client.publish(0, view, stamp, "camera_optical", depth=True)
            client.spin(0.5)
        if not client.wait_for(stamps[1:], a.timeout, proc):
            demo.problems.append("map: outputs missing for some keyframe pairs")
        end = time.monotonic() + a.timeout  # fusion follows the outputs
        want = f"fused {len(views) - 1} reconstruction(s)"
        while not (client.diagnostics is not None and want in _map_note(client)):
            if time.monotonic() > end:
                demo.problems.append(f"map: not every pair was fused ({_map_note(client)})")
                break
            client.spin(0.1)
        demo.say(f"map: {_map_note(client)}")
        answers = {}
        for label in MAP_QUERIES:
            answers[label] = call_query(client.node, label, scope=SCOPE_MAP, timeout=a.timeout,
                                        server_process=proc)
            r = map_query_record(label, answers[label], truth)
            records.append(r)
            demo.say(f"  map query {label!r}: " + (
                f"{r['instances']} instance(s), nearest {r.get('nearest_error_m', float('nan')):.2f} m "
                f"from the true centre, {r['false_instances']} false" if r["success"]
                else r["message"]))
        floor = call_query(client.node, "floor", scope=SCOPE_MAP, timeout=a.timeout,
                           server_process=proc)
        demo.map_floor_query = floor_query_record(floor)
        demo.say("  map query 'floor': " + floor_query_text(demo.map_floor_query))
        if not floor.success or demo.map_floor_query["on_floor"] < 0.9:
            demo.problems.append(f"map: the floor query missed the floor ({floor.message})")
        saved = call_trigger(client.node, "/lsm_node/save_map", timeout=a.timeout,
                             server_process=proc)
        if not saved.success:
            demo.problems.append(f"~/save_map failed: {saved.message}")
            return records
        target = demo.out / "map"
        shutil.rmtree(target, ignore_errors=True)
        Path(saved.message).rename(target)
        from lsm.mapping import VoxelMap

        data = VoxelMap.load(target).snapshot()
        colors = np.clip(np.round(data["color"]), 0, 255).astype(np.uint8)
        write_topdown(demo.out / "map_topdown.png", data["position"], colors, answers, truth,
                      room.size)
        demo.say(f"map: saved to {target} (map.ply, map.json); drawn in "
                 f"{demo.out / 'map_topdown.png'}")
    finally:
        demo.stop(client, proc, odometry, "map")
    return records


def _map_note(client) -> str:
    from lsm_ros.diagnostics import diagnostic_values

    return diagnostic_values(client.diagnostics).get("map", "") if client.diagnostics else ""
