"""``lsm_node``: the ROS 2 node of the Large Spatial Model.

Interfaces (names relative to the node namespace; with no namespace they are absolute):

* service ``lsm/query`` (lsm_ros_interfaces/srv/Query) -> ``/lsm/query``: where is an
  object class in the latest reconstruction.

Design: the node only handles ROS I/O.  Inference runs outside the executor thread (a
worker added by the inference layer calls :meth:`LsmNode.set_reconstruction`); the query
service answers from the latest reconstruction under a lock, so a query never waits for
a running inference.  torch is not imported here: the node starts in well under a second.

Run: ``lsm_node --ros-args --params-file config/lsm.yaml [-r __ns:=/robot1]``.
Exit status: 0 after a normal shutdown (Ctrl-C / SIGTERM), 2 for invalid parameters or
command-line ROS arguments.
"""
from __future__ import annotations

import sys
import threading
from typing import Any, List, Optional

import rclpy
from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node

from lsm_ros import query as query_logic
from lsm_ros.parameters import (
    SPECS_BY_NAME,
    LsmSettings,
    ParameterError,
    check_parameter_change,
    declare_parameters,
    read_settings,
)

NODE_NAME = "lsm_node"
QUERY_SERVICE = "lsm/query"
EXIT_BAD_PARAMETERS = 2


def _query_type():
    from lsm_ros_interfaces.srv import Query
    return Query


class LsmNode(Node):
    """ROS front end: parameters, the query service and the latest reconstruction."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        declare_parameters(self)
        self._settings: LsmSettings = read_settings(
            lambda name: self.get_parameter(name).value)
        self._warn_unknown_overrides()
        self._lock = threading.Lock()
        self._reconstruction: Optional[Any] = None
        self._images_received = 0
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._service_group = MutuallyExclusiveCallbackGroup()
        self._query_service = self.create_service(
            _query_type(), QUERY_SERVICE, self._on_query, callback_group=self._service_group)
        s = self._settings
        self.get_logger().info(
            f"ready: service {self._query_service.service_name}, mode '{s.mode}', "
            f"model '{s.model_config}', device '{s.device}', images on "
            f"{', '.join(self.image_topic_names())}")

    # -- settings -----------------------------------------------------------------------
    @property
    def settings(self) -> LsmSettings:
        """Current validated parameter values (replaced atomically on a change)."""
        return self._settings

    def image_topic_names(self) -> List[str]:
        """Fully resolved image topic names (after namespace and remapping)."""
        s = self._settings
        topics = s.image_topics[:1] if s.mode == "mono" else s.image_topics[:2]
        return [self.resolve_topic_name(t) for t in topics]

    def _warn_unknown_overrides(self) -> None:
        overrides = getattr(self, "_parameter_overrides", {}) or {}
        unknown = sorted(n for n in overrides if n not in SPECS_BY_NAME
                         and n not in ("use_sim_time", "start_type_description_service"))
        if unknown:
            self.get_logger().warning(
                f"ignoring unknown parameter(s) {unknown}; known: {sorted(SPECS_BY_NAME)}")

    def _on_set_parameters(self, parameters) -> SetParametersResult:
        new, reason = check_parameter_change(
            self._settings, [(p.name, p.value) for p in parameters])
        if new is None:
            self.get_logger().warning(f"parameter change rejected: {reason}")
            return SetParametersResult(successful=False, reason=reason)
        # Accepted: rclpy stores the values right after this callback returns.
        self._settings = new
        return SetParametersResult(successful=True)

    # -- reconstruction -------------------------------------------------------------------
    def set_reconstruction(self, reconstruction: Any) -> None:
        """Publish a new latest reconstruction for queries (thread-safe)."""
        with self._lock:
            self._reconstruction = reconstruction

    def latest_reconstruction(self) -> Optional[Any]:
        with self._lock:
            return self._reconstruction

    # -- service --------------------------------------------------------------------------
    def _on_query(self, request, response):
        settings = self._settings
        problem = query_logic.request_problem(request, settings)
        if problem:
            self.get_logger().info(f"query rejected: {problem}")
            return query_logic.reject(response, problem)
        reconstruction = self.latest_reconstruction()
        if reconstruction is None:
            return query_logic.reject(response, query_logic.no_reconstruction_message(
                self.image_topic_names(), settings.mode, self._images_received))
        return self.answer_query(reconstruction, request, response)

    def answer_query(self, reconstruction: Any, request, response):
        """Answer a valid query from ``reconstruction``; the inference layer overrides it."""
        return query_logic.reject(
            response, "this node build cannot answer queries from a reconstruction yet")


def _parameter_failure(exc: BaseException) -> str:
    """One clear message for a rejected parameter (ours or rclpy's type/range checks)."""
    if isinstance(exc, ParameterError):
        name, detail = exc.name, exc.reason
    else:  # rclpy's ParameterException: "<message>: <parameter name>"
        detail, _, name = str(exc).rpartition(": ")
        detail = detail or str(exc)
    return (f"lsm_node: invalid parameter '{name}': {detail}\n"
            "lsm_node: check the params file (--params-file) and -p overrides; "
            "config/lsm.yaml lists every parameter with its type")


def main(args: Optional[List[str]] = None) -> int:
    """Console script ``lsm_node``. Returns the process exit status."""
    try:
        rclpy.init(args=args)
    except Exception as exc:  # e.g. a missing or malformed --params-file
        print(f"lsm_node: cannot initialise ROS 2 with the given arguments: {exc}",
              file=sys.stderr)
        return EXIT_BAD_PARAMETERS
    node = None
    try:
        try:
            node = LsmNode()
        except (ParameterError, ParameterException) as exc:
            print(_parameter_failure(exc), file=sys.stderr)
            return EXIT_BAD_PARAMETERS
        executor = MultiThreadedExecutor(num_threads=2)
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
