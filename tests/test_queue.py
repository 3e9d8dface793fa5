"""FileSystemQueue semantics, for every backend."""
from __future__ import annotations

import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lazystream
import lazystream.queue as lq
from lazystream import FileSystemQueue, session
from lazystream.queue import emit, read_session, tail


def test_enqueue_dequeue_in_order_and_removes(backend_kind):
    q = FileSystemQueue()
    for item in ["a", "b", "a"]:
        q.enqueue(item)
    assert q.size() == 3
    assert q.peek() == "a"
    assert q.dequeue() == ["a", "b", "a"]
    assert q.dequeue() == []
    assert q.size() == 0
    assert q.peek() is None


def test_dequeue_limit_takes_a_prefix(backend_kind):
    q = FileSystemQueue()
    for i in range(5):
        q.enqueue(str(i))
    assert q.dequeue(limit=2) == ["0", "1"]
    assert q.dequeue(2) == ["2", "3"]
    assert q.dequeue() == ["4"]


def test_json_values_round_trip(backend_kind):
    q = FileSystemQueue.get_instance("values")
    values = [{"a": [1, 2.5, None, True]}, [1, "x"], 3, None, False, "s"]
    for v in values:
        q.enqueue(v)
    assert q.dequeue() == values


def test_get_instance_is_one_object_per_name_and_callable_on_instances():
    assert FileSystemQueue() is FileSystemQueue()
    assert FileSystemQueue().get_instance("lazy_trace") is FileSystemQueue.get_instance("lazy_trace")
    assert FileSystemQueue.get_instance("x") is not FileSystemQueue.get_instance("y")


def test_queues_and_sessions_are_separate(backend_kind):
    a, b = FileSystemQueue.get_instance("qa"), FileSystemQueue.get_instance("qb")
    a.enqueue("for-a")
    b.enqueue("for-b")
    a.enqueue("for-a-other-session", sid="other")
    assert a.dequeue() == ["for-a"]
    assert b.dequeue() == ["for-b"]
    assert a.dequeue(sid="other") == ["for-a-other-session"]


def test_clear_empties_but_keeps_history_readable(backend_kind):
    q = FileSystemQueue()
    q.enqueue("x")
    q.enqueue("y")
    q.clear()
    assert q.dequeue() == []
    assert [e.data for e in q.read()] == ["x", "y"]


def test_read_is_non_destructive_and_resumes_after_seq(backend_kind):
    q = FileSystemQueue()
    for t in ["t1", "t2", "t3"]:
        q.enqueue(t)
    events = q.read()
    assert [e.data for e in events] == ["t1", "t2", "t3"]
    assert [e.kind for e in events] == ["text"] * 3
    assert events[0].seq < events[1].seq < events[2].seq
    assert [e.data for e in q.read(after=events[0].seq)] == ["t2", "t3"]
    assert q.dequeue() == ["t1", "t2", "t3"]   # reading did not consume


def test_a_batch_of_several_sessions_is_cached_with_the_seqs_the_store_gave(backend_kind):
    """One store of rows of three sessions with different histories: each row read from
    this process's cache has the seq the store gave it (on Redis, seqs are per session:
    this batch's are 1, 5, 3, whose first and last are as far apart as if they grew by
    one a row), and a dequeue after the store resumes exactly after what was taken before."""
    q = FileSystemQueue()
    for i in range(4):
        q.enqueue(f"a{i}", sid="mix-a")
    for i in range(2):
        q.enqueue(f"c{i}", sid="mix-c")
    assert q.dequeue(sid="mix-a") == ["a0", "a1", "a2", "a3"]
    assert q.dequeue(sid="mix-c") == ["c0", "c1"]
    lq.flush()
    hub = lq.backend()
    with hub._io:   # as if a store were running: the rows below wait for it, in one batch
        hub._storing = True
    for sid, item in [("mix-b", "b0"), ("mix-a", "a4"), ("mix-c", "c2")]:
        q.enqueue(item, sid=sid)
    assert q.dequeue(sid="mix-a") == ["a4"]   # taken before it is stored
    with hub._io:
        hub._storing = False
        hub._done.notify_all()
    lq.flush()
    for sid, item in [("mix-a", "a5"), ("mix-b", "b1"), ("mix-c", "c3")]:
        q.enqueue(item, sid=sid)
    store = hub.backend
    for sid in ("mix-a", "mix-b", "mix-c"):
        cached = [(e.seq, e.data) for e in q.read(sid=sid)]
        assert cached == [(e.seq, e.data) for e in store.read(sid, None, 0, None)], sid
    assert q.dequeue(sid="mix-a") == ["a5"]
    assert q.dequeue(sid="mix-b") == ["b0", "b1"]
    assert q.dequeue(sid="mix-c") == ["c2", "c3"]
    lq.reset()   # a new hub: the dequeue positions come back from the store
    assert [q.dequeue(sid=s) for s in ("mix-a", "mix-b", "mix-c")] == [[], [], []]


@pytest.mark.parametrize("backend_kind", ["sqlite", "redis"], indirect=True)   # (stores a new hub finds again)
def test_a_reader_that_caches_no_session_persists_its_dequeue_position(backend_kind):
    """A process that only paged a long backlog through the store (no session cached)
    persists the moved dequeue cursor: a store of cursors alone must not fail for want
    of a cache to size (it once divided by the number of cached sessions)."""
    q = FileSystemQueue()
    for i in range(300):
        q.enqueue(i, sid="backlog")
    lq.flush()
    lq.reset()   # a new process, in effect: nothing cached
    hub = lq.backend()
    assert q.dequeue(sid="backlog", limit=250) == list(range(250))
    assert hub._tails == {}
    assert hub._store([], hub._take_dirty(time.monotonic(), force=True)) is True
    assert hub._failure is None
    lq.reset()
    assert q.dequeue(sid="backlog") == list(range(250, 300))


def test_a_reader_that_keeps_up_gets_each_item_once_across_stores(backend_kind):
    """A dequeue reader of one queue of a session, a second queue beside it, and stores
    between the reads at every point: items taken before their store, items stored
    before they are taken, both in one read; each arrives once, in order, and a new hub
    (another process, in effect) finds only what was not taken."""
    x, y = FileSystemQueue.get_instance("keep-x"), FileSystemQueue.get_instance("keep-y")
    sid, got = "keep-up", []
    x.enqueue("x1", sid=sid)
    got += x.dequeue(sid=sid)            # taken before its store
    lq.flush()
    y.enqueue("y1", sid=sid)
    x.enqueue("x2", sid=sid)
    got += x.dequeue(sid=sid)            # the cache holds nothing new of keep-x: pending only
    lq.flush()
    x.enqueue("x3", sid=sid)
    lq.flush()                           # stored before it is taken
    x.enqueue("x4", sid=sid)             # and one pending behind it
    got += x.dequeue(sid=sid, limit=1)
    got += x.dequeue(sid=sid)
    x.enqueue("x5", sid=sid)
    x.enqueue("x6", sid=sid)
    got += x.dequeue(sid=sid, limit=1)   # the rest stays for the next read
    lq.flush()
    assert got == ["x1", "x2", "x3", "x4", "x5"]
    if backend_kind != "memory":          # (the memory store lives and dies with its hub)
        lq.reset()
    assert x.dequeue(sid=sid) == ["x6"]
    assert y.dequeue(sid=sid) == ["y1"]


def test_read_many_returns_each_sessions_stored_rows_after_its_own_seq(backend_kind):
    """The backend's batch read (what a hub reads when another process names sessions):
    encoded rows, each session after its own seq, at most ``limit`` each."""
    for i in range(3):
        FileSystemQueue().enqueue(f"a{i}", sid="rm-a")
    FileSystemQueue.get_instance("other").enqueue({"b": [1, "二"]}, sid="rm-b")
    lq.backend().sync()
    a = [e.seq for e in lq.read_session("rm-a")]
    (b,) = [e.seq for e in lq.read_session("rm-b")]
    rows = lq.backend().backend.read_many({"rm-a": a[0], "rm-b": 0, "rm-none": 0}, 1)
    assert {sid: [r[:5] for r in got] for sid, got in rows.items()} == {
        "rm-a": [(a[1], "lazy_stream", "text", "[]", '"a1"')],
        "rm-b": [(b, "other", "item", "[]", '{"b": [1, "二"]}')],
        "rm-none": [],
    }
    assert all(type(r[5]) is float for got in rows.values() for r in got)


def test_equal_tokens_stay_distinct_events(backend_kind):
    q = FileSystemQueue()
    for _ in range(3):
        q.enqueue(" the")
    events = q.read()
    assert len({e.seq for e in events}) == 3


def test_get_times_out_with_empty_list(backend_kind):
    q = FileSystemQueue.get_instance("idle")
    start = time.monotonic()
    assert q.get(timeout=0.05) == []
    assert time.monotonic() - start >= 0.05


def test_get_without_timeout_wakes_when_an_item_arrives(backend_kind):
    q = FileSystemQueue.get_instance("wake")
    sid = lazystream.current_sid()
    got = []
    reader = threading.Thread(target=lambda: got.extend(q.get(sid=sid)))   # waits for ever
    reader.start()
    q.enqueue("ping", sid=sid)
    reader.join(20)
    assert not reader.is_alive(), "the blocked reader was never woken"
    assert got == ["ping"]


def test_non_json_item_raises_type_error_and_enqueues_nothing(backend_kind):
    q = FileSystemQueue()
    q.enqueue("kept")
    with pytest.raises(TypeError, match="object"):
        q.enqueue(object())
    with pytest.raises(TypeError, match="set"):
        q.enqueue({1, 2})
    assert q.dequeue() == ["kept"]


@pytest.mark.parametrize("bad", ["lone \ud800 surrogate", float("nan"), {"x": float("inf")}, [-float("inf")]])
def test_what_json_cannot_hold_is_rejected_and_the_store_keeps_working(backend_kind, bad):
    q = FileSystemQueue()
    q.enqueue("kept")
    with pytest.raises(ValueError, match="cannot be stored as JSON"):
        q.enqueue(bad)
    q.enqueue("after")
    assert q.dequeue() == ["kept", "after"]


def test_a_trace_of_what_json_cannot_hold_is_written_as_its_repr(backend_kind):
    class Odd(lazystream.ModuleBase):
        def forward(self, x):
            return float("nan")

    with session() as sid:
        Odd(return_trace=True)("in \ud800")
    trace = read_session(sid)[0]
    assert (trace.value, trace.data["output"], trace.data["input"]) == ("nan", "nan", "in \\ud800")


def test_empty_queue_name_is_rejected():
    with pytest.raises(ValueError, match="non-empty"):
        FileSystemQueue.get_instance("")
    with pytest.raises(TypeError, match="int"):
        FileSystemQueue.get_instance(3)


@pytest.mark.parametrize("name", ["队列", "it's", 'q"uote', "x'; DROP TABLE events; --", "a b", "%_"])
def test_any_other_name_is_its_own_queue(backend_kind, name):
    q = FileSystemQueue.get_instance(name)
    q.enqueue(name)
    assert FileSystemQueue.get_instance("x").dequeue() == []
    assert q.dequeue() == [name]


def test_bad_limit_is_rejected(backend_kind):
    with pytest.raises(ValueError, match="limit"):
        FileSystemQueue().dequeue(limit=0)


def test_ten_megabyte_item_round_trips(backend_kind):
    big = "x" * (10 * 1024 * 1024)
    q = FileSystemQueue.get_instance("big")
    q.enqueue(big)
    assert q.dequeue() == [big]


def test_nul_emoji_and_cjk_round_trip_and_stay_readable_in_the_file(fresh_home):
    text = "nul\x00 emoji 😀 中文 𝄞"
    q = FileSystemQueue.get_instance("unicode")
    q.enqueue(text)
    assert q.dequeue() == [text]
    lazystream.queue.backend().close()
    raw = b"".join(p.read_bytes() for p in fresh_home.iterdir() if p.name.startswith("queue.db") and p.is_file())
    assert "中文".encode() in raw and "😀".encode() in raw
    assert b"\\u4e2d" not in raw


def test_unwritable_home_names_the_path_and_variable(monkeypatch, tmp_path):
    import lazystream.queue as lq
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("LAZYSTREAM_HOME", str(blocker / "home"))
    monkeypatch.setenv("LAZYSTREAM_QUEUE", "sqlite")
    lq.reset()
    try:
        with pytest.raises(lq.StorageError, match=r"LAZYSTREAM_HOME=.*a-file/home"):
            FileSystemQueue().enqueue("x")
    finally:
        lq.reset()


def test_corrupted_database_names_the_file(monkeypatch, tmp_path):
    import lazystream.queue as lq
    home = tmp_path / "home"
    home.mkdir()
    (home / "queue.db").write_bytes(b"this is not a sqlite database" * 100)
    monkeypatch.setenv("LAZYSTREAM_HOME", str(home))
    monkeypatch.setenv("LAZYSTREAM_QUEUE", "sqlite")
    lq.reset()
    try:
        with pytest.raises(lq.StorageError, match=r"queue\.db is corrupted"):
            FileSystemQueue().enqueue("x")
    finally:
        lq.reset()


def test_unknown_backend_is_named(monkeypatch):
    import lazystream.queue as lq
    monkeypatch.setenv("LAZYSTREAM_QUEUE", "postgres")
    lq.reset()
    try:
        with pytest.raises(ValueError, match="'postgres'.*'sqlite' or 'memory', or redis://"):
            FileSystemQueue().enqueue("x")
    finally:
        monkeypatch.delenv("LAZYSTREAM_QUEUE")
        lq.reset()


def test_home_and_file_permissions(fresh_home):
    FileSystemQueue().enqueue("x")
    FileSystemQueue().dequeue()
    assert fresh_home.stat().st_mode & 0o777 == 0o700
    assert (fresh_home / "queue.db").stat().st_mode & 0o777 == 0o600


def test_session_block_ends_with_exactly_one_terminal_event(backend_kind):
    with session() as sid:
        FileSystemQueue().enqueue("a")
        emit("status", "working")
    kinds = [(e.kind, e.data) for e in read_session(sid)]
    assert kinds == [("text", "a"), ("status", "working"), ("end", {"status": "ok"})]


def test_failed_session_ends_with_error_status(backend_kind):
    with pytest.raises(KeyError):
        with session() as sid:
            raise KeyError("boom")
    (error, end) = read_session(sid)   # the failure itself, then the end
    assert (error.kind, error.data) == ("error", {"type": "KeyError", "message": "'boom'"})
    assert end.kind == "end"
    assert end.data == {"status": "error", "error": {"type": "KeyError", "message": "'boom'"}}


def test_tail_yields_through_the_end_event(backend_kind):
    with session() as sid:
        for t in ["x", "y"]:
            FileSystemQueue().enqueue(t)
    assert [(e.kind, e.data) for e in tail(sid)] == [("text", "x"), ("text", "y"), ("end", {"status": "ok"})]


def test_tail_resumes_after_a_seq(backend_kind):
    with session() as sid:
        for t in ["x", "y", "z"]:
            FileSystemQueue().enqueue(t)
    first = read_session(sid)[0]
    assert [e.data for e in tail(sid, after=first.seq)] == ["y", "z", {"status": "ok"}]


def test_tail_times_out_instead_of_hanging(backend_kind):
    FileSystemQueue().enqueue("only", sid="never-ends")
    it = tail("never-ends", timeout=0.2)
    assert next(it).data == "only"
    with pytest.raises(TimeoutError, match="never-ends"):
        next(it)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(st.text(max_size=5), max_size=30), min_size=1, max_size=6))
def test_concurrent_producers_lose_duplicate_and_reorder_nothing(backend_kind, per_producer):
    """Each producer's items arrive complete, once, in its order, in its own session."""
    sids = [f"p{i}-{time.monotonic_ns()}" for i in range(len(per_producer))]
    q = FileSystemQueue.get_instance("hyp")
    start = threading.Barrier(len(per_producer))

    def produce(sid, items):
        start.wait(5)
        for item in items:
            q.enqueue(item, sid=sid)

    threads = [threading.Thread(target=produce, args=a) for a in zip(sids, per_producer)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for sid, items in zip(sids, per_producer):
        assert q.dequeue(sid=sid) == items


def test_concurrent_readers_of_one_queue_never_share_an_item(backend_kind):
    q = FileSystemQueue.get_instance("shared")
    n = 2000
    for i in range(n):
        q.enqueue(i, sid="shared-sid")
    got: list[list[int]] = [[] for _ in range(4)]

    def consume(k):
        while items := q.dequeue(limit=7, sid="shared-sid"):
            got[k].extend(items)

    threads = [threading.Thread(target=consume, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    merged = sorted(x for part in got for x in part)
    assert merged == list(range(n))
    for part in got:
        assert part == sorted(part)


def test_a_store_of_the_previous_layout_is_started_over(tmp_path, monkeypatch):
    """A queue.db written by an older lazystream (AUTOINCREMENT events: a sqlite_sequence
    table, which SQLite refuses to drop) opens, empty, in the current layout."""
    import sqlite3

    import lazystream.queue as q
    home = tmp_path / "old-home"
    home.mkdir()
    conn = sqlite3.connect(home / "queue.db")
    conn.executescript("CREATE TABLE events (seq INTEGER PRIMARY KEY AUTOINCREMENT, sid TEXT);"
                       "INSERT INTO events (sid) VALUES ('old');")
    conn.close()
    monkeypatch.setenv("LAZYSTREAM_HOME", str(home))
    monkeypatch.setenv("LAZYSTREAM_QUEUE", "sqlite")
    q.reset()
    try:
        with session() as sid:
            FileSystemQueue().enqueue("new")
        assert [e.data for e in read_session(sid)] == ["new", {"status": "ok"}]
    finally:
        q.reset()


def test_a_store_elsewhere_that_names_a_session_wakes_its_readers_of_every_queue(backend_kind):
    """Another process stored in a session without saying which queues: a reader of one of
    its queues, awaiting or about to wait, is woken at once, not at its timeout."""
    import asyncio

    hub = lq.backend()
    with session() as sid:
        key = (sid, "lazy_stream")
        hub.wait(hub.generation(key), 0, key)            # start hearing other processes
        token = hub.generation(key)
        hub._external([sid])
        assert hub.generation(key) != token             # between check and wait: re-check

        async def awaiting() -> None:
            waiting = asyncio.ensure_future(hub.wait_async(hub.generation(key), 30, key))
            await asyncio.sleep(0)                      # it now awaits the hub
            threading.Thread(target=hub._external, args=([sid],)).start()
            await asyncio.wait_for(waiting, 10)         # woken, not timed out

        asyncio.run(awaiting())


def test_a_burst_after_a_slow_store_is_batched_not_stored_a_row_at_a_time(fresh_home, monkeypatch):
    """While another process may read, a lone row after a quiet spell is stored at once.
    A row right after a store is no such row, even when that store took longer than the
    linger: a burst is stored in batches, not as a lone row before every batch (one more
    round trip and one more message to readers elsewhere each)."""
    hub = lq.backend()
    monkeypatch.setattr(hub.backend, "shared", lambda: True)   # as when a reader elsewhere follows
    q = FileSystemQueue("burst")
    q.enqueue("first", sid="burst")
    hub.sync("burst")   # (the hub now knows another process may read)
    sizes: list[int] = []
    real = hub.backend.store

    def slow(rows, cursors, owner):
        if rows:
            sizes.append(len(rows))
            time.sleep(0.01)   # a store slower than the linger (a busy store, a far one)
        return real(rows, cursors, owner)

    monkeypatch.setattr(hub.backend, "store", slow)
    for i in range(2000):
        q.enqueue(f"tok{i}", sid="burst")
    hub.sync("burst")
    assert sum(sizes) == 2000
    # Before the fix every row went alone. The first batch (after the quiet spell) and
    # the last (what sync found left) may hold one row; a producer thread preempted for
    # a linger may leave the writer one more now and then, not one batch in ten.
    assert sizes[1:-1].count(1) <= len(sizes) // 10, sizes
    assert [e.data for e in read_session("burst")] == ["first"] + [f"tok{i}" for i in range(2000)]
