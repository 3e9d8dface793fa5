"""Named, per-session queues of events: ``FileSystemQueue`` and its backends.

``emit`` writes one event; ``FileSystemQueue`` gives the seed's queue methods;
``read_session`` and ``tail`` read a whole session for the richer readers; ``flush``
waits until what this process wrote is stored. ``Backend`` is the storage interface a
new backend implements (``_backend.py``); the hub above it (``_hub.py``) batches,
caches and wakes.
"""
from ._backend import Backend, QueueBusy, StorageError
from ._front import (
    FileSystemQueue,
    LiveReader,
    ProducerGone,
    SessionUnknown,
    TailReader,
    aread_session,
    backend,
    emit,
    flush,
    has_unread,
    producer_gone,
    prune,
    read_session,
    reset,
    sessions,
    tail,
    wake,
    work_started,
)
from ._hub import ANY
from ._timeouts import add_timeout

__all__ = ["ANY", "Backend", "FileSystemQueue", "LiveReader", "ProducerGone", "QueueBusy", "SessionUnknown",
           "StorageError", "TailReader", "add_timeout", "aread_session", "backend", "emit", "flush", "has_unread",
           "producer_gone", "prune", "read_session", "reset", "sessions", "tail", "wake", "work_started"]
