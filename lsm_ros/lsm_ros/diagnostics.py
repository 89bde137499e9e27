"""``/diagnostics`` of lsm_node: rates, latency, drops and the device.

:class:`RateMeter` is pure Python; :func:`diagnostic_array` builds the
``diagnostic_msgs/DiagnosticArray`` from a plain dict of key -> value.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from typing import Deque, Mapping, Optional

STATUS_NAME = "lsm_node: reconstruction"
SCALE_NOTE = ("3-D outputs are in model units: metric only up to an unknown global scale "
              "(an image pair alone does not fix the scale)")


def diagnostic_values(msg) -> dict:
    """key -> value (strings) of every status in a DiagnosticArray."""
    return {kv.key: kv.value for status in msg.status for kv in status.values}


class RateMeter:
    """Events per second over the last ``window`` seconds (thread-safe)."""

    def __init__(self, window: float = 5.0) -> None:
        self.window = float(window)
        self._times: Deque[float] = deque()
        self._lock = threading.Lock()
        self.count = 0

    def tick(self, now: Optional[float] = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._times.append(now)
            self.count += 1
            self._trim(now)

    def _trim(self, now: float) -> None:
        while self._times and self._times[0] < now - self.window:
            self._times.popleft()

    def rate(self, now: Optional[float] = None) -> float:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._trim(now)
            return len(self._times) / self.window


def diagnostic_array(stamp, level: str, message: str, hardware_id: str,
                     values: Mapping[str, object]):
    """DiagnosticArray with one status; ``level`` is 'ok', 'warn' or 'error'."""
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

    levels = {"ok": DiagnosticStatus.OK, "warn": DiagnosticStatus.WARN,
              "error": DiagnosticStatus.ERROR}
    status = DiagnosticStatus()
    status.level = levels[level]
    status.name = STATUS_NAME
    status.message = message
    status.hardware_id = hardware_id
    status.values = [KeyValue(key=str(k), value=_fmt(v)) for k, v in values.items()]
    array = DiagnosticArray()
    array.header.stamp = stamp
    array.status = [status]
    return array


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)
