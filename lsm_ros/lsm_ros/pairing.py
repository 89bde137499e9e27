"""Turning image streams into view pairs (pure Python, no ROS types).

* :class:`ApproximateTimePairer` (pair mode): two cameras; an image of one camera is
  paired with the unused image of the other camera whose stamp is nearest, if the stamps
  differ by at most ``slop`` seconds.  Each image is used at most once; per camera at most
  ``buffer_size`` unpaired images are kept (oldest dropped first).
* :class:`MonoKeyframer` (mono mode): one camera; a frame becomes a new keyframe when at
  least ``min_frames`` frames and ``min_seconds`` seconds passed since the last keyframe
  (and, when the caller knows the camera motion, at least ``min_translation`` of it).
  Each new keyframe is paired with the previous one; the NEW keyframe is the pair's first
  (reference) view, so outputs describe the current camera.

Stamps are float seconds; items are opaque to this module.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Deque, Optional, Tuple


@dataclass(frozen=True)
class StampedItem:
    stamp: float  # seconds
    item: Any


class ApproximateTimePairer:
    """Pairs images of camera 0 and camera 1 whose stamps differ by at most ``slop`` s."""

    def __init__(self, slop: float, buffer_size: int = 10) -> None:
        if slop < 0:
            raise ValueError(f"slop must be >= 0, got {slop}")
        if buffer_size < 1:
            raise ValueError(f"buffer_size must be >= 1, got {buffer_size}")
        self.slop = float(slop)
        self._buffers: Tuple[Deque[StampedItem], Deque[StampedItem]] = (
            deque(maxlen=buffer_size), deque(maxlen=buffer_size))

    def add(self, camera: int, stamp: float, item: Any) -> Optional[Tuple[StampedItem,
                                                                           StampedItem]]:
        """Add an image of ``camera`` (0 or 1); returns ``(view0, view1)`` when it pairs."""
        if camera not in (0, 1):
            raise ValueError(f"camera must be 0 or 1, got {camera}")
        other = self._buffers[1 - camera]
        best, best_dt = None, None
        for candidate in other:
            dt = abs(candidate.stamp - stamp)
            if dt <= self.slop and (best_dt is None or dt < best_dt):
                best, best_dt = candidate, dt
        new = StampedItem(float(stamp), item)
        if best is None:
            self._buffers[camera].append(new)
            return None
        other.remove(best)
        # Images older than the matched one can no longer pair with anything newer.
        while other and other[0].stamp < best.stamp:
            other.popleft()
        return (new, best) if camera == 0 else (best, new)

    def pending(self) -> Tuple[int, int]:
        """Unpaired images held per camera."""
        return len(self._buffers[0]), len(self._buffers[1])


class MonoKeyframer:
    """Selects keyframes from one camera and pairs each new keyframe with the previous one."""

    def __init__(self, min_frames: int = 1, min_seconds: float = 0.0,
                 min_translation: float = 0.0) -> None:
        if min_frames < 1:
            raise ValueError(f"min_frames must be >= 1, got {min_frames}")
        if min_seconds < 0 or min_translation < 0:
            raise ValueError("min_seconds and min_translation must be >= 0")
        self.min_frames = int(min_frames)
        self.min_seconds = float(min_seconds)
        self.min_translation = float(min_translation)
        self._keyframe: Optional[StampedItem] = None
        self._frames_since = 0

    def add(self, stamp: float, item: Any, translation: Optional[float] = None
            ) -> Optional[Tuple[StampedItem, StampedItem]]:
        """Add a frame; returns ``(new_keyframe, previous_keyframe)`` when it is a keyframe.

        ``translation``: camera motion (metres) since the last keyframe when known (e.g.
        from odometry TF), else None (motion is then not required).
        """
        new = StampedItem(float(stamp), item)
        if self._keyframe is None:
            self._keyframe, self._frames_since = new, 0
            return None
        self._frames_since += 1
        if stamp < self._keyframe.stamp:  # time jumped back (bag loop, sim reset): restart
            self._keyframe, self._frames_since = new, 0
            return None
        if self._frames_since < self.min_frames:
            return None
        if stamp - self._keyframe.stamp < self.min_seconds:
            return None
        if translation is not None and translation < self.min_translation:
            return None
        previous = self._keyframe
        self._keyframe, self._frames_since = new, 0
        return new, previous
