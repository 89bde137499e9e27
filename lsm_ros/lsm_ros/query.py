"""Checks and answers of the ``/lsm/query`` service (lsm_ros_interfaces/srv/Query).

Pure functions over the request/response messages so that the node stays thin.
Queries are open-vocabulary: any valid label is embedded and compared with the
reconstruction; the node's ``labels`` are the competing classes (negatives).
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

from lsm_ros.parameters import LsmSettings, label_problem

NO_RECONSTRUCTION = "no reconstruction yet"


def request_problem(request, settings: LsmSettings) -> Optional[str]:
    """Why ``request`` (Query.Request) cannot be answered, or None when it is valid."""
    problem = label_problem(request.label, settings.max_label_length)
    if problem:
        return problem
    threshold = float(request.threshold)
    if math.isnan(threshold) or not 0.0 <= threshold <= 1.0:
        return f"threshold {threshold} is outside [0, 1] (0 = node default)"
    if request.view < -1:
        return f"view {request.view} is invalid (>= 0 selects an input view, -1 the latest)"
    return None


def requested_view(request, num_views: int = 2):
    """``(view index, None)`` or ``(None, reason)``; -1 (VIEW_LATEST) = reference view 0."""
    view = 0 if request.view == -1 else int(request.view)
    if not 0 <= view < num_views:
        return None, (f"unknown view {request.view}: a reconstruction has views 0 (reference) "
                      f"to {num_views - 1}, or -1 for the latest reference view")
    return view, None


def fill_answer(response, result, view_header, reference_header, age: float = 0.0):
    """Fill ``response`` from an lsm QueryResult that was found; returns it.

    mask: mono8 at the original resolution of the requested view (header = that view);
    points/centroid/extent: reference frame (header = reference view).
    """
    from lsm_ros.messages import make_pointcloud, mask_to_imgmsg

    response.success = True
    response.message = result.message
    response.header = reference_header
    response.mask = mask_to_imgmsg(result.mask_original, view_header)
    response.points = make_pointcloud(result.points, header=reference_header)
    response.centroid.x, response.centroid.y, response.centroid.z = (
        float(v) for v in result.centroid)
    response.extent.x, response.extent.y, response.extent.z = (float(v) for v in result.extent)
    response.score = float(result.score)
    response.age = float(age)
    return response


def fill_map_answer(response, instances, header):
    """Fill ``response`` from map instances (lsm.mapping.MapInstance, best first); returns it.

    ``instances``: one Instance message each; the top one also fills points, centroid,
    extent and score, so clients written for single reconstructions read the best object.
    No mask (the map is not an image).
    """
    from lsm_ros.messages import box_pose, make_pointcloud, pose_msg
    from lsm_ros.publishing import map_box
    from lsm_ros_interfaces.msg import Instance

    response.success = True
    response.header = header
    response.message = (f"{len(instances)} instance(s) of {instances[0].label!r} in the map "
                        f"({header.frame_id})")
    response.instances = []
    for inst in instances:
        msg = Instance(label=inst.label, score=float(inst.score), voxel_count=int(inst.voxel_count))
        msg.centroid.x, msg.centroid.y, msg.centroid.z = (float(v) for v in inst.centroid)
        msg.extent.x, msg.extent.y, msg.extent.z = (float(v) for v in inst.extent)
        msg.box = pose_msg(box_pose(map_box(inst)))
        msg.box_size.x, msg.box_size.y, msg.box_size.z = (float(v) for v in inst.box_size)
        sec, nanosec = divmod(int(round(inst.last_seen * 1e9)), 1_000_000_000)
        msg.last_seen.sec, msg.last_seen.nanosec = sec, nanosec
        msg.points = make_pointcloud(inst.points, header=header)
        response.instances.append(msg)
    top = instances[0]
    response.points = response.instances[0].points
    response.centroid, response.extent = response.instances[0].centroid, response.instances[0].extent
    response.score = float(top.score)
    response.age = 0.0
    return response


def effective_threshold(request, settings: LsmSettings) -> float:
    """The request's threshold, or the node's ``query_threshold`` when it is 0."""
    return float(request.threshold) if request.threshold > 0.0 else settings.query_threshold


def reject(response, message: str):
    """Fill ``response`` as a failed answer with ``message``; returns it."""
    response.success = False
    response.message = message
    return response


def no_reconstruction_message(image_topics: Sequence[str], mode: str,
                              images_received: int = 0) -> str:
    """The 'no reconstruction yet' explanation, naming the topics the node waits on."""
    return (f"{NO_RECONSTRUCTION}: the node has not reconstructed any view pair yet "
            f"(mode '{mode}', waiting for sensor_msgs/Image on {', '.join(image_topics)}; "
            f"{images_received} image(s) received so far)")
