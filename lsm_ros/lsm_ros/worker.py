"""Inference off the ROS executor: a bounded drop-oldest queue and a worker thread.

No ROS imports.  The node's image callback only converts images and :meth:`PairQueue.put` s
view pairs; :class:`InferenceWorker` loads the :class:`~lsm.perception.Perception` once, takes
up to ``batch_size`` pairs at a time, runs one forward pass, and hands each result to its
:class:`OutputSink` (lsm_ros.publishing): the point cloud as soon as it exists, then the
image outputs the sink still wants (none when nobody subscribes).  When the queue is full
the OLDEST pair is dropped (a robot wants the newest view); drops are counted.
"""
from __future__ import annotations

import dataclasses
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Collection, Deque, List, Optional, Protocol, Sequence

import numpy as np


@dataclass
class PairJob:
    """One view pair to reconstruct.

    images: two RGB uint8 ``(H, W, 3)`` arrays, first = reference view.
    headers: the two image headers (opaque here; stamp/frame of the outputs come from [0]).
    enqueued: ``time.monotonic()`` when the pair was formed.
    """

    images: Sequence[np.ndarray]
    headers: Sequence[Any]
    enqueued: float = field(default_factory=time.monotonic)
    stamps: Sequence[float] = (0.0, 0.0)  # the two images' stamps, seconds


class PairQueue:
    """Thread-safe bounded FIFO that drops its oldest entry when full.

    ``relink_chain`` (mono mode, :class:`PairJob` items): keyframe pairs form a chain, each
    pair's second view being the previous pair's first. When a pair (k, j) is dropped, the
    waiting pair that continued it, (l, k), becomes (l, j), so the chain of what is actually
    reconstructed stays unbroken (a baseline of two keyframe steps); :attr:`relinked` counts
    these.
    """

    def __init__(self, maxsize: int, relink_chain: bool = False) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be >= 1, got {maxsize}")
        self._items: Deque[Any] = deque()
        self._maxsize = int(maxsize)
        self._relink = bool(relink_chain)
        self._cond = threading.Condition()
        self._closed = False
        self.put_count = 0
        self.dropped = 0
        self.relinked = 0

    @property
    def maxsize(self) -> int:
        return self._maxsize

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)

    def put(self, item: Any) -> int:
        """Append ``item``; returns how many old items were dropped to make room (0 or 1)."""
        with self._cond:
            gone = []
            while len(self._items) >= self._maxsize:
                gone.append(self._items.popleft())
            self._items.append(item)
            if self._relink:
                for old in gone:
                    self._relink_successor(old)
            self.put_count += 1
            self.dropped += len(gone)
            self._cond.notify()
            return len(gone)

    def _relink_successor(self, dropped: "PairJob") -> None:
        """The waiting pair whose second view is ``dropped``'s first takes ``dropped``'s
        second view instead (see the class docstring)."""
        for i, job in enumerate(self._items):
            if job.stamps[1] == dropped.stamps[0]:
                self._items[i] = dataclasses.replace(
                    job, images=(job.images[0], dropped.images[1]),
                    headers=(job.headers[0], dropped.headers[1]),
                    stamps=(job.stamps[0], dropped.stamps[1]))
                self.relinked += 1
                return

    def get_batch(self, max_items: int, timeout: Optional[float] = None) -> List[Any]:
        """Up to ``max_items`` oldest items; waits up to ``timeout`` s for the first one.

        Returns [] on timeout or after :meth:`close`.
        """
        with self._cond:
            if not self._items and not self._closed:
                self._cond.wait(timeout)
            batch = []
            while self._items and len(batch) < max_items:
                batch.append(self._items.popleft())
            return batch

    def clear(self) -> int:
        """Drop every waiting item (counted as dropped); returns how many."""
        with self._cond:
            n = len(self._items)
            self._items.clear()
            self.dropped += n
            return n

    def close(self) -> None:
        """Wake the consumer for good (shutdown)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()


def perception_loader(weights: Any, device: str, precision: str,
                      cpu_threads: int) -> Callable[[], Any]:
    """A ``load`` callable for :class:`InferenceWorker`: loads the
    :class:`lsm.perception.Perception` from ``weights`` (lsm.specs.WeightSources) when
    called; torch is imported then, in the worker thread, not when the node starts."""
    def load():
        from lsm.perception import Perception

        return Perception.load(weights, device, precision, cpu_threads)
    return load


class OutputSink(Protocol):
    """Where the worker's results go (lsm_ros.publishing.OutputPublisher in the node).

    Called in the worker thread, in this order for each pair: ``publish_cloud`` once, then
    ``wanted_images`` and, when it names any, ``publish_images`` with just those.
    """

    def wanted_images(self) -> Collection[str]:
        """Names of the image outputs (lsm.perception.IMAGE_OUTPUTS) someone wants now."""

    def publish_cloud(self, job: PairJob, rec: Any, cloud: Any) -> None:
        """Publish the reconstruction's cloud, cameras and poses; keep it for queries."""

    def publish_images(self, job: PairJob, rec: Any, images: Any) -> None:
        """Publish the reference view's image outputs."""


class InferenceWorker:
    """Thread that loads the model once, then batches pairs through it.

    load(): called once in the thread (slow); returns the lsm.perception.Perception.
    sink: receives every result (see :class:`OutputSink`).
    spec, batch_size: the lsm.perception.OutputSpec and pairs per forward pass; change
    them at run time with :meth:`configure` (read before every batch).
    log(level, text): level is 'info', 'warning' or 'error'.
    """

    def __init__(self, queue: PairQueue, load: Callable[[], Any], sink: OutputSink,
                 spec: Any = None, batch_size: int = 1,
                 log: Callable[[str, str], None] = lambda level, text: None,
                 sensors: Any = None, metric: Any = None, pose_check: bool = True,
                 two_view_pose: bool = True) -> None:
        self.queue = queue
        self._load, self._sink, self._log = load, sink, log
        self._spec, self._batch_size = spec, int(batch_size)
        # sensors: lsm_ros.inputs.SensorInputs (resolve(job) -> (PairSensors, world_T_ref))
        # or None; metric: lsm.specs.MetricSpec; the scale tracker lives as long as the worker
        self._sensors, self._metric, self._pose_check = sensors, metric, bool(pose_check)
        self._two_view_pose = bool(two_view_pose)
        self.tracker = None
        self.last_reconstruction: Any = None  # for diagnostics: scale, focal, frame
        self.map_fusion: Any = None  # lsm.mapping.MapFusion, or None: no map
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lsm_inference", daemon=True)
        self.perception: Any = None
        self.state = "starting"  # starting | loading | ready | failed
        self.error = ""
        self.processed = 0  # pairs reconstructed
        self.failures = 0  # batches that raised
        self.batches = 0
        self.last_batch_seconds = 0.0
        self.last_queue_wait = 0.0  # seconds the newest processed pair waited in the queue

    def configure(self, spec: Any = None, batch_size: Optional[int] = None) -> None:
        """Replace the output spec and/or the batch size (applies from the next batch)."""
        if spec is not None:
            self._spec = spec
        if batch_size is not None:
            self._batch_size = int(batch_size)

    def _resolve(self, jobs: List[PairJob]):
        """Per job: (PairSensors, world_T_ref) from the sensors, or (None, None)."""
        if self._sensors is None:
            return [(None, None)] * len(jobs)
        return [self._sensors.resolve(job) for job in jobs]

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self.queue.close()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        self.state = "loading"
        try:
            self.perception = self._load()
        except Exception as exc:  # the node keeps serving, diagnostics say why
            self.state, self.error = "failed", f"{type(exc).__name__}: {exc}"
            self._log("error", f"model set-up failed: {self.error}")
            return
        self.state = "ready"
        p = self.perception
        sources = getattr(getattr(p, "model", None), "meta", {}).get("sources", {})
        self._log("info", f"model loaded on {getattr(p, 'device', '?')} "
                          f"({getattr(p, 'precision', '?')}) in "
                          f"{getattr(p, 'load_seconds', 0.0):.1f} s from "
                          f"{', '.join(f'{k}: {v}' for k, v in sources.items()) or '?'}")
        if getattr(p, "precision_note", ""):
            self._log("warning", f"precision: {p.precision_note}")
        while not self._stop.is_set():
            jobs = self.queue.get_batch(max(1, self._batch_size), timeout=0.5)
            if not jobs:
                continue
            start = time.monotonic()
            self.last_queue_wait = start - jobs[-1].enqueued
            try:
                self._process(jobs)
                self.processed += len(jobs)
            except Exception as exc:
                if self._stop.is_set():
                    break
                self.failures += 1
                self._log("error", f"inference of {len(jobs)} pair(s) failed: "
                                   f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")
            finally:
                self.batches += 1
                self.last_batch_seconds = time.monotonic() - start

    def _process(self, jobs: List[PairJob]) -> None:
        """One forward pass; every cloud goes out before any image output is computed."""
        perception, spec = self.perception, self._spec
        if self._sensors is None:
            recs = perception.reconstruct([tuple(j.images) for j in jobs],
                                          pose_check=self._pose_check,
                                          two_view_pose=self._two_view_pose)
        else:
            from lsm.metric import ScaleTracker

            if self.tracker is None:
                self.tracker = ScaleTracker()
            resolved = self._resolve(jobs)
            recs = perception.reconstruct([tuple(j.images) for j in jobs],
                                          sensors=[r[0] for r in resolved], metric=self._metric,
                                          tracker=self.tracker, pose_check=self._pose_check,
                                          two_view_pose=self._two_view_pose)
            recs = [self._in_world(rec, world) for rec, (_, world) in zip(recs, resolved)]
        self.last_reconstruction = recs[-1]
        for job, rec in zip(jobs, recs):
            self._sink.publish_cloud(job, rec, perception.point_cloud(rec, spec))
        for job, rec in zip(jobs, recs):
            wanted = self._sink.wanted_images()
            if wanted and not self._stop.is_set():
                self._sink.publish_images(job, rec,
                                          perception.view_images(rec, spec.labels, 0, wanted))
        if self.map_fusion is not None:  # after every output: the map is not in the latency
            for job, rec in zip(jobs, recs):
                self.map_fusion.add(rec, perception.map_points, tuple(job.stamps))

    def _in_world(self, rec, world):
        """``rec`` in the configured world frame when TF gave its transform and the result is
        metric (TF is in metres; model units cannot be placed in it)."""
        frame = getattr(self._sensors, "world_frame", "")
        if world is None or not frame:
            return rec
        if not rec.metric:
            self._sensors.report(frame, "outputs stay in the camera's optical frame: the scale "
                                        f"is unknown, so they cannot be placed in TF's metres "
                                        f"({rec.scale_detail})")
            return rec
        return rec.transformed(world, frame)

