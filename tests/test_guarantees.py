"""The queue's guarantees (docs/guarantees.md): what is refused at the door, what is
stored when, what readers see after crashes, and what the data path costs per token."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import lazystream
import lazystream.queue as lq
from lazystream import FileSystemQueue, session
from lazystream.queue import ProducerGone, QueueBusy, SessionUnknown, StorageError, emit, read_session, tail


def _child(code: str, home, **env: str) -> subprocess.Popen:
    full = dict(os.environ, LAZYSTREAM_HOME=str(home), LAZYSTREAM_QUEUE="sqlite", **env)
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], env=full, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


# --- refused at the door ----------------------------------------------------------------

BAD_SIDS = ["victim\0x", "", "\ud800", "x" * 257]


@pytest.mark.parametrize("bad", BAD_SIDS)
def test_a_sid_that_cannot_be_stored_exactly_is_refused_everywhere(backend_kind, bad):
    q = FileSystemQueue()
    calls = [lambda: session(bad).__enter__(), lambda: q.enqueue("x", sid=bad), lambda: q.dequeue(sid=bad),
             lambda: q.get(timeout=0, sid=bad), lambda: q.peek(sid=bad), lambda: q.size(sid=bad),
             lambda: q.clear(sid=bad), lambda: q.read(sid=bad), lambda: emit("status", "x", sid=bad),
             lambda: read_session(bad), lambda: next(tail(bad)), lambda: lq.producer_gone(bad),
             lambda: FileSystemQueue.get_instance(bad or "\0")]
    for call in calls:
        with pytest.raises(ValueError, match="NUL"):
            call()


def test_a_nul_in_a_sid_never_reaches_another_session(backend_kind):
    """The old batched insert cut keys at the NUL: 999 of 1,000 items went to 'victim'."""
    q = FileSystemQueue()
    with pytest.raises(ValueError):
        with session("victim\0x"):
            pass
    for i in range(1000):
        with pytest.raises(ValueError, match="victim"):
            q.enqueue(i, sid="victim\0x")
    assert q.dequeue(sid="victim") == []


def test_session_ids_carry_128_random_bits():
    ids = []
    for _ in range(200):
        with session() as sid:
            ids.append(sid)
    assert all(len(s) == 32 and int(s, 16) >= 0 for s in ids)
    assert len(set(ids)) == 200
    # not a counter under a fixed prefix: consecutive ids share no long prefix or step
    assert max(len(os.path.commonprefix([a, b])) for a, b in zip(ids, ids[1:])) < 12
    assert len({int(b, 16) - int(a, 16) for a, b in zip(ids, ids[1:])}) == 199


def test_an_empty_sid_is_refused_not_taken_as_the_callers_own(backend_kind):
    q = FileSystemQueue()
    with pytest.raises(ValueError, match="sid=''"):
        q.enqueue("x", sid="")
    assert q.dequeue() == []


@pytest.mark.parametrize("value, words", [
    ({1: "a"}, r"dict key 1 is a int.*come back as \"1\".*str\(\)"),
    (10 ** 5000, r"more than 4,000 digits.*10\*\*5000.*as a str"),
], ids=["int-key", "huge-int"])
def test_values_that_would_not_come_back_as_they_went_in_are_refused(backend_kind, value, words):
    q = FileSystemQueue()
    with pytest.raises(ValueError, match=words):
        q.enqueue(value)
    q.enqueue("after")
    assert q.dequeue() == ["after"]


def _nested(depth: int):
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


def test_too_deep_values_are_refused_at_enqueue_and_kept_as_text_in_traces(backend_kind):
    q = FileSystemQueue()
    q.enqueue(_nested(60))
    with pytest.raises(ValueError, match="nested more than 64 levels"):
        q.enqueue(_nested(1000))
    emit("tool_result", {"content": _nested(1000)}, lenient=True)
    assert q.dequeue() == [_nested(60)]
    stored = read_session(lazystream.current_sid(), queues=("lazy_events",))[0].data["content"]
    depth = 0
    while isinstance(stored, list):
        stored, depth = stored[0], depth + 1
    assert (depth, stored) == (63, "<nested too deep>")


def test_a_too_deep_value_written_by_another_writer_reads_back_safely(fresh_home):
    hub = lq.backend()
    deep = "[" * 100_000 + "]" * 100_000
    hub.backend.store([("deep-writer", "lazy_stream", "item", "[]", deep, 1.0),
                       ("deep-writer", "lazy_stream", "text", "[]", '"next"', 1.0)], {}, hub.owner)
    (first, second) = read_session("deep-writer")
    assert first.data["error"] == "undecodable" and second.data == "next"


def test_json_another_writer_stored_with_spaces_reads_back_as_json_reads_it(fresh_home):
    """Our own encoding is compact; another writer's JSON may have whitespace around it
    or inside. It reads back as ``json.loads`` reads it."""
    hub = lq.backend()
    texts = [' ["a", 1] ', '{"k": [1, 2.5]}\n', '\t"x"', "null ", "[1 , 2]"]
    hub.backend.store([("spaced-writer", "lazy_stream", "item", "[]", text, 1.0) for text in texts], {}, hub.owner)
    assert [e.data for e in read_session("spaced-writer")] == [json.loads(text) for text in texts]


@pytest.mark.parametrize("variable, value", [
    ("LAZYSTREAM_RETENTION", "nan"), ("LAZYSTREAM_IDLE_RETENTION", "nan"), ("LAZYSTREAM_RETENTION", "inf"),
    ("LAZYSTREAM_SWITCH_INTERVAL", "-1"), ("LAZYSTREAM_SWITCH_INTERVAL", "nan"), ("LAZYSTREAM_START_GRACE", "-2"),
])
def test_bad_configuration_is_refused_naming_the_variable(monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    lq.reset()
    try:
        with pytest.raises(ValueError, match=f"{variable}='{value}'.*e.g."):
            FileSystemQueue().enqueue("x")
    finally:
        monkeypatch.delenv(variable)
        lq.reset()


# --- readers always end -----------------------------------------------------------------

def test_tail_of_an_unknown_session_ends_after_the_start_grace(monkeypatch, backend_kind):
    monkeypatch.setenv("LAZYSTREAM_START_GRACE", "0.3")
    with pytest.raises(SessionUnknown, match=r"no session 'never-was'.*LAZYSTREAM_START_GRACE"):
        next(tail("never-was"))


def test_tail_follows_a_session_that_starts_within_the_grace(monkeypatch, backend_kind):
    monkeypatch.setenv("LAZYSTREAM_START_GRACE", "30")
    started = threading.Event()

    def later():
        started.wait(10)
        with session("late-starter"):
            FileSystemQueue().enqueue("hello")

    writer = threading.Thread(target=later)
    writer.start()
    events = tail("late-starter")
    started.set()
    assert [(e.kind, e.data) for e in events] == [("text", "hello"), ("end", {"status": "ok"})]
    writer.join()


def test_tail_of_a_pruned_session_says_so_at_once(backend_kind):
    with session() as sid:
        FileSystemQueue().enqueue("old")
    assert lq.prune(retention=0) >= 2
    with pytest.raises(SessionUnknown, match=rf"session '{sid}' ended \(ok\).*removed by retention"):
        next(tail(sid))


def test_the_cli_tail_ends_with_a_clear_error_for_an_unknown_session(fresh_home):
    env = dict(os.environ, LAZYSTREAM_HOME=str(fresh_home), LAZYSTREAM_START_GRACE="0.2")
    proc = subprocess.run([sys.executable, "-m", "lazystream", "tail", "no-such-sid"], env=env,
                          capture_output=True, text=True, timeout=50)
    assert proc.returncode == 2
    assert "no session 'no-such-sid' in the store" in proc.stderr


def test_a_killed_producer_not_yet_reaped_counts_as_dead(fresh_home):
    child = _child("""
        import sys, lazystream
        lazystream.FileSystemQueue().enqueue("before", sid="zombie")
        lazystream.queue.flush()
        print("ready", flush=True)
        sys.stdin.read()
    """, fresh_home)
    try:
        assert child.stdout.readline() == "ready\n"
        child.send_signal(signal.SIGKILL)   # and do not reap it: it stays a zombie
        events = tail("zombie", timeout=20)
        assert next(events).data == "before"
        with pytest.raises(ProducerGone, match="zombie"):
            next(events)
    finally:
        child.wait(10)


# --- what is stored when ----------------------------------------------------------------

def test_flush_makes_what_was_enqueued_survive_a_sigkill(fresh_home):
    child = _child("""
        import os, signal, lazystream
        q = lazystream.FileSystemQueue()
        for i in range(5000):
            q.enqueue(i, sid="durable")
        lazystream.queue.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    """, fresh_home)
    child.communicate(timeout=60)
    assert child.returncode == -signal.SIGKILL
    assert FileSystemQueue().dequeue(sid="durable") == list(range(5000))


def test_a_reader_that_never_blocks_still_sees_another_processes_writes(fresh_home):
    assert read_session("late") == []   # cached as empty: nothing may keep it stale
    child = _child("""
        import lazystream
        with lazystream.session("late"):
            lazystream.FileSystemQueue().enqueue("from the child")
    """, fresh_home)
    child.communicate(timeout=60)
    assert child.returncode == 0
    seen, tick, deadline = [], threading.Event(), time.monotonic() + 10
    while not seen and time.monotonic() < deadline:   # told within the safety-check period
        seen = [e.data for e in read_session("late") if e.queue == "lazy_stream"]
        tick.wait(0.01)
    assert seen == ["from the child"]


def test_a_commit_in_another_process_names_its_sessions_to_this_one(fresh_home):
    """The watch names the sessions another process wrote, so only their caches are
    refreshed and only their readers woken: "something changed" alone would have every
    reader of the process read the file. The sessions this process wrote are not named
    (nor scanned for) again."""
    hub = lq.backend()
    heard, named = [], threading.Event()
    real = hub._external

    def spy(sids=None, announced=None):
        heard.append(None if sids is None else sorted(sids))
        if sids is not None and "written-there" in sids:
            named.set()
        return real(sids, announced)

    hub._external = spy                 # before the hub starts listening
    FileSystemQueue().get(timeout=0, sid="waits-here")   # start hearing other processes
    for i in range(20):                 # what this process writes itself is never named to it
        FileSystemQueue().enqueue(i, sid=f"written-here-{i % 4}")
        lq.flush()
    child = _child("""
        import lazystream
        lazystream.FileSystemQueue().enqueue("from the child", sid="written-there")
    """, fresh_home)
    child.communicate(timeout=60)
    assert child.returncode == 0
    assert named.wait(30)
    assert heard[1:] == [["written-there"]] * (len(heard) - 1)   # after the start, only that one
    assert FileSystemQueue().dequeue(sid="written-there") == ["from the child"]


def test_sqlite_batches_of_every_size_are_stored_in_order_with_contiguous_seqs(fresh_home, monkeypatch):
    """The common batch binds its rows in INSERT … FROM (VALUES …) statements of a
    power-of-two size (padding dropped by their WHERE) of at most _VALUES_MAX rows, a
    bigger batch several in one transaction; a lone row has its own statement."""
    from lazystream.queue import _sqlite

    store, bound = lq.backend().backend, []
    real = _sqlite._values_params
    monkeypatch.setattr(_sqlite, "_values_params", lambda rows, ids: bound.append(len(rows)) or real(rows, ids))
    store.store([("sizes", "q", "item", "[]", '"first"', 1.0)], {}, "test")   # the session's id is made here
    top = _sqlite._VALUES_MAX
    sizes = (2, 3, 4, 5, top - 1, top, top + 1, 2 * top + 2, 3 * top)
    expected = ['"first"']
    for n in sizes:
        rows = [("sizes", "q", "item", "[]", f'"{n}-{i}"', 2.0) for i in range(n)]
        seqs = store.store(rows, {}, "test")
        assert seqs == list(range(seqs[0], seqs[0] + n))
        expected += [r[4] for r in rows]
    assert bound == [2, 3, 4, 5, top - 1, top, top, top, top, 2, top, top, top]
    events = store.read("sizes", None, 0, None)
    assert [e.seq for e in events] == list(range(events[0].seq, events[0].seq + len(expected)))
    assert [json.dumps(e.data) for e in events] == expected


def test_a_sqlite_batch_of_several_statements_is_stored_whole_or_not_at_all(fresh_home, monkeypatch):
    from lazystream.queue import _sqlite

    store, calls = lq.backend().backend, []
    store.store([("whole", "q", "item", "[]", '"first"', 1.0)], {}, "test")
    real = _sqlite._values_params

    def fail_second(rows, ids):
        calls.append(len(rows))
        if len(calls) == 2:
            raise sqlite3.OperationalError("disk I/O error")
        return real(rows, ids)

    monkeypatch.setattr(_sqlite, "_values_params", fail_second)
    rows = [("whole", "q", "item", "[]", f'"{i}"', 2.0) for i in range(2 * _sqlite._VALUES_MAX)]
    with pytest.raises(StorageError, match="disk I/O error"):
        store.store(rows, {}, "test")
    assert calls == [_sqlite._VALUES_MAX, _sqlite._VALUES_MAX]
    assert [e.data for e in store.read("whole", None, 0, None)] == ["first"]   # the first statement's rows too
    monkeypatch.setattr(_sqlite, "_values_params", real)
    seqs = store.store(rows, {}, "test")
    assert [e.seq for e in store.read("whole", None, 0, None)][1:] == seqs


def test_sqlite_read_many_returns_what_one_read_per_session_does(fresh_home, monkeypatch):
    from lazystream.queue import _sqlite
    from lazystream.queue._backend import Backend

    q = FileSystemQueue()
    for i in range(30):
        q.enqueue(f"a{i}", sid="many-a")
        q.enqueue(f"b{i}", sid="many-b")
        if i % 3 == 0:
            q.enqueue(f"c{i}", sid="many-c")
    lq.flush()
    store = lq.backend().backend
    monkeypatch.setattr(_sqlite, "_SCAN", 20)   # many-a reads past the scan: a query of its own
    afters = {"many-a": 0, "many-b": store.read("many-b", None, 0, None)[20].seq, "many-c": 0, "no-such": 0}
    for limit in (5, 4096):
        assert store.read_many(afters, limit) == Backend.read_many(store, afters, limit)
    assert [len(rows) for rows in store.read_many(afters, 4096).values()] == [30, 9, 10, 0]


def test_a_full_disk_is_said_at_once_and_recovered_from_when_space_returns(fresh_home):
    hub = lq.backend()
    q = FileSystemQueue.get_instance("disk")
    q.enqueue("first", sid="disk")
    lq.flush()
    store = hub.backend
    with store._write_lock:   # a disk that is full: SQLite refuses to grow the file
        pages = store._wconn.execute("PRAGMA page_count").fetchone()[0]
        store._wconn.execute(f"PRAGMA max_page_count={pages}")
    taken = []
    with pytest.raises(StorageError, match="NOT taken"):
        for i in range(200_000):
            q.enqueue(f"item {i} " + "x" * 200, sid="disk")
            taken.append(f"item {i} " + "x" * 200)
    with pytest.raises(StorageError, match="full"):
        lq.flush(timeout=0.3)
    with store._write_lock:   # space returns
        store._wconn.execute("PRAGMA max_page_count=1073741823")
    lq.flush(timeout=30)
    q.enqueue("after", sid="disk")
    assert q.dequeue(sid="disk") == ["first", *taken, "after"]


def test_a_producer_far_ahead_of_the_store_waits_then_is_told(monkeypatch, backend_kind):
    from lazystream.queue import _hub
    hub = lq.backend()
    hub.max_pending = 10
    gate = threading.Event()
    real_store = hub.backend.store

    def slow_store(rows, cursors, owner):
        gate.wait(10)
        return real_store(rows, cursors, owner)

    monkeypatch.setattr(hub.backend, "store", slow_store)
    monkeypatch.setattr(_hub, "BACKPRESSURE_TIMEOUT", 0.3)
    q = FileSystemQueue.get_instance("pressure")
    taken = []
    with pytest.raises(StorageError, match="NOT taken"):
        for i in range(100):
            q.enqueue(i)
            taken.append(i)
    assert 10 <= len(taken) < 100
    gate.set()
    assert q.dequeue() == taken


def test_a_second_process_cannot_dequeue_a_queue_another_live_process_owns(fresh_home):
    q = FileSystemQueue()
    for i in range(10):
        q.enqueue(i, sid="owned")
    lq.flush()
    child = _child("""
        import sys, lazystream
        q = lazystream.FileSystemQueue()
        print(q.dequeue(limit=4, sid="owned"), flush=True)
        sys.stdin.readline()
        print(q.dequeue(limit=2, sid="owned"), flush=True)
    """, fresh_home)
    assert child.stdout.readline() == "[0, 1, 2, 3]\n"
    with pytest.raises(QueueBusy, match=r"'lazy_stream' of session 'owned' is being dequeued by another process"):
        q.dequeue(sid="owned")
    assert [e.data for e in q.read(sid="owned")] == list(range(10))   # reading is never refused
    out, err = child.communicate("go\n", timeout=60)
    assert (child.returncode, out) == (0, "[4, 5]\n"), err
    assert q.dequeue(sid="owned") == [6, 7, 8, 9]   # taken over where the owner stopped


# --- the data path: a store round trip per batch, not per token or per read --------------

def _count(monkeypatch, obj, name: str) -> list[int]:
    calls = [0]
    real = getattr(obj, name)

    def counted(*args, **kwargs):
        calls[0] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(obj, name, counted)
    return calls


def test_in_process_readers_never_ask_the_store(monkeypatch, backend_kind):
    hub = lq.backend()
    FileSystemQueue.get_instance("warm-up").get(timeout=0.01)   # once per process: start listening
    reads = _count(monkeypatch, hub.backend, "read")
    q = FileSystemQueue()
    got = []
    with session() as sid:
        reader = threading.Thread(target=lambda: [got.extend(q.get(timeout=10, sid=sid)) for _ in iter(
            lambda: len(got) < 300, False)])
        reader.start()
        for i in range(300):
            q.enqueue(str(i))
        reader.join(30)
        for _ in range(1000):
            assert q.dequeue() == []      # the seed's polling loop
        assert [e.data for e in read_session(sid)] == [str(i) for i in range(300)]
    assert got == [str(i) for i in range(300)]
    # one look when a reader first meets a session (and one per safety wake-up), not one
    # per token or per poll
    assert reads[0] <= 3, f"{reads[0]} store reads for 300 tokens and 1,000 polls"


def test_many_sessions_share_few_stores(monkeypatch, backend_kind):
    hub = lq.backend()
    stores = _count(monkeypatch, hub.backend, "store")
    q = FileSystemQueue.get_instance("many")
    sids = [f"many-{i}" for i in range(100)]
    for k in range(20):
        for sid in sids:
            q.enqueue(k, sid=sid)
    lq.flush()
    assert all(q.dequeue(sid=sid) == list(range(20)) for sid in sids)
    assert stores[0] <= 2000 // 10, f"{stores[0]} stores for 2,000 events"


def test_import_lazystream_does_not_load_openai():
    code = "import sys, lazystream; print('openai' in sys.modules); lazystream.OnlineChatModule; " \
           "print('openai' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["False", "True"], out.stderr


def test_the_seeds_polling_loop_waits_instead_of_spinning(backend_kind):
    """``if q.dequeue(): … elif future.done(): break``, unchanged: a second empty dequeue
    in a row waits for the session's next store or the future (at most 50 ms)."""
    release = threading.Event()

    def work():
        release.wait(10)
        FileSystemQueue().enqueue("late")
        return "done"

    passes, got = 0, []
    with lazystream.ThreadPoolExecutor(1) as pool:
        future = pool.submit(work)
        timer = threading.Timer(0.3, release.set)
        timer.start()
        while True:
            passes += 1
            if value := FileSystemQueue().dequeue():
                got += value
            elif future.done():
                break
    timer.join()
    assert (got, future.result()) == (["late"], "done")
    assert passes < 200, f"{passes} passes in 0.3 s: the loop spins"


def test_an_empty_poll_waits_only_while_the_sessions_work_runs(monkeypatch, backend_kind):
    """Once the session's pool work has finished (or where there was none), an empty
    ``dequeue()`` returns at once: the seed's loop ends without waiting out the bound."""
    waits = _count(monkeypatch, lq.backend(), "wait")
    q = FileSystemQueue()
    with lazystream.ThreadPoolExecutor(1) as pool:
        future = pool.submit(q.enqueue, "only")
        assert future.result() is None
        assert [q.dequeue() for _ in range(3)] == [["only"], [], []]
        assert future.done()
        assert [q.dequeue() for _ in range(20)] == [[]] * 20
    with session():
        assert [q.dequeue() for _ in range(20)] == [[]] * 20
    assert waits[0] == 0, f"{waits[0]} empty polls waited with no work of the session running"


def test_coroutines_read_without_a_thread_each(backend_kind):
    """``aget`` suspends on the hub (no thread per reader): 50 sessions on one loop."""
    import asyncio
    q = FileSystemQueue.get_instance("async-readers")
    sids = [f"async-{i}" for i in range(50)]

    async def main():
        async def produce(sid):
            for k in range(20):
                await asyncio.sleep(0)
                q.enqueue(k, sid=sid)

        async def read(sid):
            got = []
            while len(got) < 20:
                got += await q.aget(timeout=20, sid=sid)
            return got

        results = await asyncio.gather(*(read(s) for s in sids), *(produce(s) for s in sids))
        return results[:len(sids)], await q.aget(timeout=0.05, sid=sids[0])

    threads = threading.active_count()
    got, after = asyncio.run(main())
    assert got == [list(range(20))] * 50 and after == []
    assert threading.active_count() <= threads + 3   # the writer (and listeners), not 50 readers


class _GatedStore:
    """Wraps a backend's ``store`` so a test decides when stores go through."""

    def __init__(self, monkeypatch, backend) -> None:
        self.open = threading.Event()
        self.entered = threading.Event()
        real = backend.store

        def store(rows, cursors, owner):
            if rows:
                self.entered.set()
                if not self.open.wait(20):
                    raise AssertionError("the test never opened the store")
            return real(rows, cursors, owner)

        monkeypatch.setattr(backend, "store", store)


def test_a_reader_in_the_process_takes_a_row_before_it_is_stored_and_never_again(monkeypatch, backend_kind):
    hub = lq.backend()
    monkeypatch.setattr(hub, "linger_alone", 600.0)   # nothing is stored until flush() asks
    monkeypatch.setattr(hub, "_shared_now", False)
    gate = _GatedStore(monkeypatch, hub.backend)
    q = FileSystemQueue.get_instance("appended")
    with session() as sid:
        for item in ("a", "b", "c"):
            q.enqueue(item)
        assert q.size() == 3 and q.peek() == "a"
        assert q.dequeue(limit=2) == ["a", "b"]
        assert not gate.entered.is_set()              # taken from memory: nothing was stored yet
        gate.open.set()
        lq.flush(timeout=20)
        assert [e.data for e in q.read()] == ["a", "b", "c"]   # now stored, with seqs
        assert q.dequeue() == ["c"]                   # the stored "a", "b" are not handed out again
        assert q.dequeue() == [] and q.size() == 0
        q.enqueue("d")
        assert q.get(timeout=5) == ["d"]
    lq.reset()   # closes the hub, which persists the cursor: the next owner starts after "d"
    assert FileSystemQueue.get_instance("appended").dequeue(sid=sid) == []


def test_a_paced_producer_read_only_here_is_stored_in_batches(monkeypatch, fresh_home):
    """At a model's pace (200 rows/s), with no other process reading, rows are grouped:
    never a transaction per row."""
    hub = lq.backend()
    stores = _count(monkeypatch, hub.backend, "store")
    q = FileSystemQueue.get_instance("paced")
    got: list[str] = []
    with session() as sid:
        reader = threading.Thread(target=lambda: [got.extend(q.get(timeout=10, sid=sid)) for _ in iter(
            lambda: len(got) < 60, False)])
        reader.start()
        pace = threading.Event()
        for i in range(60):
            pace.wait(0.005)
            q.enqueue(str(i))
        reader.join(30)
        lq.flush(timeout=20)
    assert got == [str(i) for i in range(60)]
    assert stores[0] <= 30, f"{stores[0]} stores for 60 rows at 200 rows/s"


def test_a_tail_in_the_process_does_not_wait_for_the_linger(monkeypatch, backend_kind):
    """A reader of stored events (tail, read_session) waiting on a session makes the next
    row be stored at once, whatever the linger."""
    hub = lq.backend()
    monkeypatch.setattr(hub, "linger_alone", 600.0)
    monkeypatch.setattr(hub, "_shared_now", False)
    with session() as sid:
        FileSystemQueue().enqueue("first")
        [first] = read_session(sid)                   # a read stores what it waits for
        seen: list[str] = []
        reader = threading.Thread(target=lambda: seen.extend(e.data for e in read_session(sid, first.seq,
                                                                                             timeout=30)))
        reader.start()
        FileSystemQueue().enqueue("second")
        reader.join(20)
        assert not reader.is_alive() and (first.data, seen) == ("first", ["second"])


def test_a_live_reader_sees_unstored_rows_once_and_then_the_stored_ones_never_again(monkeypatch, backend_kind):
    hub = lq.backend()
    monkeypatch.setattr(hub, "linger_alone", 600.0)
    monkeypatch.setattr(hub, "_shared_now", False)
    gate = _GatedStore(monkeypatch, hub.backend)
    with session() as sid:
        reader = lq.LiveReader(sid)
        FileSystemQueue().enqueue("a")
        lazystream.queue.emit("status", "working")
        assert [(e.seq, e.kind, e.data) for e in reader.read(0)] == [(0, "text", "a"), (0, "status", "working")]
        assert not gate.entered.is_set()
        gate.open.set()
        lq.flush(timeout=20)
        assert reader.read(0) == []                   # stored now: not read again
        FileSystemQueue().enqueue("b")
        assert [e.data for e in reader.read(5)] == ["b"]
    assert [e.kind for e in reader.read(5)] == ["end"]


def test_follow_drains_once_per_arrival_not_twice(monkeypatch):
    """After a drain that found items, ``follow`` waits straight away when nothing came
    since: the reader thread's whole work per token is one pass, not two."""
    takes = _count(monkeypatch, lq.backend(), "take")
    n, taken = 20, [threading.Event() for _ in range(20)]

    def produce() -> None:
        for i in range(n):
            FileSystemQueue().enqueue(f"t{i}")
            assert taken[i].wait(10)   # the next only once the reader has this one

    got = []
    with lazystream.ThreadPoolExecutor(1) as pool:
        for _, items in lazystream.follow(pool.submit(produce)):
            for item in items:
                taken[int(item[1:])].set()
            got += items
    assert got == [f"t{i}" for i in range(n)]
    assert takes[0] <= n + 3   # one per arrival, and a few at the start and the end (was 2n)
