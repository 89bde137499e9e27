"""Inference worker: bounded drop-oldest queue, batching, errors, set-up failure."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from lsm_ros.worker import InferenceWorker, PairJob, PairQueue


def _job(i):
    img = np.full((4, 4, 3), i, np.uint8)
    return PairJob(images=(img, img), headers=(i, i))


def test_queue_drops_oldest_and_counts():
    q = PairQueue(3)
    dropped = [q.put(i) for i in range(5)]
    assert dropped == [0, 0, 0, 1, 1]
    assert (q.dropped, q.put_count, len(q)) == (2, 5, 3)
    assert q.get_batch(10, timeout=0) == [2, 3, 4]  # newest kept, in order


def test_get_batch_limits_size_and_times_out_empty():
    q = PairQueue(10)
    for i in range(5):
        q.put(i)
    assert q.get_batch(2) == [0, 1]
    assert q.get_batch(2) == [2, 3]
    start = time.monotonic()
    assert q.get_batch(2, timeout=0.1) == [4]
    assert q.get_batch(2, timeout=0.1) == []
    assert time.monotonic() - start >= 0.09
    with pytest.raises(ValueError):
        PairQueue(0)


def _wait(cond, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end and not cond():
        time.sleep(0.01)
    return cond()


def test_worker_batches_processes_and_publishes_in_order():
    q = PairQueue(50)
    batches, published = [], []
    gate = threading.Event()

    def process(engine, jobs):
        gate.wait(5)
        batches.append(len(jobs))
        return [engine + j.headers[0] for j in jobs]

    w = InferenceWorker(q, lambda: 100, process, lambda job, r: published.append(r),
                        batch_size=lambda: 4)
    w.start()
    try:
        assert _wait(lambda: w.state == "ready")
        for i in range(10):
            q.put(_job(i))
        gate.set()
        assert _wait(lambda: len(published) == 10)
        assert published == [100 + i for i in range(10)]
        assert max(batches) == 4 and sum(batches) == 10
        assert w.processed == 10 and w.failures == 0
    finally:
        w.stop()
    assert not w.alive


def test_worker_survives_a_failing_batch_and_reports_it():
    q = PairQueue(5)
    logs, published = [], []

    def process(engine, jobs):
        if jobs[0].headers[0] == 0:
            raise ValueError("bad pair")
        return [j.headers[0] for j in jobs]

    w = InferenceWorker(q, lambda: None, process, lambda job, r: published.append(r),
                        batch_size=lambda: 1, log=lambda level, text: logs.append((level, text)))
    w.start()
    try:
        q.put(_job(0))
        q.put(_job(1))
        assert _wait(lambda: published == [1])
        assert w.failures == 1
        assert logs[0][0] == "error" and "bad pair" in logs[0][1]
    finally:
        w.stop()


def test_setup_failure_is_reported_not_raised():
    def setup():
        raise FileNotFoundError("no such checkpoint")

    logs = []
    w = InferenceWorker(PairQueue(1), setup, lambda e, j: [], lambda j, r: None,
                        batch_size=lambda: 1, log=lambda level, text: logs.append(text))
    w.start()
    assert _wait(lambda: w.state == "failed")
    assert "no such checkpoint" in w.error and "no such checkpoint" in logs[0]
