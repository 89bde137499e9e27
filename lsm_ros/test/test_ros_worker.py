"""Inference worker: bounded drop-oldest queue, batching, errors, set-up failure."""
from __future__ import annotations

import time

import numpy as np
import pytest

from lsm_ros.worker import InferenceWorker, PairJob, PairQueue


def test_queue_drops_oldest_and_counts():
    q = PairQueue(3)
    dropped = [q.put(i) for i in range(5)]
    assert dropped == [0, 0, 0, 1, 1]
    assert (q.dropped, q.put_count, len(q)) == (2, 5, 3)
    assert q.get_batch(10, timeout=0) == [2, 3, 4]  # newest kept, in order


def _job(view0, view1):
    """A mono keyframe pair: images and headers carry the frame numbers, stamps = frames."""
    return PairJob(images=(f"image {view0}", f"image {view1}"), headers=(view0, view1),
                   stamps=(float(view0), float(view1)))


def test_mono_queue_relinks_the_successor_of_a_dropped_keyframe_pair():
    q = PairQueue(1, relink_chain=True)
    q.put(_job(1, 0))
    assert q.get_batch(1, timeout=0)[0].stamps == (1.0, 0.0)  # reconstructed: 1 is placed
    q.put(_job(2, 1))
    assert q.put(_job(3, 2)) == 1  # (2, 1) dropped: (3, 2) could never be placed ...
    (job,) = q.get_batch(1, timeout=0)
    assert job.stamps == (3.0, 1.0) and job.images == ("image 3", "image 1")  # ... so (3, 1)
    assert job.headers == (3, 1) and (q.dropped, q.relinked) == (1, 1)
    # a longer queue: the dropped pair's successor waits behind it
    q = PairQueue(2, relink_chain=True)
    for k in (1, 2, 3):
        q.put(_job(k, k - 1))
    assert [j.stamps for j in q.get_batch(5, timeout=0)] == [(2.0, 0.0), (3.0, 2.0)]
    # pair mode (no relinking): the dropped pair is simply gone
    q = PairQueue(1)
    q.put(_job(2, 1))
    q.put(_job(3, 2))
    assert q.get_batch(1, timeout=0)[0].stamps == (3.0, 2.0) and q.relinked == 0


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


def _wait(cond, timeout=30.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end and not cond():
        time.sleep(0.01)
    return cond()


@pytest.fixture(scope="module")
def perception():
    """A real Perception: the tiny network with random weights (seed 0)."""
    import torch

    from lsm.model.lsm import LSM
    from lsm.perception import Perception

    torch.manual_seed(0)
    return Perception(LSM.from_config("tiny"))


class RecordingSink:
    """An OutputSink that keeps what it is given, in order; ``wanted`` images on request."""

    def __init__(self, wanted=()):
        self.wanted = tuple(wanted)
        self.events = []

    def wanted_images(self):
        return self.wanted

    def publish_cloud(self, job, rec, cloud):
        self.events.append(("cloud", job.headers[0], rec, cloud))

    def publish_images(self, job, rec, images):
        self.events.append(("images", job.headers[0], rec, images))


def _pair_job(i, size=(48, 64)):
    rng = np.random.default_rng(i)
    img = rng.integers(0, 255, size + (3,), dtype=np.uint8)
    return PairJob(images=(img, img[:, ::-1].copy()), headers=(i, i))


def test_worker_publishes_every_cloud_of_a_batch_before_any_image(perception):
    from lsm.specs import OutputSpec

    q = PairQueue(10)
    sink = RecordingSink(wanted=("labels", "depth"))
    spec = OutputSpec(("floor", "wall"), 0.0, 4, 0)
    w = InferenceWorker(q, lambda: perception, sink, spec, batch_size=2)
    for i in range(2):  # queued before the start: one batch of two
        q.put(_pair_job(i))
    w.start()
    try:
        assert _wait(lambda: len(sink.events) == 4)
    finally:
        w.stop()
    assert [(kind, i) for kind, i, _, _ in sink.events] == [
        ("cloud", 0), ("cloud", 1), ("images", 0), ("images", 1)]
    _, _, rec, cloud = sink.events[0]
    assert cloud.label_names == ("floor", "wall") and len(cloud.points) == 2 * 32 * 32
    images = sink.events[2][3]
    assert images.label_ids.shape == (48, 64) and images.depth.shape == (48, 64)
    assert images.rendered is None and images.label_color is None  # not wanted: not computed
    assert sink.events[2][2] is rec and w.processed == 2 and w.batches == 1


def test_worker_computes_no_image_nobody_wants_and_follows_configure(perception):
    from lsm.specs import OutputSpec

    q = PairQueue(10)
    sink = RecordingSink(wanted=())
    w = InferenceWorker(q, lambda: perception, sink, OutputSpec(("floor",), 0.0, 8, 0))
    w.start()
    try:
        assert _wait(lambda: w.state == "ready")
        q.put(_pair_job(0))
        assert _wait(lambda: len(sink.events) == 1)
        w.configure(spec=OutputSpec(("floor", "sofa"), 0.0, 16, 0))
        q.put(_pair_job(1))
        assert _wait(lambda: len(sink.events) == 2)
    finally:
        w.stop()
    assert [e[0] for e in sink.events] == ["cloud", "cloud"]
    assert len(sink.events[0][3].points) == 2 * 16 * 16
    assert sink.events[1][3].label_names == ("floor", "sofa")
    assert len(sink.events[1][3].points) == 2 * 8 * 8


def test_worker_survives_a_failing_batch_and_reports_it(perception):
    from lsm.specs import OutputSpec

    q = PairQueue(5)
    logs = []
    sink = RecordingSink()
    w = InferenceWorker(q, lambda: perception, sink, OutputSpec(("floor",)),
                        log=lambda level, text: logs.append((level, text)))
    w.start()
    try:
        bad = PairJob(images=(np.zeros((4, 4), np.uint8), np.zeros((4, 4), np.uint8)),
                      headers=(0, 0))
        q.put(bad)
        q.put(_pair_job(1))
        assert _wait(lambda: len(sink.events) == 1)
        assert sink.events[0][1] == 1
        assert w.failures == 1
        errors = [text for level, text in logs if level == "error"]
        assert "RGB image of shape" in errors[0]
    finally:
        w.stop()


def test_setup_failure_is_reported_not_raised():
    def setup():
        raise FileNotFoundError("no such checkpoint")

    logs = []
    w = InferenceWorker(PairQueue(1), setup, RecordingSink(),
                        log=lambda level, text: logs.append(text))
    w.start()
    assert _wait(lambda: w.state == "failed")
    assert "no such checkpoint" in w.error and "no such checkpoint" in logs[0]
