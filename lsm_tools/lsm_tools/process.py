"""Start ``lsm_node`` as its own process, stop it like Ctrl-C, call ``/lsm/query``.

Used by the demo, the bag tool and the system tests; everything goes over real DDS between
processes.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import List, Mapping, Optional, Sequence


def lsm_node_command(ros_args: Sequence[str] = (), executable: str = "lsm_node") -> List[str]:
    """Command line of a console script of lsm_ros (``lsm_node`` or ``lsm_lifecycle_node``),
    next to this Python, else on PATH."""
    script = Path(sys.executable).parent / executable
    if not script.is_file():
        found = shutil.which(executable)
        if found is None:
            raise FileNotFoundError(f"console script {executable} not found; install the "
                                    "package with `pip install -e ./lsm_ros` (or `make venv`)")
        script = Path(found)
    return [str(script), *ros_args]


def start_lsm_node(params_file: Optional[os.PathLike] = None,
                   extra_ros_args: Sequence[str] = (),
                   env: Optional[Mapping[str, str]] = None,
                   log_path: Optional[os.PathLike] = None,
                   executable: str = "lsm_node") -> subprocess.Popen:
    """Start ``lsm_node --ros-args [--params-file F] ...`` (or another console script of
    lsm_ros) as its own process."""
    args: List[str] = ["--ros-args"]
    if params_file is not None:
        args += ["--params-file", str(params_file)]
    args += list(extra_ros_args)
    out = open(log_path, "wb") if log_path is not None else subprocess.DEVNULL
    try:
        return subprocess.Popen(lsm_node_command(args, executable), env=dict(env) if env else None,
                                stdout=out, stderr=subprocess.STDOUT)
    finally:
        if log_path is not None:
            out.close()


def stop_process(proc: subprocess.Popen, timeout: float = 10.0) -> int:
    """SIGINT (like Ctrl-C), then SIGKILL after ``timeout``; returns the exit status."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def call_query(node, label: str, threshold: float = 0.0, view: int = -1,
               service: str = "/lsm/query", timeout: float = 30.0,
               server_process: Optional[subprocess.Popen] = None, scope: int = 0,
               max_instances: int = 0):
    """Call Query on ``service`` from rclpy ``node``; returns the response.

    Raises TimeoutError when the service does not appear or answer within ``timeout`` s,
    RuntimeError when ``server_process`` exits meanwhile.
    """
    from lsm_ros_interfaces.srv import Query

    request = Query.Request(label=label, threshold=float(threshold), view=int(view),
                            scope=int(scope), max_instances=int(max_instances))
    return call_service(node, Query, service, request, timeout, server_process)


def call_trigger(node, service: str, timeout: float = 30.0,
                 server_process: Optional[subprocess.Popen] = None):
    """Call a std_srvs/Trigger service (e.g. ~/save_map); returns the response."""
    from std_srvs.srv import Trigger

    return call_service(node, Trigger, service, Trigger.Request(), timeout, server_process)


def call_service(node, srv_type, service: str, request, timeout: float = 30.0,
                 server_process: Optional[subprocess.Popen] = None):
    """Call ``service`` once from rclpy ``node`` and wait for the answer (see call_query)."""
    import rclpy

    client = node.create_client(srv_type, service)
    try:
        deadline = time.monotonic() + timeout
        while not client.wait_for_service(timeout_sec=0.2):
            if server_process is not None and server_process.poll() is not None:
                raise RuntimeError(f"lsm_node exited with status {server_process.returncode} "
                                   f"before {service} appeared")
            if time.monotonic() > deadline:
                raise TimeoutError(f"service {service} did not appear within {timeout} s")
        future = client.call_async(request)
        rclpy.spin_until_future_complete(node, future,
                                         timeout_sec=max(0.1, deadline - time.monotonic()))
        if not future.done():
            raise TimeoutError(f"no answer from {service} within {timeout} s")
        return future.result()
    finally:
        node.destroy_client(client)
