"""Parameters of ``lsm_node``: declaration, descriptors and validation.

Each parameter is described once in :data:`PARAMETER_SPECS` (name, default, type,
range or allowed values, read-only or changeable at run time).  :func:`declare_parameters`
declares them all on an rclpy node with full ``ParameterDescriptor`` s, and
:func:`read_settings` turns the declared values into a frozen :class:`LsmSettings`,
raising :class:`ParameterError` (naming the parameter) for invalid values.

Run-time changes (``ros2 param set``) are checked by :func:`check_parameter_change`;
only parameters with ``read_only=False`` (labels, thresholds, point sampling) can change.

This table is the one source of every default: :class:`LsmSettings`, ``config/lsm.yaml``
and the README's parameter table are generated from it (``lsm_tools.reference``), and the
defaults of the model-side settings come from :class:`lsm.specs.WeightSources` and
:class:`lsm.specs.OutputSpec`.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, Optional, Tuple

from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    ParameterType,
)

from lsm.specs import DEPTH_FUSION, MODEL_CONFIGS, PRECISIONS, SCALE_SOURCES, MetricSpec, OutputSpec, WeightSources

# Defaults of the settings the core owns come from the core's own dataclasses.
_WEIGHTS, _OUTPUT, _METRIC = WeightSources(), OutputSpec(), MetricSpec()

_TYPE_NAMES = {
    ParameterType.PARAMETER_BOOL: "bool",
    ParameterType.PARAMETER_INTEGER: "integer",
    ParameterType.PARAMETER_DOUBLE: "double",
    ParameterType.PARAMETER_STRING: "string",
    ParameterType.PARAMETER_STRING_ARRAY: "string array",
}

_DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda|cuda:\d+)$")


class ParameterError(ValueError):
    """A parameter value is invalid; ``name`` is the offending parameter."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"parameter '{name}': {reason}")
        self.name = name
        self.reason = reason


@dataclass(frozen=True)
class ParameterSpec:
    """One node parameter: default value, ROS type and constraints."""

    name: str
    default: Any
    type: int  # rcl_interfaces.msg.ParameterType constant
    description: str
    read_only: bool = True
    choices: Tuple[str, ...] = ()
    float_range: Optional[Tuple[float, float]] = None
    int_range: Optional[Tuple[int, int]] = None
    additional_constraints: str = ""

    def descriptor(self) -> ParameterDescriptor:
        """The ``ParameterDescriptor`` advertised to ROS tools (ros2 param describe)."""
        constraints = self.additional_constraints
        if self.choices:
            constraints = ("one of: " + ", ".join(self.choices)
                           + (f"; {constraints}" if constraints else ""))
        d = ParameterDescriptor(
            name=self.name,
            type=self.type,
            description=self.description,
            additional_constraints=constraints,
            read_only=self.read_only,
        )
        if self.float_range is not None:
            d.floating_point_range = [FloatingPointRange(
                from_value=float(self.float_range[0]), to_value=float(self.float_range[1]),
                step=0.0)]
        if self.int_range is not None:
            d.integer_range = [IntegerRange(
                from_value=int(self.int_range[0]), to_value=int(self.int_range[1]), step=1)]
        return d


_S = ParameterType
PARAMETER_SPECS: Tuple[ParameterSpec, ...] = (
    ParameterSpec("model_config", _WEIGHTS.config, _S.PARAMETER_STRING,
                  "Model size: 'tiny' (embedded CPU model) or 'paper' (official LSM sizes).",
                  choices=MODEL_CONFIGS),
    ParameterSpec("checkpoint", _WEIGHTS.checkpoint, _S.PARAMETER_STRING,
                  "Path of a model checkpoint (.pt/.pth); '' = the embedded weights of "
                  "model_config."),
    ParameterSpec("dust3r_checkpoint", _WEIGHTS.dust3r, _S.PARAMETER_STRING,
                  "Official DUSt3R weights file, used with an official LSM checkpoint. "
                  "DUSt3R_ViTLarge_BaseDecoder_512_dpt.pth replaces the LSM file's DUSt3R "
                  "weights (the official loading rule; required unless keep_lsm_dust3r)."),
    ParameterSpec("lseg_checkpoint", _WEIGHTS.lseg, _S.PARAMETER_STRING,
                  "Official LSeg weights file, used with an official LSM checkpoint. "
                  "demo_e200.ckpt replaces the LSM file's LSeg weights (required unless "
                  "keep_lsm_lseg)."),
    ParameterSpec("clip_checkpoint", _WEIGHTS.clip, _S.PARAMETER_STRING,
                  "OpenAI CLIP ViT-B/32 weights for the text encoder; '' = the CLIP inside "
                  "the LSeg weights. A state dict or ViT-B-32.pt."),
    ParameterSpec("keep_lsm_dust3r", _WEIGHTS.keep_lsm_dust3r, _S.PARAMETER_BOOL,
                  "Keep the LSM checkpoint's own DUSt3R weights instead of dust3r_checkpoint. "
                  "They are LSM-fine-tuned; the official demo does not keep them."),
    ParameterSpec("keep_lsm_lseg", _WEIGHTS.keep_lsm_lseg, _S.PARAMETER_BOOL,
                  "Keep the official LSM checkpoint's own LSeg weights instead of "
                  "lseg_checkpoint."),
    ParameterSpec("device", "auto", _S.PARAMETER_STRING,
                  "Torch device: 'auto' (CUDA when available, else CPU), 'cpu', 'cuda' or "
                  "'cuda:N'.",
                  additional_constraints="auto, cpu, cuda or cuda:N"),
    ParameterSpec("cpu_threads", 0, _S.PARAMETER_INTEGER,
                  "torch CPU threads for inference; 0 = all cores. "
                  "On 2 cores the node publishes about 1.4x the pairs it did with one thread "
                  "(lsm-benchmark-live --compare), and its callbacks and services still answer.",
                  int_range=(0, 1024)),
    ParameterSpec("precision", "fp32", _S.PARAMETER_STRING,
                  "Inference precision. CUDA: fp16/bf16 autocast. CPU: bf16 runs where the "
                  "processor has native bf16 (sparse convolutions and pointmap heads stay "
                  "fp32), fp16 falls back to fp32; the effective value is in /diagnostics. "
                  "The speed and accuracy cost of bf16 are measured by lsm-benchmark.",
                  choices=PRECISIONS),
    ParameterSpec("mode", "pair", _S.PARAMETER_STRING,
                  "Camera set-up: 'pair' (two cameras) or 'mono' (one moving camera). "
                  "'pair' matches views of image_topics[0] and [1] by stamp; 'mono' pairs "
                  "each new keyframe with the previous one (the new one is the reference).",
                  choices=("pair", "mono")),
    ParameterSpec("image_topics", ["image_0", "image_1"], _S.PARAMETER_STRING_ARRAY,
                  "Image topics (sensor_msgs/Image); mode 'mono' uses only the first. "
                  "Relative names resolve in the node's namespace and can be remapped."),
    ParameterSpec("camera_info_topics", ["", ""], _S.PARAMETER_STRING_ARRAY,
                  "CameraInfo topic of each camera; '' = beside its image topic. "
                  "Beside = image_transport's sibling '<image namespace>/camera_info' (or "
                  "'<image topic>/camera_info' when both cameras would share one). Known "
                  "intrinsics replace the estimated ones; a rectified right camera's "
                  "P[0][3] = -fx*B gives the stereo baseline."),
    ParameterSpec("depth_topics", ["", ""], _S.PARAMETER_STRING_ARRAY,
                  "Depth image of each camera, aligned with its colour image; '' = none. "
                  "REP-118: 16UC1 millimetres or 32FC1 metres, 0/NaN invalid; paired by stamp "
                  "within slop."),
    ParameterSpec("scale_source", _METRIC.scale_source, _S.PARAMETER_STRING,
                  "Where the metric scale comes from; 'none' = model units. 'auto' takes the "
                  "most accurate source available (depth, stereo, odometry, then fixed_scale "
                  "if > 0); a source that fails falls back, saying why in /diagnostics.",
                  choices=SCALE_SOURCES),
    ParameterSpec("fixed_scale", _METRIC.fixed_scale, _S.PARAMETER_DOUBLE,
                  "Metres per model unit for scale_source 'fixed' (and the last resort of "
                  "'auto'); 0 = not given.", float_range=(0.0, 1.0e6)),
    ParameterSpec("depth_fusion", _METRIC.depth_fusion, _S.PARAMETER_STRING,
                  "Measured depth in the reconstruction: 'replace', 'scale_only' or 'off'. "
                  "'replace': where the depth image is valid it replaces the predicted depth "
                  "(the model fills the holes); 'scale_only': it only sets the scale.",
                  choices=DEPTH_FUSION),
    ParameterSpec("depth_pose", _METRIC.depth_pose, _S.PARAMETER_BOOL,
                  "With depth images of both cameras and no pose from TF: refine the pair's "
                  "relative pose by point-to-plane ICP on the measured depth (about 40 ms per "
                  "pair), starting from the image-based pose; its confidence replaces the "
                  "two-view one. Not with depth_fusion 'off'."),
    ParameterSpec("pose_check", True, _S.PARAMETER_BOOL,
                  "Judge every estimated camera pose against the images' own two-view "
                  "geometry (SIFT and optical flow, essential matrix, refinement; about 50 ms "
                  "per 640x480 pair on 2 cores): the confidence on ~/camera_pose and in "
                  "/diagnostics."),
    ParameterSpec("two_view_pose", True, _S.PARAMETER_BOOL,
                  "With pose_check: publish the two-view geometry's relative pose instead of "
                  "the network's (PnP on its pointmaps) where at least 20 matches support it "
                  "(better on every evaluated source, docs/generalisation.md); the network "
                  "keeps the translation length. Poses from sensors (TF, odometry, a stereo "
                  "rig) come first."),
    ParameterSpec("world_frame", "", _S.PARAMETER_STRING,
                  "Frame of the 3-D outputs, such as odom or map (REP-105); '' = the reference "
                  "camera's optical frame. Looked up in TF at the image stamp."),
    ParameterSpec("floor_frame", "", _S.PARAMETER_STRING,
                  "A frame on the floor with z up, such as base_footprint (REP-120); '' = none. "
                  "Looked up in TF at each image's stamp: on a metric result (depth images, "
                  "a stereo rig, odometry) the pixels within 5 cm of its z = 0 plane whose "
                  "surface faces up are the label 'floor' (when in labels), in the label "
                  "image, the cloud and /lsm/query, and no other pixel is; the model's own "
                  "floor label is unreliable on real images."),
    ParameterSpec("map", True, _S.PARAMETER_BOOL,
                  "Fuse every metric reconstruction into a persistent voxel map. "
                  "Placed in world_frame through TF, or by chaining keyframes (mono mode); "
                  "queried with scope SCOPE_MAP, published on ~/map."),
    ParameterSpec("voxel_size", 0.05, _S.PARAMETER_DOUBLE,
                  "Edge of the map's voxels, metres.", float_range=(0.005, 5.0)),
    ParameterSpec("max_voxels", 200000, _S.PARAMETER_INTEGER,
                  "Most voxels the map keeps (memory: about 170 bytes each). "
                  "Beyond it the least recently seen, least confident tenth is evicted.",
                  int_range=(1000, 50000000)),
    ParameterSpec("map_free_space", True, _S.PARAMETER_BOOL,
                  "Free-space clearing: each fused view halves the weight of the map voxels it "
                  "sees through (up to two voxels before the surface it observes) and removes "
                  "them below weight 1, so objects that moved away fade after a few views.",
                  ),
    ParameterSpec("map_publish_rate", 1.0, _S.PARAMETER_DOUBLE,
                  "Hz of ~/map (only while it has subscribers); 0 = never.",
                  float_range=(0.0, 100.0)),
    ParameterSpec("map_file", "", _S.PARAMETER_STRING,
                  "A map saved by ~/save_map (its folder) to load at configure; '' = start "
                  "empty."),
    ParameterSpec("image_transport", "raw", _S.PARAMETER_STRING,
                  "Image input: 'raw' (sensor_msgs/Image) or 'compressed'. 'compressed' "
                  "subscribes to sensor_msgs/CompressedImage (JPEG, PNG) on <topic>/compressed, "
                  "image_transport's naming.", choices=("raw", "compressed")),
    ParameterSpec("slop", 0.05, _S.PARAMETER_DOUBLE,
                  "Largest stamp difference, in seconds, between the two images of a pair "
                  "(mode 'pair').", float_range=(0.0, 10.0)),
    ParameterSpec("keyframe_interval", 10, _S.PARAMETER_INTEGER,
                  "Mode 'mono': at least this many frames from one keyframe to the next.",
                  int_range=(1, 10000)),
    ParameterSpec("keyframe_min_seconds", 0.5, _S.PARAMETER_DOUBLE,
                  "Mode 'mono': at least this many seconds (image stamps) from one keyframe "
                  "to the next.", float_range=(0.0, 3600.0)),
    ParameterSpec("keyframe_min_translation", 0.1, _S.PARAMETER_DOUBLE,
                  "Mode 'mono': at least this camera motion, metres, between keyframes. "
                  "Checked only when odom_frame is set and tf2_ros is importable.",
                  float_range=(0.0, 1000.0)),
    ParameterSpec("odom_frame", "", _S.PARAMETER_STRING,
                  "Mode 'mono': odometry frame for the keyframe motion check; '' = none. "
                  "The camera's motion between keyframes is looked up in TF."),
    ParameterSpec("queue_size", 10, _S.PARAMETER_INTEGER,
                  "Depth of the image subscriptions and of pair matching.",
                  int_range=(1, 1000)),
    ParameterSpec("pending_pairs", 1, _S.PARAMETER_INTEGER,
                  "Most pairs waiting for inference; a newer pair replaces the oldest, counted "
                  "in /diagnostics (queue drops). 1 = always the newest pair: answers are at "
                  "most about one pair time old. Larger values process a backlog (bags). "
                  "Mono mode: the pair that continued a dropped one takes its partner "
                  "keyframe, so the keyframe chain (and the map without TF) stays unbroken.",
                  int_range=(1, 1000)),
    ParameterSpec("query_queue_size", 100, _S.PARAMETER_INTEGER,
                  "Most /lsm/query requests waiting for an answer. "
                  "Requests beyond it are dropped by DDS (the service's keep-last history).",
                  int_range=(1, 100000)),
    ParameterSpec("batch_size", 1, _S.PARAMETER_INTEGER,
                  "Image pairs per inference call.", int_range=(1, 64)),
    ParameterSpec("labels", list(_OUTPUT.labels), _S.PARAMETER_STRING_ARRAY,
                  "Vocabulary of the label images and per-point labels. "
                  "Label index = position in this list; /lsm/query accepts any label and "
                  "uses these as its competing classes.", read_only=False,
                  additional_constraints="non-empty list of distinct, non-empty, printable "
                                         "names of at most max_label_length characters"),
    ParameterSpec("confidence_threshold", _OUTPUT.confidence_threshold, _S.PARAMETER_DOUBLE,
                  "Smallest pointmap confidence of a published point; 0 keeps every point. "
                  "Confidences are DUSt3R style (>= 1).", read_only=False,
                  float_range=(0.0, 1000.0)),
    ParameterSpec("query_threshold", 0.5, _S.PARAMETER_DOUBLE,
                  "Default similarity threshold of /lsm/query (used when a request's "
                  "threshold is 0).", read_only=False, float_range=(0.0, 1.0),
                  additional_constraints="> 0"),
    ParameterSpec("point_stride", _OUTPUT.point_stride, _S.PARAMETER_INTEGER,
                  "Publish every point_stride-th pixel of each pointmap, in both image axes.",
                  read_only=False, int_range=(1, 64)),
    ParameterSpec("max_points", _OUTPUT.max_points, _S.PARAMETER_INTEGER,
                  "Most points in a published cloud (uniformly subsampled above this); "
                  "0 = no limit.", read_only=False, int_range=(0, 100000000)),
    ParameterSpec("camera_frame", "", _S.PARAMETER_STRING,
                  "Camera optical frame id; '' = the frame_id of the incoming images."),
    ParameterSpec("qos", "sensor_data", _S.PARAMETER_STRING,
                  "QoS of the image subscriptions: 'sensor_data' (best effort) or "
                  "'reliable'. Best effort silently loses images too large for the transport "
                  "(4K rgb8 under Fast DDS defaults): use 'reliable' for those.",
                  choices=("sensor_data", "reliable")),
    ParameterSpec("save_directory", "lsm_scenes", _S.PARAMETER_STRING,
                  "Folder where ~/save_scene writes (relative to the working directory). "
                  "One sub-folder per call: gaussians.ply, points.ply, cameras.json.",
                  read_only=False),
    ParameterSpec("max_label_length", 64, _S.PARAMETER_INTEGER,
                  "Longest accepted label, in characters (labels parameter and /lsm/query).",
                  int_range=(1, 1024)),
)

SPECS_BY_NAME: Dict[str, ParameterSpec] = {s.name: s for s in PARAMETER_SPECS}


def _default(name: str) -> Any:
    value = SPECS_BY_NAME[name].default
    return tuple(value) if isinstance(value, list) else value


@dataclass(frozen=True)
class LsmSettings:
    """Validated parameter values of ``lsm_node`` (field names = parameter names; the
    defaults are those of :data:`PARAMETER_SPECS`)."""

    model_config: str = _default("model_config")
    checkpoint: str = _default("checkpoint")
    dust3r_checkpoint: str = _default("dust3r_checkpoint")
    lseg_checkpoint: str = _default("lseg_checkpoint")
    clip_checkpoint: str = _default("clip_checkpoint")
    keep_lsm_dust3r: bool = _default("keep_lsm_dust3r")
    keep_lsm_lseg: bool = _default("keep_lsm_lseg")
    device: str = _default("device")
    cpu_threads: int = _default("cpu_threads")
    precision: str = _default("precision")
    mode: str = _default("mode")
    image_topics: Tuple[str, ...] = _default("image_topics")
    camera_info_topics: Tuple[str, ...] = _default("camera_info_topics")
    depth_topics: Tuple[str, ...] = _default("depth_topics")
    scale_source: str = _default("scale_source")
    fixed_scale: float = _default("fixed_scale")
    depth_fusion: str = _default("depth_fusion")
    depth_pose: bool = _default("depth_pose")
    pose_check: bool = _default("pose_check")
    two_view_pose: bool = _default("two_view_pose")
    world_frame: str = _default("world_frame")
    floor_frame: str = _default("floor_frame")
    map: bool = _default("map")
    voxel_size: float = _default("voxel_size")
    max_voxels: int = _default("max_voxels")
    map_free_space: bool = _default("map_free_space")
    map_publish_rate: float = _default("map_publish_rate")
    map_file: str = _default("map_file")
    image_transport: str = _default("image_transport")
    slop: float = _default("slop")
    keyframe_interval: int = _default("keyframe_interval")
    keyframe_min_seconds: float = _default("keyframe_min_seconds")
    keyframe_min_translation: float = _default("keyframe_min_translation")
    odom_frame: str = _default("odom_frame")
    queue_size: int = _default("queue_size")
    pending_pairs: int = _default("pending_pairs")
    query_queue_size: int = _default("query_queue_size")
    batch_size: int = _default("batch_size")
    labels: Tuple[str, ...] = _default("labels")
    confidence_threshold: float = _default("confidence_threshold")
    query_threshold: float = _default("query_threshold")
    point_stride: int = _default("point_stride")
    max_points: int = _default("max_points")
    camera_frame: str = _default("camera_frame")
    qos: str = _default("qos")
    save_directory: str = _default("save_directory")
    max_label_length: int = _default("max_label_length")

    def weight_sources(self) -> WeightSources:
        """Where the model's weights come from."""
        return WeightSources(self.model_config, self.checkpoint, self.dust3r_checkpoint,
                             self.lseg_checkpoint, self.clip_checkpoint, self.keep_lsm_dust3r,
                             self.keep_lsm_lseg)

    def metric_spec(self) -> MetricSpec:
        """How outputs become metric."""
        return MetricSpec(self.scale_source, self.fixed_scale, self.depth_fusion, self.depth_pose)

    def output_spec(self) -> OutputSpec:
        """What a published cloud holds."""
        return OutputSpec(self.labels, self.confidence_threshold, self.point_stride,
                          self.max_points)

    def replace(self, **changes: Any) -> "LsmSettings":
        """A copy with ``changes`` applied and validated (raises ParameterError)."""
        values = dataclasses.asdict(self)
        values.update(changes)
        return settings_from_values(values)


def topic_name_problem(topic: str) -> Optional[str]:
    """Why ``topic`` is not a valid ROS topic name (relative, ~ or absolute), or None."""
    from rclpy.exceptions import InvalidTopicNameException
    from rclpy.validate_topic_name import validate_topic_name

    try:
        validate_topic_name(topic)
    except InvalidTopicNameException as exc:
        return f"{topic!r} is not a valid topic name: {str(exc).splitlines()[0].rstrip(':')}"
    return None


def label_problem(label: str, max_length: int) -> Optional[str]:
    """Why ``label`` is not an acceptable class name, or None when it is.

    Accepted: non-empty after stripping, at most ``max_length`` characters, printable.
    """
    if not isinstance(label, str):
        return f"label must be a string, got {type(label).__name__}"
    if not label.strip():
        return "label is empty"
    if len(label) > max_length:
        return (f"label is {len(label)} characters long, longer than max_label_length="
                f"{max_length}")
    if not label.isprintable():
        return f"label {label!r} contains non-printable characters"
    return None


def _check_value(spec: ParameterSpec, value: Any) -> Any:
    """Normalise and check one value against its spec; raises ParameterError."""
    name = spec.name
    if spec.type == _S.PARAMETER_STRING:
        if not isinstance(value, str):
            raise ParameterError(name, f"expected a string, got {value!r}")
    elif spec.type == _S.PARAMETER_BOOL:
        if not isinstance(value, bool):
            raise ParameterError(name, f"expected true or false, got {value!r}")
    elif spec.type == _S.PARAMETER_DOUBLE:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParameterError(name, f"expected a number, got {value!r}")
        value = float(value)
        if value != value:
            raise ParameterError(name, "is NaN")
    elif spec.type == _S.PARAMETER_INTEGER:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParameterError(name, f"expected an integer, got {value!r}")
    elif spec.type == _S.PARAMETER_STRING_ARRAY:
        if isinstance(value, str) or not isinstance(value, (list, tuple)):
            raise ParameterError(name, f"expected a list of strings, got {value!r}")
        if not all(isinstance(v, str) for v in value):
            raise ParameterError(name, f"expected a list of strings, got {value!r}")
        value = tuple(value)
    if spec.choices and value not in spec.choices:
        raise ParameterError(name, f"{value!r} is not one of {', '.join(spec.choices)}")
    if spec.float_range is not None:
        lo, hi = spec.float_range
        if not lo <= value <= hi:
            raise ParameterError(name, f"{value} is outside [{lo}, {hi}]")
    if spec.int_range is not None:
        lo, hi = spec.int_range
        if not lo <= value <= hi:
            raise ParameterError(name, f"{value} is outside [{lo}, {hi}]")
    return value


def settings_from_values(values: Dict[str, Any]) -> LsmSettings:
    """Validate a name -> value mapping (missing names take defaults) into LsmSettings."""
    unknown = sorted(set(values) - set(SPECS_BY_NAME))
    if unknown:
        raise ParameterError(unknown[0], "unknown parameter")
    checked = {}
    for spec in PARAMETER_SPECS:
        checked[spec.name] = _check_value(spec, values.get(spec.name, spec.default))
    if not _DEVICE_PATTERN.match(checked["device"]):
        raise ParameterError("device", f"{checked['device']!r} is not auto, cpu, cuda or "
                                       "cuda:N")
    if checked["query_threshold"] <= 0.0:
        raise ParameterError("query_threshold", "must be > 0 (0 in a request means 'use "
                                                "this parameter')")
    topics = checked["image_topics"]
    needed = 1 if checked["mode"] == "mono" else 2
    if len(topics) < needed:
        raise ParameterError("image_topics", f"mode '{checked['mode']}' needs {needed} "
                                             f"topic(s), got {list(topics)}")
    if any(not t.strip() for t in topics):
        raise ParameterError("image_topics", f"contains an empty topic name: {list(topics)}")
    for topic in topics:
        problem = topic_name_problem(topic)
        if problem:
            raise ParameterError("image_topics", problem)
    for name in ("camera_info_topics", "depth_topics"):
        if len(checked[name]) > 2:
            raise ParameterError(name, f"one entry per camera (at most 2), got {list(checked[name])}")
        for topic in checked[name]:
            problem = topic_name_problem(topic) if topic else None
            if problem:
                raise ParameterError(name, problem)
    if checked["scale_source"] == "fixed" and checked["fixed_scale"] <= 0:
        raise ParameterError("fixed_scale", "must be > 0 when scale_source is 'fixed'")
    labels = checked["labels"]
    if not labels:
        raise ParameterError("labels", "must hold at least one class name")
    for label in labels:
        problem = label_problem(label, checked["max_label_length"])
        if problem:
            raise ParameterError("labels", problem)
    if len(set(labels)) != len(labels):
        dupes = sorted({x for x in labels if labels.count(x) > 1})
        raise ParameterError("labels", f"duplicate names: {dupes}")
    return LsmSettings(**checked)


def declare_parameters(node: Any) -> None:
    """Declare every parameter of PARAMETER_SPECS on ``node`` with its descriptor.

    rclpy raises ``InvalidParameterTypeException`` / ``InvalidParameterValueException``
    here when a params file gives a wrong type or an out-of-range value.
    """
    for spec in PARAMETER_SPECS:
        node.declare_parameter(spec.name, spec.default, spec.descriptor())


def read_settings(get_value: Callable[[str], Any]) -> LsmSettings:
    """Build validated settings from ``get_value(name)`` (e.g. a node's parameter values)."""
    return settings_from_values({s.name: get_value(s.name) for s in PARAMETER_SPECS})


def check_parameter_change(current: LsmSettings,
                           changes: Iterable[Tuple[str, Any]]) -> Tuple[Optional[LsmSettings],
                                                                        str]:
    """Validate a run-time change of parameters.

    Returns ``(new_settings, "")`` when accepted, ``(None, reason)`` when rejected.
    """
    updates = {}
    for name, value in changes:
        spec = SPECS_BY_NAME.get(name)
        if spec is None:
            continue  # parameters not owned by lsm (e.g. use_sim_time) pass through
        if spec.read_only:
            return None, f"parameter '{name}' is read-only; restart the node to change it"
        updates[name] = value
    if not updates:
        return current, ""
    try:
        return current.replace(**updates), ""
    except ParameterError as exc:
        return None, str(exc)


def type_name(parameter_type: int) -> str:
    """Human name of a ParameterType constant."""
    return _TYPE_NAMES.get(parameter_type, str(parameter_type))
