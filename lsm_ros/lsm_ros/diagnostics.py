"""``/diagnostics`` of lsm_node: rates, latency, drops and the device.

:class:`RateMeter` is pure Python (rates from sampled counters); :func:`diagnostic_array` builds the
``diagnostic_msgs/DiagnosticArray`` from a plain dict of key -> value.
"""
from __future__ import annotations

import time
from collections import deque
from typing import Deque, Mapping, Optional, Tuple

SCALE_NOTE = ("3-D outputs are in model units: metric only up to an unknown global scale "
              "(an image pair alone does not fix the scale)")


def diagnostic_values(msg) -> dict:
    """key -> value (strings) of every status in a DiagnosticArray."""
    return {kv.key: kv.value for status in msg.status for kv in status.values}


class RateMeter:
    """Events per second over about the last ``window`` seconds, from a running count.

    The caller samples its own counter (e.g. once a second in the diagnostics timer), so
    the per-event path only increments an integer and never enters this module.
    """

    def __init__(self, window: float = 5.0) -> None:
        self.window = float(window)
        self._samples: Deque[Tuple[float, int]] = deque()

    def rate(self, count: int, now: Optional[float] = None) -> float:
        now = time.monotonic() if now is None else now
        self._samples.append((now, int(count)))
        while len(self._samples) > 2 and self._samples[1][0] <= now - self.window:
            self._samples.popleft()
        t0, c0 = self._samples[0]
        return (count - c0) / (now - t0) if now > t0 else 0.0


def diagnostic_array(stamp, name: str, level: str, message: str, hardware_id: str,
                     values: Mapping[str, object]):
    """DiagnosticArray with one status called ``name`` (e.g. the node's fully qualified name,
    so an aggregator tells nodes in different namespaces apart); ``level`` is 'ok', 'warn'
    or 'error'."""
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

    levels = {"ok": DiagnosticStatus.OK, "warn": DiagnosticStatus.WARN,
              "error": DiagnosticStatus.ERROR}
    status = DiagnosticStatus()
    status.level = levels[level]
    status.name = name
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
