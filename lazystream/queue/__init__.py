"""Named, per-session queues of events: ``FileSystemQueue`` and its backends.

``emit`` writes one event; ``FileSystemQueue`` gives the seed's queue methods;
``read_session`` and ``tail`` read a whole session for the richer readers.
"""
from ._backend import Backend, StorageError
from ._front import FileSystemQueue, ProducerGone, backend, emit, has_unread, producer_gone, prune, read_session, reset, tail

__all__ = ["FileSystemQueue", "emit", "read_session", "tail", "prune", "backend", "reset", "has_unread", "producer_gone",
           "Backend", "StorageError", "ProducerGone"]
