"""numpy <-> ROS messages for lsm_node: images, point clouds, poses, cameras, headers.

Images (sensor_msgs/Image): colour arrays are ``(H, W, 3)`` uint8 RGB; masks and grey images
``(H, W)`` uint8; depth ``(H, W)`` float32 (32FC1) or uint16 (16UC1), in the units the publisher
states (REP-118 for sensors: metres and millimetres; lsm_node: model units).
Rows of a message may be padded (``step`` > width * bytes per pixel); padding is dropped.
ROS 2's cv_bridge decodes when it is importable and passes a self-check (the unrelated ROS 1
``cv-bridge`` repackaging on PyPI fails it and is ignored); otherwise the numpy code here
does the work. Both go through the same checks first.

Point clouds (sensor_msgs/PointCloud2), little-endian, 24 bytes a point, unorganised
(height 1, width N); sensor_msgs_py reads them when importable:

========== ======= ====== ===============================================
field      offset  type   meaning
========== ======= ====== ===============================================
x, y, z    0,4,8   f32    position in header.frame_id, in the units the
                          publisher states (lsm_node: model units)
rgb        12      f32    colour packed as PCL/RViz do: uint32 0x00RRGGBB
                          reinterpreted as float32
label      16      u32    class index into the node's ``labels`` parameter
confidence 20      f32    pointmap confidence
========== ======= ====== ===============================================

Optional fields (rgb, label, confidence) are written only when given.

Outputs of a reconstruction: stamp = the reference view's stamp, frame_id = its camera
optical frame (REP-103); PoseArray pose i = camera i in that frame (pose 0 the identity).
"""
from __future__ import annotations

import sys
from typing import Dict, List, Optional, Tuple

import numpy as np

# ----------------------------------------------------------------------------- images
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


def compressed_to_rgb(msg) -> np.ndarray:
    """sensor_msgs/CompressedImage (JPEG, PNG; colour or grey) -> ``(H, W, 3)`` uint8 RGB."""
    import cv2

    data = np.frombuffer(bytes(msg.data), np.uint8)
    if data.size == 0:
        raise ImageConversionError("compressed image has no data")
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)  # BGR, whatever the source channels
    if image is None:
        raise ImageConversionError(
            f"compressed image (format {msg.format!r}, {data.size} bytes) cannot be decoded")
    return np.ascontiguousarray(image[:, :, ::-1])


def rgb_to_compressed(rgb: np.ndarray, fmt: str = "jpeg", header=None, quality: int = 90):
    """``(H, W, 3)`` uint8 RGB -> sensor_msgs/CompressedImage (``jpeg`` or ``png``), with the
    ``format`` string image_transport's compressed plugin writes."""
    import cv2
    from sensor_msgs.msg import CompressedImage

    ext, params = (".jpg", [cv2.IMWRITE_JPEG_QUALITY, quality]) if fmt == "jpeg" else (".png", [])
    ok, buffer = cv2.imencode(ext, np.ascontiguousarray(rgb[:, :, ::-1]), params)
    if not ok:
        raise ImageConversionError(f"cannot encode the image as {fmt}")
    msg = CompressedImage()
    if header is not None:
        msg.header = header
    msg.format = f"rgb8; {fmt} compressed bgr8"
    msg.data = buffer.tobytes()
    return msg


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


# ----------------------------------------------------------------------------- clouds
class PointCloudError(ValueError):
    """Arrays or a PointCloud2 message that cannot be converted (the message says why)."""


_FIELD_TYPES = {  # name -> (PointField datatype, numpy dtype)
    "x": (7, np.dtype("<f4")), "y": (7, np.dtype("<f4")), "z": (7, np.dtype("<f4")),
    "rgb": (7, np.dtype("<f4")), "label": (6, np.dtype("<u4")),
    "confidence": (7, np.dtype("<f4")),
}
# PointField datatype -> numpy dtype (little-endian)
_DATATYPES = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 8: "f8"}


def pack_rgb(rgb: np.ndarray) -> np.ndarray:
    """``(N, 3)`` uint8 RGB -> ``(N,)`` float32 holding 0x00RRGGBB bit patterns."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 2 or rgb.shape[1] != 3:
        raise PointCloudError(f"colors must be (N, 3), got shape {rgb.shape}")
    if rgb.dtype != np.uint8:
        raise PointCloudError(f"colors must be uint8, got {rgb.dtype}")
    c = rgb.astype(np.uint32)
    return ((c[:, 0] << 16) | (c[:, 1] << 8) | c[:, 2]).view(np.float32)


def unpack_rgb(packed: np.ndarray) -> np.ndarray:
    """``(N,)`` float32 packed colours -> ``(N, 3)`` uint8 RGB."""
    u = np.ascontiguousarray(packed, dtype=np.float32).view(np.uint32)
    return np.stack([(u >> 16) & 255, (u >> 8) & 255, u & 255], axis=1).astype(np.uint8)


def make_pointcloud(points: np.ndarray, colors: Optional[np.ndarray] = None,
                    labels: Optional[np.ndarray] = None,
                    confidence: Optional[np.ndarray] = None, header=None):
    """Build an unorganised PointCloud2 from ``(N, 3)`` points and optional per-point data.

    colors: ``(N, 3)`` uint8 RGB; labels: ``(N,)`` non-negative integers;
    confidence: ``(N,)`` floats.  Non-finite points are kept (``is_dense`` = False then).
    """
    from sensor_msgs.msg import PointCloud2, PointField

    points = np.asarray(points)
    if points.ndim != 2 or points.shape[1] != 3:
        raise PointCloudError(f"points must be (N, 3), got shape {points.shape}")
    if not np.issubdtype(points.dtype, np.number):
        raise PointCloudError(f"points must be numeric, got {points.dtype}")
    n = points.shape[0]
    columns = {"x": points[:, 0], "y": points[:, 1], "z": points[:, 2]}
    if colors is not None:
        columns["rgb"] = pack_rgb(colors)
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != (n,):
            raise PointCloudError(f"labels must be ({n},), got shape {labels.shape}")
        if not np.issubdtype(labels.dtype, np.integer) or (n and labels.min() < 0):
            raise PointCloudError("labels must be non-negative integers")
        columns["label"] = labels
    if confidence is not None:
        confidence = np.asarray(confidence)
        if confidence.shape != (n,):
            raise PointCloudError(
                f"confidence must be ({n},), got shape {confidence.shape}")
        columns["confidence"] = confidence
    for name, col in columns.items():
        if col.shape[0] != n:
            raise PointCloudError(f"{name} has {col.shape[0]} entries, points have {n}")

    dtype = np.dtype([(name, _FIELD_TYPES[name][1]) for name in columns])
    record = np.empty(n, dtype=dtype)
    for name, col in columns.items():
        record[name] = col
    msg = PointCloud2()
    if header is not None:
        msg.header = header
    msg.height, msg.width = 1, n
    msg.fields = [PointField(name=name, offset=dtype.fields[name][1],
                             datatype=_FIELD_TYPES[name][0], count=1) for name in columns]
    msg.is_bigendian = False
    msg.point_step = dtype.itemsize
    msg.row_step = dtype.itemsize * n
    msg.is_dense = bool(np.isfinite(points).all())
    msg.data = record.tobytes()
    return msg


def _structured_dtype(msg) -> np.dtype:
    names, formats, offsets = [], [], []
    order = ">" if msg.is_bigendian else "<"
    for f in msg.fields:
        if f.datatype not in _DATATYPES:
            raise PointCloudError(f"field {f.name!r} has unknown datatype {f.datatype}")
        names.append(f.name)
        base = order + _DATATYPES[f.datatype]
        formats.append((base, (f.count,)) if f.count > 1 else base)
        offsets.append(f.offset)
    return np.dtype({"names": names, "formats": formats, "offsets": offsets,
                     "itemsize": msg.point_step})


def _structured_points(msg) -> np.ndarray:
    try:
        from sensor_msgs_py import point_cloud2  # ROS 2 install only
        return np.asarray(point_cloud2.read_points(msg, skip_nans=False)).reshape(-1)
    except ImportError:
        pass
    n = msg.width * msg.height
    if msg.row_step * msg.height != len(msg.data) or msg.point_step * msg.width > msg.row_step:
        raise PointCloudError(
            f"data holds {len(msg.data)} bytes, expected row_step*height = "
            f"{msg.row_step}*{msg.height} with point_step*width <= row_step")
    dtype = _structured_dtype(msg)
    raw = np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.row_step)
    raw = np.ascontiguousarray(raw[:, :msg.point_step * msg.width])
    return raw.view(dtype).reshape(n)


def read_pointcloud(msg) -> Dict[str, np.ndarray]:
    """PointCloud2 -> arrays: ``points`` (N, 3) float32 and, when present, ``colors``
    (N, 3) uint8, ``labels`` (N,) uint32, ``confidence`` (N,) float32."""
    names = [f.name for f in msg.fields]
    for axis in ("x", "y", "z"):
        if axis not in names:
            raise PointCloudError(f"cloud has no field {axis!r} (fields: {names})")
    rec = _structured_points(msg)
    out = {"points": np.stack([rec["x"], rec["y"], rec["z"]], axis=1).astype(np.float32)}
    if "rgb" in names:
        out["colors"] = unpack_rgb(np.asarray(rec["rgb"], dtype=np.float32))
    if "label" in names:
        out["labels"] = np.asarray(rec["label"]).astype(np.uint32)
    if "confidence" in names:
        out["confidence"] = np.asarray(rec["confidence"]).astype(np.float32)
    return out


# ------------------------------------------------------------------- headers, poses
def stamp_seconds(header) -> float:
    """A header's stamp in seconds (float)."""
    return header.stamp.sec + header.stamp.nanosec * 1e-9


def set_stamp(msg, seconds: float) -> None:
    """Set ``msg.header.stamp`` to ``seconds`` (rounded to the nanosecond)."""
    sec, nanosec = divmod(int(round(seconds * 1e9)), 1_000_000_000)
    msg.header.stamp.sec, msg.header.stamp.nanosec = sec, nanosec


def pose_matrix(pose) -> np.ndarray:
    """geometry_msgs/Pose -> 4x4 homogeneous matrix (inverse of :func:`pose_msg`)."""
    o, t = pose.orientation, pose.position
    T = np.eye(4)
    T[:3, :3] = quaternion_to_rotation([o.x, o.y, o.z, o.w])
    T[:3, 3] = [t.x, t.y, t.z]
    return T


def copy_header(header, frame_id: Optional[str] = None):
    from std_msgs.msg import Header

    out = Header()
    out.stamp = header.stamp
    out.frame_id = header.frame_id if frame_id is None else frame_id
    return out


def pose_msg(c2w: np.ndarray):
    from geometry_msgs.msg import Pose

    p = Pose()
    p.position.x, p.position.y, p.position.z = (float(v) for v in c2w[:3, 3])
    q = rotation_to_quaternion(c2w[:3, :3])
    p.orientation.x, p.orientation.y, p.orientation.z, p.orientation.w = (float(v) for v in q)
    return p


def camera_pose_msg(rec, c2w1: np.ndarray, header):
    """lsm_ros_interfaces/CameraPose of view 1 (``c2w1``: its pose in ``header``'s frame)."""
    from lsm_ros_interfaces.msg import CameraPose

    return CameraPose(header=header, pose=pose_msg(c2w1), units=rec.units,
                      confidence=float(rec.pose_confidence), source=rec.camera_status,
                      check=rec.pose_check)


def pose_array_msg(c2w: np.ndarray, header):
    """PoseArray of camera-to-reference poses ``c2w`` (V, 4, 4)."""
    from geometry_msgs.msg import PoseArray

    msg = PoseArray()
    msg.header = header
    msg.poses = [pose_msg(T) for T in c2w]
    return msg


def camera_info_msg(K: np.ndarray, width: int, height: int, header):
    """Pinhole CameraInfo without distortion for intrinsics ``K`` (3x3, pixels)."""
    from sensor_msgs.msg import CameraInfo

    msg = CameraInfo()
    msg.header = header
    msg.width, msg.height = int(width), int(height)
    msg.distortion_model = "plumb_bob"
    msg.d = [0.0] * 5
    msg.k = [float(v) for v in np.asarray(K, dtype=np.float64).reshape(9)]
    msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    P = np.zeros((3, 4))
    P[:, :3] = K
    msg.p = [float(v) for v in P.reshape(12)]
    return msg


def cloud_msg(cloud, header):
    """PointCloud2 (x y z rgb label confidence) of an :class:`lsm.results.PointCloud`."""
    return make_pointcloud(cloud.points, colors=cloud.colors, labels=cloud.labels,
                           confidence=cloud.confidence, header=header)


def image_msgs(images, header) -> dict:
    """Image messages of the fields an :class:`lsm.results.ViewImages` holds: ``labels``
    (mono8 ids), ``labels_color`` (rgb8), ``depth`` (32FC1), ``rendered`` (rgb8)."""
    fields = {"labels": ("label_ids", "mono8", None), "labels_color": ("label_color", "rgb8", None),
              "depth": ("depth", "32FC1", np.float32), "rendered": ("rendered", "rgb8", None)}
    out = {}
    for name, (attr, encoding, dtype) in fields.items():
        value = getattr(images, attr)
        if value is not None:
            out[name] = array_to_imgmsg(np.ascontiguousarray(value, dtype=dtype), encoding, header)
    return out


def transform_msgs(c2w: np.ndarray, header, child_frames: List[str]):
    """TransformStamped reference frame -> each non-reference view ``v`` (``c2w[v]``)."""
    from geometry_msgs.msg import TransformStamped

    out = []
    for v in range(1, len(c2w)):
        t = TransformStamped()
        t.header = header
        t.child_frame_id = child_frames[v]
        p = pose_msg(c2w[v])
        t.transform.translation.x, t.transform.translation.y, t.transform.translation.z = (
            p.position.x, p.position.y, p.position.z)
        t.transform.rotation = p.orientation
        out.append(t)
    return out


def rotation_to_quaternion(R: np.ndarray) -> np.ndarray:
    """3x3 rotation -> unit quaternion ``(x, y, z, w)`` with w >= 0 (ROS order)."""
    from transforms3d.quaternions import mat2quat

    w, x, y, z = mat2quat(np.asarray(R, dtype=np.float64))
    q = np.array([x, y, z, w]) / np.linalg.norm([x, y, z, w])
    return q if q[3] >= 0 else -q


def quaternion_to_rotation(q) -> np.ndarray:
    """Quaternion ``(x, y, z, w)`` (ROS order, any norm) -> 3x3 rotation matrix."""
    from transforms3d.quaternions import quat2mat

    x, y, z, w = np.asarray(q, dtype=np.float64) / np.linalg.norm(q)
    return quat2mat([w, x, y, z])


# ------------------------------------------------------------------- detections, markers
def detection_array_msg(boxes, header):
    """vision_msgs/Detection3DArray of :class:`lsm.results.ObjectBox` es (axis-aligned boxes
    in header.frame_id): class_id = the label, score, bbox centre and size."""
    from vision_msgs.msg import Detection3D, Detection3DArray, ObjectHypothesisWithPose

    msg = Detection3DArray()
    msg.header = header
    for box in boxes:
        det = Detection3D()
        det.header = header
        det.bbox.center = pose_msg(box_pose(box))
        det.bbox.size.x, det.bbox.size.y, det.bbox.size.z = (float(v) for v in box.size)
        hypothesis = ObjectHypothesisWithPose()
        hypothesis.hypothesis.class_id = box.label
        hypothesis.hypothesis.score = float(box.score)
        hypothesis.pose.pose = det.bbox.center
        det.results = [hypothesis]
        det.id = box.label
        msg.detections.append(det)
    return msg


def box_markers(box, header, marker_id: int, namespace: str = "lsm_query",
                up=(0.0, -1.0, 0.0)):
    """visualization_msgs/Marker pair for one box: a translucent cube and a text label above
    it (ids ``2 * marker_id`` and ``2 * marker_id + 1``, so a later box of the same id
    replaces them). ``up``: the frame's up direction (optical frames: -y; REP-103 world
    frames: +z)."""
    from visualization_msgs.msg import Marker

    cube, text = Marker(), Marker()
    for k, m in enumerate((cube, text)):
        m.header, m.ns, m.id, m.action = header, namespace, 2 * marker_id + k, Marker.ADD
        m.pose = pose_msg(box_pose(box))
        m.color.r, m.color.g, m.color.b, m.color.a = 1.0, 0.35, 0.1, 0.35 if k == 0 else 1.0
    cube.type = Marker.CUBE
    cube.scale.x, cube.scale.y, cube.scale.z = (max(float(v), 1e-3) for v in box.size)
    text.type = Marker.TEXT_VIEW_FACING
    text.pose = pose_msg(_translation(np.asarray(box.center, np.float64)
                                      + 0.6 * float(max(box.size)) * np.asarray(up)))
    text.scale.z = max(0.05, 0.15 * float(max(box.size)))
    text.text = f"{box.label} {box.score:.2f}"
    return [cube, text]


def marker_array_msg(markers):
    from visualization_msgs.msg import MarkerArray

    return MarkerArray(markers=list(markers))


def box_pose(box) -> np.ndarray:
    T = _translation(box.center)
    if getattr(box, "rotation", None) is not None:
        T[:3, :3] = box.rotation
    return T


def _translation(center) -> np.ndarray:
    T = np.eye(4)
    T[:3, 3] = np.asarray(center, dtype=np.float64)
    return T


class TFPublisher:
    """Publishes TransformStamped lists on /tf as tf2_ros.TransformBroadcaster does (same
    topic, type and QoS), for installs without tf2_ros (tf2_ros is not on PyPI; tf2_msgs is
    built from compat_msgs there)."""

    def __init__(self, node) -> None:
        from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
        from tf2_msgs.msg import TFMessage

        qos = QoSProfile(depth=100, history=HistoryPolicy.KEEP_LAST,
                         reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.VOLATILE)
        self._message = TFMessage
        self._publisher = node.create_publisher(TFMessage, "/tf", qos)

    def sendTransform(self, transforms) -> None:  # noqa: N802 (tf2_ros's name)
        self._publisher.publish(self._message(transforms=list(transforms)))
