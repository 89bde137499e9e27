"""Checks and answers of the ``/lsm/query`` service (lsm_ros_interfaces/srv/Query).

Pure functions over the request/response messages so that the node stays thin and the
inference side can later fill a successful answer.
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
    if match_label(request.label, settings.labels) is None:
        return (f"unknown label {request.label!r}: not one of the node's labels "
                f"{list(settings.labels)} (the 'labels' parameter can be changed at run time)")
    threshold = float(request.threshold)
    if math.isnan(threshold) or not 0.0 <= threshold <= 1.0:
        return f"threshold {threshold} is outside [0, 1] (0 = node default)"
    if request.view < -1:
        return f"view {request.view} is invalid (>= 0 selects an input view, -1 the latest)"
    return None


def match_label(label: str, labels: Sequence[str]) -> Optional[int]:
    """Index of ``label`` in ``labels`` (ignoring case and outer spaces), or None."""
    wanted = label.strip().casefold()
    for index, name in enumerate(labels):
        if name.strip().casefold() == wanted:
            return index
    return None


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
