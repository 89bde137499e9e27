"""Inference off the ROS executor: a bounded drop-oldest queue and a worker thread.

No ROS imports.  The node's callbacks only convert images and :meth:`PairQueue.put` view
pairs; :class:`InferenceWorker` takes up to ``batch_size`` pairs at a time, runs one
forward pass through ``process`` and hands each result to ``publish``.  When the queue is
full the OLDEST pair is dropped (a robot wants the newest view); drops are counted.
"""
from __future__ import annotations

import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Deque, List, Optional, Sequence

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


class PairQueue:
    """Thread-safe bounded FIFO that drops its oldest entry when full."""

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be >= 1, got {maxsize}")
        self._items: Deque[Any] = deque()
        self._maxsize = int(maxsize)
        self._cond = threading.Condition()
        self._closed = False
        self.put_count = 0
        self.dropped = 0

    @property
    def maxsize(self) -> int:
        return self._maxsize

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)

    def put(self, item: Any) -> int:
        """Append ``item``; returns how many old items were dropped to make room (0 or 1)."""
        with self._cond:
            dropped = 0
            while len(self._items) >= self._maxsize:
                self._items.popleft()
                dropped += 1
            self._items.append(item)
            self.put_count += 1
            self.dropped += dropped
            self._cond.notify()
            return dropped

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

    def close(self) -> None:
        """Wake the consumer for good (shutdown)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class InferenceWorker:
    """Thread that loads the model once, then batches pairs through it.

    setup(): called once in the thread (e.g. loads the model; slow); returns the engine.
    process(engine, jobs): results, one per job (one forward pass for the whole batch).
    publish(job, result): called per job, in this thread.
    batch_size(): current batch size (read before every batch).
    log(level, text): level is 'info', 'warning' or 'error'.
    """

    def __init__(self, queue: PairQueue, setup: Callable[[], Any],
                 process: Callable[[Any, List[PairJob]], Sequence[Any]],
                 publish: Callable[[PairJob, Any], None], batch_size: Callable[[], int],
                 log: Callable[[str, str], None] = lambda level, text: None) -> None:
        self.queue = queue
        self._setup, self._process, self._publish = setup, process, publish
        self._batch_size, self._log = batch_size, log
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lsm_inference", daemon=True)
        self.engine: Any = None
        self.state = "starting"  # starting | loading | ready | failed
        self.error = ""
        self.processed = 0  # pairs reconstructed
        self.failures = 0  # batches that raised
        self.batches = 0
        self.last_batch_seconds = 0.0
        self.last_queue_wait = 0.0  # seconds the newest processed pair waited in the queue
        self.busy = False

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
            self.engine = self._setup()
        except Exception as exc:  # the node keeps serving, diagnostics say why
            self.state, self.error = "failed", f"{type(exc).__name__}: {exc}"
            self._log("error", f"model set-up failed: {self.error}")
            return
        self.state = "ready"
        while not self._stop.is_set():
            jobs = self.queue.get_batch(max(1, int(self._batch_size())), timeout=0.5)
            if not jobs:
                continue
            self.busy = True
            start = time.monotonic()
            self.last_queue_wait = start - jobs[-1].enqueued
            try:
                results = self._process(self.engine, jobs)
                for job, result in zip(jobs, results):
                    self._publish(job, result)
                self.processed += len(jobs)
            except Exception as exc:
                if self._stop.is_set():
                    break
                self.failures += 1
                self._log("error", f"inference of {len(jobs)} pair(s) failed: "
                                   f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")
            finally:
                self.busy = False
                self.batches += 1
                self.last_batch_seconds = time.monotonic() - start
