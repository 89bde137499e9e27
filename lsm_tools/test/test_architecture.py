"""The layering the README promises, checked on the code itself.

* The pure-torch core (``lsm``) imports without ROS, lsm_ros, lsm_tools or lsm_train.
* No import circle anywhere in the repository's Python packages (lazy imports included).
* One image's trip from the subscription to the published cloud enters the node once and
  crosses at most five files of the ROS layer.
"""
from __future__ import annotations

import ast
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Dict, List, Set

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = {"lsm": REPO / "lsm_ros" / "lsm", "lsm_ros": REPO / "lsm_ros" / "lsm_ros",
            "lsm_tools": REPO / "lsm_tools" / "lsm_tools",
            "lsm_train": REPO / "lsm_tools" / "lsm_train"}
ROS_LAYER = PACKAGES["lsm_ros"]

BLOCKER = r"""
import importlib.abc, pkgutil, sys
BLOCKED = ("rclpy", "rcl_interfaces", "sensor_msgs", "std_msgs", "geometry_msgs",
           "diagnostic_msgs", "std_srvs", "builtin_interfaces", "lsm_ros", "lsm_ros_interfaces",
           "tf2_ros", "lsm_tools", "lsm_train")

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"the core imported {name}")
        return None

sys.meta_path.insert(0, Block())
import lsm
names = [m.name for m in pkgutil.walk_packages(lsm.__path__, "lsm.")]
for name in names:
    __import__(name)
import lsm.perception, lsm.results, lsm.specs
leaked = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
assert not leaked, leaked
print(len(names))
"""


def test_the_core_imports_without_ros_or_the_tools():
    out = subprocess.run([sys.executable, "-c", BLOCKER], capture_output=True, text=True,
                         timeout=300, cwd=REPO)
    assert out.returncode == 0, out.stderr[-3000:]
    assert int(out.stdout.strip()) > 40  # every module of the core was imported


def test_the_node_starts_without_importing_torch():
    """lsm_node answers its services and handles Ctrl-C while the model loads: importing
    the node must not load torch or OpenCV (1-2 s), only the worker thread does."""
    code = ("import sys, lsm_ros.node; heavy = [m for m in ('torch', 'cv2') if m in sys.modules];"
            " assert not heavy, heavy")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]


def _module_name(path: Path, package: str, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join([package] + parts)


def import_graph() -> Dict[str, Set[str]]:
    """module -> modules of these packages it imports (module level and inside functions).

    ``from a.b import c`` is an edge to ``a.b.c`` when that is a module, else to ``a.b``.
    """
    modules: Dict[str, Path] = {}
    for package, root in PACKAGES.items():
        for path in root.rglob("*.py"):
            modules[_module_name(path, package, root)] = path
    graph: Dict[str, Set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text())):
            targets: List[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = name.split(".")
                    anchor = anchor if is_package else anchor[:-1]
                    anchor = anchor[:len(anchor) - (node.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                           for a in node.names]
            for t in targets:
                while t and t not in modules:
                    t = t.rpartition(".")[0]
                if t and t != name and not name.startswith(t + "."):  # a package's own parent
                    graph[name].add(t)
    return graph


def cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_no_import_circles_and_the_layers_point_one_way():
    graph = import_graph()
    assert len(graph) > 60
    assert cycles(graph) == []
    layer = {"lsm": 0, "lsm_ros": 1, "lsm_train": 1, "lsm_tools": 2}
    upward = [(a, b) for a, deps in graph.items() for b in deps
              if layer[b.split(".")[0]] > layer[a.split(".")[0]]
              or {a.split(".")[0], b.split(".")[0]} == {"lsm_ros", "lsm_train"}]
    assert upward == []


def test_the_cycle_finder_finds_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.slow
def test_an_image_pair_enters_the_node_once_per_image_and_crosses_five_ros_files():
    """Profiles the real node in this process: the subscription callbacks of two camera
    images, then the worker thread up to the published cloud."""
    rclpy = pytest.importorskip("rclpy")
    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.parameter import Parameter

    from lsm.perception import Perception
    from lsm_ros.messages import array_to_imgmsg, set_stamp
    from lsm_ros.node import LsmNode

    perception = Perception.load(device="cpu")  # before profiling: loading is not the trip
    calls: List[tuple] = []  # (thread name, callee file, function, caller file)

    def profile(frame, event, arg):
        if event == "call":
            path = frame.f_code.co_filename
            if path.startswith(str(ROS_LAYER)):
                caller = frame.f_back.f_code.co_filename if frame.f_back else ""
                calls.append((threading.current_thread().name, Path(path).name,
                              frame.f_code.co_name, caller))

    context = rclpy.Context()
    rclpy.init(args=[], context=context)
    node = LsmNode(context=context, parameter_overrides=[Parameter("point_stride", value=4)])
    try:
        def load():
            sys.setprofile(profile)  # this (the worker) thread, from the first pair on
            return perception

        node._loader = load
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        deadline = time.monotonic() + 60
        calls.clear()
        rng = np.random.default_rng(0)
        subs = node._subscriptions_
        sys.setprofile(profile)
        for camera in (0, 1):
            msg = array_to_imgmsg(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8), "rgb8")
            set_stamp(msg, 100.0)
            msg.header.frame_id = f"cam{camera}"
            subs[camera].callback(msg)  # what the executor calls for a received image
        sys.setprofile(None)
        while node.latest_reconstruction() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert node.latest_reconstruction() is not None
    finally:
        sys.setprofile(None)
        node.destroy_node()
        rclpy.shutdown(context=context)
    node_file = str(ROS_LAYER / "node.py")
    entries = [c for c in calls if c[1] == "node.py" and c[3] != node_file]
    assert len(entries) == 2, entries  # one per image, from the subscription
    assert all(c[0] == threading.current_thread().name for c in entries)
    # tf_buffer.py stands in for tf2_ros (not on PyPI): a library's work, not a stage of the trip
    files = {c[1] for c in calls if c[1] not in ("__init__.py", "tf_buffer.py")}
    assert files <= {"node.py", "messages.py", "inputs.py", "worker.py", "publishing.py"}, files
    assert len(files) <= 5
