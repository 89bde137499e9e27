"""rosbag2 files (sqlite3 or MCAP) read and written with the pure-Python ``rosbags`` library.

No ``rosbag2_py`` or ``ros2 bag`` is needed.  Messages stay CDR-serialised bytes end to end:
what is read from a bag is published as raw bytes, what a raw subscription receives is written
as is.  Type definitions (for the bag's ``metadata.yaml`` and MCAP schemas) come from the
ROS 2 Kilted type store of ``rosbags``; a type missing there (a custom package) is registered
from its ``.msg`` file found in an installed ``share/<package>/msg`` folder.

Timestamps are integer nanoseconds: the bag's receive time of each message (the header stamp
inside the bytes is never changed).
"""
from __future__ import annotations

import functools
import importlib
import os
import queue
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional, Sequence

from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}


class BagError(ValueError):
    """A bag cannot be read or written as asked (the message says why)."""


@dataclass(frozen=True)
class BagMessage:
    """One message of a bag: topic, ROS type (``pkg/msg/Name``), receive time (ns), CDR bytes."""

    topic: str
    msgtype: str
    timestamp: int
    data: bytes


@functools.lru_cache(maxsize=1)
def typestore():
    """The rosbags type store (ROS 2 Kilted definitions), shared by readers and writers."""
    return get_typestore(Stores.ROS2_KILTED)


def _share_dirs() -> List[Path]:
    dirs = [Path(p) / "share" for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    dirs.append(Path(sys.prefix) / "share")
    return dirs


def ensure_type(msgtype: str):
    """Make ``msgtype`` (``pkg/msg/Name``) known to :func:`typestore`; returns the store.

    Raises BagError when it is neither built in nor found as ``share/pkg/msg/Name.msg``.
    """
    store = typestore()
    if msgtype in store.fielddefs:
        return store
    pkg, kind, name = _split_type(msgtype)
    for share in _share_dirs():
        path = share / pkg / kind / f"{name}.msg"
        if path.is_file():
            store.register(get_types_from_msg(path.read_text(), msgtype))
            return store
    raise BagError(f"message type {msgtype!r} is unknown to rosbags and no {pkg}/{kind}/{name}.msg "
                   f"was found under {', '.join(str(d) for d in _share_dirs())}")


def _split_type(msgtype: str):
    parts = msgtype.split("/")
    if len(parts) != 3 or not all(parts):
        raise BagError(f"message type {msgtype!r} is not of the form 'package/msg/Name'")
    return parts


def message_class(msgtype: str):
    """The rclpy message class of ``pkg/msg/Name`` (imports ``pkg.msg``)."""
    pkg, kind, name = _split_type(msgtype)
    try:
        return getattr(importlib.import_module(f"{pkg}.{kind}"), name)
    except (ImportError, AttributeError) as exc:
        raise BagError(f"message type {msgtype!r} is not installed for rclpy: {exc}") from exc


def bag_topics(path: os.PathLike) -> Dict[str, str]:
    """Topic -> message type of the bag folder ``path``."""
    with _open_reader(path) as reader:
        return {c.topic: c.msgtype for c in reader.connections}


def latched_topics(path: os.PathLike) -> List[str]:
    """Topics of the bag recorded from a TRANSIENT_LOCAL (latched) publisher, by the offered
    QoS rosbag2 stores, and ``/tf_static`` always (tf2 listeners subscribe to it latched)."""
    out = []
    with _open_reader(path) as reader:
        for c in reader.connections:
            qos = str(getattr(getattr(c, "ext", None), "offered_qos_profiles", "") or "")
            if c.topic == "/tf_static" or "durability: 1" in qos or "transient_local" in qos:
                out.append(c.topic)
    return sorted(set(out))


def _open_reader(path: os.PathLike) -> Reader:
    path = Path(path)
    if not (path / "metadata.yaml").is_file():
        raise BagError(f"{path} is not a rosbag2 folder (no metadata.yaml)")
    return Reader(path)


def read_bag(path: os.PathLike, topics: Optional[Iterable[str]] = None) -> Iterator[BagMessage]:
    """Messages of the bag (all topics, or only ``topics``) in receive-time order."""
    with _open_reader(path) as reader:
        conns = reader.connections
        if topics is not None:
            wanted = set(topics)
            missing = wanted - {c.topic for c in conns}
            if missing:
                raise BagError(f"topics {sorted(missing)} are not in {path}; it has "
                               f"{sorted({c.topic for c in conns})}")
            conns = [c for c in conns if c.topic in wanted]
        for conn, timestamp, data in reader.messages(connections=conns):
            yield BagMessage(conn.topic, conn.msgtype, int(timestamp), bytes(data))


def deserialize(message: BagMessage):
    """The rosbags (dataclass) form of a message, e.g. for tests and inspection."""
    return ensure_type(message.msgtype).deserialize_cdr(message.data, message.msgtype)


class BagWriter:
    """A rosbag2 folder being written; topics are added on first use.  Not thread-safe."""

    def __init__(self, path: os.PathLike, storage: str = "mcap"):
        if storage not in STORAGES:
            raise BagError(f"storage {storage!r} is not one of {sorted(STORAGES)}")
        self.path = Path(path)
        if self.path.exists():
            raise BagError(f"{self.path} already exists; rosbag2 writes a new folder")
        self._writer = Writer(self.path, version=Writer.VERSION_LATEST,
                              storage_plugin=STORAGES[storage])
        self._writer.open()
        self._connections: Dict[str, object] = {}
        self.counts: Dict[str, int] = {}

    def add_topic(self, topic: str, msgtype: str) -> None:
        if topic in self._connections:
            return
        self._connections[topic] = self._writer.add_connection(
            topic, msgtype, typestore=ensure_type(msgtype))
        self.counts[topic] = 0

    def write(self, topic: str, msgtype: str, timestamp: int, data: bytes) -> None:
        self.add_topic(topic, msgtype)
        self._writer.write(self._connections[topic], int(timestamp), data)
        self.counts[topic] += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> "BagWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class ThreadedBagWriter:
    """:class:`BagWriter` owned by one background thread (sqlite3 objects must stay in the
    thread that made them); :meth:`write` only queues, so ROS callbacks never block on disk.
    Messages are written in call order.  Errors of the writer thread are re-raised by
    :meth:`close`."""

    def __init__(self, path: os.PathLike, storage: str = "mcap"):
        if storage not in STORAGES:
            raise BagError(f"storage {storage!r} is not one of {sorted(STORAGES)}")
        if Path(path).exists():
            raise BagError(f"{path} already exists; rosbag2 writes a new folder")
        self.path = Path(path)
        self._queue: "queue.Queue" = queue.Queue()
        self._lock = threading.Lock()
        self._counts: Dict[str, int] = {}
        self._error: Optional[BaseException] = None
        self._opened = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(storage,), daemon=True)
        self._thread.start()
        self._opened.wait()
        if self._error is not None:
            raise self._error

    def _run(self, storage: str) -> None:
        try:
            writer = BagWriter(self.path, storage)
        except BaseException as exc:  # reported by __init__
            self._error = exc
            self._opened.set()
            return
        self._opened.set()
        try:
            while True:
                item = self._queue.get()
                if item is None:
                    break
                if self._error is None:
                    try:
                        writer.write(*item)
                    except BaseException as exc:
                        self._error = exc
        finally:
            writer.close()

    @property
    def counts(self) -> Dict[str, int]:
        """Messages accepted per topic (queued or written)."""
        with self._lock:
            return dict(self._counts)

    def add_topic(self, topic: str, msgtype: str) -> None:
        """Check that the type can be stored (BagError if not); the topic shows in counts."""
        ensure_type(msgtype)
        with self._lock:
            self._counts.setdefault(topic, 0)

    def write(self, topic: str, msgtype: str, timestamp: int, data: bytes) -> None:
        with self._lock:
            self._counts[topic] = self._counts.get(topic, 0) + 1
        self._queue.put((topic, msgtype, int(timestamp), data))

    def close(self) -> None:
        """Write what is queued, finish the bag; raises the writer thread's error if any."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        if self._error is not None:
            raise BagError(f"writing {self.path} failed: {self._error}") from self._error


def write_bag(path: os.PathLike, messages: Sequence[BagMessage], storage: str = "mcap") -> Path:
    """Write ``messages`` (in the given order) to a new bag folder; returns its path."""
    with BagWriter(path, storage) as writer:
        for m in messages:
            writer.write(m.topic, m.msgtype, m.timestamp, m.data)
    return Path(path)


def serialize(msg, msgtype: str) -> bytes:
    """CDR bytes of a rosbags dataclass message (``typestore().types[msgtype](...)``)."""
    return bytes(ensure_type(msgtype).serialize_cdr(msg, msgtype))
