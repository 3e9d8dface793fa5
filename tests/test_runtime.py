"""Sessions, the executor, ModuleBase, flows, follow, retention, other processes."""
from __future__ import annotations

import gc
import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import lazystream
from lazystream import FileSystemQueue, ModuleBase, ThreadPoolExecutor, follow, parallel, pipeline, session
from lazystream.queue import ProducerGone, emit, prune, read_session, tail


class Words(ModuleBase):
    """Streams its input word by word, upper-cased, and returns it upper-cased."""

    def __init__(self, **kw):
        super().__init__(**kw)

    def forward(self, text):
        words = text.split(" ")
        for i, w in enumerate(words):
            self.stream_output(w.upper() if i == 0 else " " + w.upper())
        return text.upper()


class Agent(ModuleBase):
    def __init__(self, **kw):
        super().__init__(**kw)
        self.llm = Words(return_trace=True)

    def forward(self, query):
        return self.llm(query) + "."


# --- sessions ---------------------------------------------------------------------------

def test_threads_get_fresh_unique_tags_not_thread_idents():
    tags = []

    def record():
        tags.append(lazystream.current_sid())

    for _ in range(20):   # sequential threads: the OS reuses their idents
        t = threading.Thread(target=record)
        t.start()
        t.join()
    assert len(set(tags)) == 20
    assert all(str(ident) not in tags for ident in [threading.get_ident()])


def test_session_block_isolates_and_restores_the_tag():
    outer = lazystream.current_sid()
    with session() as a:
        assert lazystream.current_sid() == a != outer
        with session() as b:
            assert lazystream.current_sid() == b != a
        assert lazystream.current_sid() == a
    assert lazystream.current_sid() == outer


def test_session_rejects_an_empty_tag():
    with pytest.raises(ValueError, match="non-empty"):
        with session(""):
            pass


def test_globals_are_per_session_and_freed_at_its_end():
    from lazystream.session import _globals
    lazystream.globals["user"] = "outer"
    with session() as sid:
        assert "user" not in lazystream.globals
        lazystream.globals["user"] = "inner"
        with ThreadPoolExecutor(1) as pool:
            assert pool.submit(lambda: lazystream.globals["user"]).result() == "inner"
    assert sid not in _globals
    assert lazystream.globals["user"] == "outer"


def test_implicit_session_globals_are_freed_when_the_thread_ends():
    from lazystream.session import _globals
    box = {}

    def work():
        box["sid"] = lazystream.current_sid()
        lazystream.globals["k"] = 1

    t = threading.Thread(target=work)
    t.start()
    t.join()
    del t
    gc.collect()
    assert box["sid"] not in _globals


# --- executor ---------------------------------------------------------------------------

def test_seed_pattern_submit_poll_dequeue_and_traces():
    agent = Agent(return_trace=True)
    outputs, traces = [], []
    with lazystream.ThreadPoolExecutor(1) as executor:
        future = executor.submit(agent, "the weather is fine")
        while True:
            if value := lazystream.FileSystemQueue().dequeue():
                outputs.append("".join(value))
            elif value := lazystream.FileSystemQueue().get_instance("lazy_trace").dequeue():
                traces.extend(value)
            elif future.done():
                break
    # the seed loop may stop before the last batch lands: drain what remains
    outputs += FileSystemQueue().dequeue()
    traces += FileSystemQueue.get_instance("lazy_trace").dequeue()
    assert future.result() == "THE WEATHER IS FINE."
    assert "".join(outputs) == "THE WEATHER IS FINE"
    assert traces == ["THE WEATHER IS FINE", "THE WEATHER IS FINE."]


def test_nested_submits_keep_the_tag():
    sid = lazystream.current_sid()
    with ThreadPoolExecutor(2) as outer:
        def inner():
            with ThreadPoolExecutor(1) as pool:
                return pool.submit(lazystream.current_sid).result()
        assert outer.submit(inner).result() == sid


def test_map_carries_the_tag():
    sid = lazystream.current_sid()
    with ThreadPoolExecutor(2) as pool:
        assert list(pool.map(lambda _: lazystream.current_sid(), range(4))) == [sid] * 4


def test_thirty_two_threads_each_read_only_their_own_tokens():
    results: dict[int, list[str]] = {}

    def client(i: int) -> None:
        with ThreadPoolExecutor(1) as pool:
            fut = pool.submit(lambda: [FileSystemQueue().enqueue(f"c{i}-{k}") for k in range(50)])
            got = []
            for _, items in follow(fut):
                got += items
        results[i] = got

    threads = [threading.Thread(target=client, args=(i,)) for i in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {i: [f"c{i}-{k}" for k in range(50)] for i in range(32)}


def test_worker_exception_is_raised_and_written_as_an_error_event():
    def fail():
        raise ValueError("bad city")

    with session() as sid:
        with ThreadPoolExecutor(1) as pool:
            fut = pool.submit(fail)
            with pytest.raises(ValueError, match="bad city"):
                fut.result()
    events = read_session(sid)
    run = events[0].data["run"]
    error = {"type": "ValueError", "message": "bad city"}
    assert [(e.kind, e.data) for e in events] == [
        ("run_start", {"run": run, "name": "fail", "input": {"args": [], "kwargs": {}}}),
        ("error", error),
        ("run_end", {"run": run, "status": "error", "error": error, "output": None, "usage": None}),
        ("end", {"status": "ok"}),
    ]


def test_lazystream_thread_carries_the_tag_and_reports_errors():
    sid = lazystream.current_sid()
    seen = []
    t = lazystream.Thread(target=lambda: seen.append(lazystream.current_sid()))
    t.start()
    t.join()
    assert seen == [sid]


# --- follow -----------------------------------------------------------------------------

def test_follow_never_loses_the_tail():
    q = FileSystemQueue()
    with ThreadPoolExecutor(1) as pool:
        for rep in range(1000):
            fut = pool.submit(q.enqueue, f"last-{rep}")   # returns right after its enqueue
            got = [x for _, items in follow(fut) for x in items]
            assert got == [f"last-{rep}"]


def test_the_seed_polling_loop_never_loses_the_tail():
    q, traces = FileSystemQueue(), FileSystemQueue.get_instance("lazy_trace")

    def work(rep):
        q.enqueue(f"a{rep}")
        traces.enqueue(f"t{rep}")
        q.enqueue(f"b{rep}")   # returns right after its last enqueue

    with ThreadPoolExecutor(1) as executor:
        for rep in range(500):
            future = executor.submit(work, rep)
            out, tr = [], []
            while True:
                if value := q.dequeue():
                    out += value
                elif value := traces.dequeue():
                    tr += value
                elif future.done():
                    break
            assert (out, tr) == ([f"a{rep}", f"b{rep}"], [f"t{rep}"])


def test_done_is_not_held_back_by_a_queue_nobody_reads():
    with ThreadPoolExecutor(1) as executor:
        future = executor.submit(FileSystemQueue.get_instance("unread-by-anyone").enqueue, "x")
        assert future.result() is None
        assert future.done()


def test_done_waits_for_the_polled_queue_to_be_drained():
    q = FileSystemQueue()
    q.dequeue()                      # this session's reader polls the default queue
    with ThreadPoolExecutor(1) as executor:
        future = executor.submit(q.enqueue, "tail")
        future.result()
        assert not future.done()     # finished, but its output is not read yet
        assert q.dequeue() == ["tail"]
        assert future.done()


def test_follow_from_another_thread_reads_the_futures_session():
    q = FileSystemQueue()
    q.dequeue()                      # the submitter polls, as in the seed
    with ThreadPoolExecutor(1) as executor:
        future = executor.submit(lambda: [q.enqueue(t) for t in ("a", "b")])
        got = []
        reader = threading.Thread(target=lambda: got.extend(x for _, items in follow(future) for x in items))
        reader.start()               # a fresh thread: another implicit session
        reader.join(20)
    assert not reader.is_alive()
    assert got == ["a", "b"]


def test_follow_reraises_the_worker_exception_after_draining():
    def work():
        FileSystemQueue().enqueue("partial")
        raise RuntimeError("cut")

    got = []
    with ThreadPoolExecutor(1) as pool:
        with pytest.raises(RuntimeError, match="cut"):
            for name, items in follow(pool.submit(work), ("lazy_stream", "lazy_trace")):
                got.append((name, items))
    assert got == [("lazy_stream", ["partial"])]


# --- ModuleBase -------------------------------------------------------------------------

def test_trace_event_carries_name_path_input_output_duration():
    with session() as sid:
        Agent(return_trace=True)("a b")
    traces = [e for e in read_session(sid) if e.kind == "trace"]
    assert [e.value for e in traces] == ["A B", "A B."]
    inner = traces[0]
    assert inner.ns == ("agent", "llm")
    assert {k: inner.data[k] for k in ("module", "path", "input", "output", "error")} == {
        "module": "Words", "path": "agent.llm", "input": "a b", "output": "A B", "error": None}
    assert inner.data["duration"] >= 0


def test_error_trace_is_written_and_the_exception_reraised():
    class Broken(ModuleBase):
        def forward(self, x):
            raise ZeroDivisionError("no")

    with session() as sid:
        with pytest.raises(ZeroDivisionError):
            Broken(return_trace=True)(1)
    trace = next(e for e in read_session(sid) if e.kind == "trace")
    assert trace.value == "ZeroDivisionError: no"
    assert trace.data["error"] == {"type": "ZeroDivisionError", "message": "no"}


def test_module_without_stream_or_trace_writes_nothing():
    class Quiet(ModuleBase):
        def forward(self, x):
            return x * 2

    with session() as sid:
        assert pipeline(Quiet(), Quiet())(3) == 12
    assert [e.kind for e in read_session(sid)] == ["end"]


def test_named_modules_by_attribute_path_without_duplicates():
    class Tree(ModuleBase):
        def __init__(self):
            super().__init__()
            self.a = Words()
            self.b = Agent()
            self.again = self.a
            self.many = [Words(), Words()]

    names = [name for name, _ in Tree().named_modules()]
    assert names == ["", "a", "b", "b.llm", "many[0]", "many[1]"]


def test_start_starts_each_submodule_once():
    started = []

    class Server(ModuleBase):
        def _start(self):
            started.append(self.name)

    class App(ModuleBase):
        def __init__(self):
            super().__init__()
            self.s1 = Server()
            self.s2 = Server()
            self.alias = self.s1

    app = App()
    assert app.start() is app
    app.start()
    assert sorted(started) == ["s1", "s2"]


def test_module_author_events_carry_the_module_path():
    class Tool(ModuleBase):
        def forward(self, x):
            self.emit("status", f"working on {x}")
            return x

    class Outer(ModuleBase):
        def __init__(self):
            super().__init__()
            self.tool = Tool()

        def forward(self, x):
            return self.tool(x)

    with session() as sid:
        Outer()("job")
    status = read_session(sid)[0]
    assert (status.kind, status.ns, status.data) == ("status", ("outer", "tool"), "working on job")


# --- flows ------------------------------------------------------------------------------

def test_pipeline_feeds_each_output_to_the_next_step():
    assert pipeline(lambda x: x + 1, lambda x: x * 10, str)(1) == "20"


def test_parallel_returns_in_branch_order_with_branches_in_ns():
    with session() as sid:
        out = parallel(Words(), Words(), lambda x: len(x))("p q")
    assert out == ("P Q", "P Q", 3)
    by_branch: dict[tuple, list[str]] = {}
    for e in read_session(sid):
        if e.kind == "text":
            by_branch.setdefault(e.ns, []).append(e.data)
    assert by_branch == {("parallel", "branch0", "words"): ["P", " Q"],
                         ("parallel", "branch1", "words"): ["P", " Q"]}


def test_failing_parallel_branch_is_named():
    def boom(x):
        raise KeyError(x)

    with pytest.raises(lazystream.BranchError, match=r"parallel branch 1 \(boom\) failed: KeyError"):
        parallel(str, boom)("x")


def test_flows_reject_non_callables():
    with pytest.raises(TypeError, match="step 1"):
        pipeline(str, 3)
    with pytest.raises(ValueError, match=r"parallel has no steps: give them as arguments or assign "
                                         r"them in `with parallel\(\) as p:`"):
        parallel()("x")


# --- retention --------------------------------------------------------------------------

def test_retention_prunes_ended_sessions_and_consumed_old_events(backend_kind):
    with session() as ended:
        FileSystemQueue().enqueue("old")
    FileSystemQueue().enqueue("consumed", sid="open")
    FileSystemQueue().enqueue("unread", sid="open-2")
    assert FileSystemQueue().dequeue(sid="open") == ["consumed"]
    assert prune(retention=3600) == 0
    assert prune(retention=0) == 3
    assert read_session(ended) == []
    assert read_session("open") == []
    assert [e.data for e in read_session("open-2")] == ["unread"]


def test_retention_runs_by_itself_under_a_long_run(monkeypatch, tmp_path):
    import lazystream.queue as lq
    monkeypatch.setenv("LAZYSTREAM_HOME", str(tmp_path / "h"))
    monkeypatch.setenv("LAZYSTREAM_RETENTION", "0")
    lq.reset()
    try:
        with session() as first:
            FileSystemQueue().enqueue("x")
        deadline = time.monotonic() + 20
        while read_session(first) and time.monotonic() < deadline:
            # later sessions keep the writer busy; it prunes between batches
            with session():
                FileSystemQueue().enqueue("y")
            FileSystemQueue.get_instance("idle-probe").get(timeout=0.05)
        assert read_session(first) == []
    finally:
        lq.reset()


def test_sessions_that_never_end_are_dropped_once_idle(monkeypatch, backend_kind):
    import lazystream.queue as lq
    monkeypatch.setenv("LAZYSTREAM_IDLE_RETENTION", "0")
    lq.reset()
    emit("usage", {"total_tokens": 1}, sid="implicit-never-ends")   # nobody reads it
    assert prune(retention=3600) == 0                                 # idle retention is at least retention
    assert prune(retention=0) == 1
    assert read_session("implicit-never-ends") == []
    info = lq.backend().session_info("implicit-never-ends")   # remembered as removed, not unknown
    assert (info["pruned"], info["status"]) == (True, "idle")


def test_bad_retention_is_named(monkeypatch):
    import lazystream.queue as lq
    monkeypatch.setenv("LAZYSTREAM_RETENTION", "an hour")
    lq.reset()
    try:
        with pytest.raises(ValueError, match="LAZYSTREAM_RETENTION='an hour'"):
            FileSystemQueue().enqueue("x")
    finally:
        monkeypatch.delenv("LAZYSTREAM_RETENTION")
        lq.reset()


# --- other processes --------------------------------------------------------------------

def _run_child(code: str, home: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, LAZYSTREAM_HOME=home, LAZYSTREAM_QUEUE="sqlite")
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, timeout=60,
                          capture_output=True, text=True)


def test_another_process_streams_to_the_parent_in_order(fresh_home):
    reader_items: list[str] = []
    done = threading.Event()

    def read():
        while len(reader_items) < 500:
            reader_items.extend(FileSystemQueue().get(timeout=30, sid="xproc"))
        done.set()

    t = threading.Thread(target=read)
    t.start()
    proc = _run_child("""
        import lazystream
        with lazystream.session("xproc"):
            for i in range(500):
                lazystream.FileSystemQueue().enqueue(f"tok{i}")
    """, str(fresh_home))
    assert proc.returncode == 0, proc.stderr
    assert done.wait(30)
    t.join()
    assert reader_items == [f"tok{i}" for i in range(500)]
    assert read_session("xproc")[-1].data == {"status": "ok"}


def test_a_blocked_reader_is_woken_by_a_busy_writer_process(fresh_home):
    """Each item goes to its own session, so each read starts blocking afresh while the
    other process keeps committing: a wake-up lost to a registration race would hang."""
    n = 100
    got: list[str] = []

    def read():
        for i in range(n):
            got.extend(FileSystemQueue().get(sid=f"target-{i}"))   # no timeout

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    proc = _run_child(f"""
        import lazystream
        q = lazystream.FileSystemQueue()
        for i in range({n}):
            for _ in range(20):
                q.enqueue("noise", sid="noise")
            q.enqueue(f"item-{{i}}", sid=f"target-{{i}}")
    """, str(fresh_home))
    assert proc.returncode == 0, proc.stderr
    reader.join(30)
    assert not reader.is_alive(), f"a reader missed its wake-up after {len(got)} items"
    assert got == [f"item-{i}" for i in range(n)]


def test_processes_starting_together_share_a_new_home(tmp_path):
    home = str(tmp_path / "shared-home")
    env = dict(os.environ, LAZYSTREAM_HOME=home, LAZYSTREAM_QUEUE="sqlite")
    code = "import lazystream; lazystream.FileSystemQueue().enqueue('x'); print('ok')"
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(8)]
    results = [p.communicate(timeout=60) for p in procs]
    assert [(p.returncode, out.strip()) for p, (out, _) in zip(procs, results)] == [(0, "ok")] * 8, results


def test_a_file_corrupted_past_its_header_is_named(fresh_home):
    import lazystream.queue as lq
    for i in range(3000):
        FileSystemQueue().enqueue(f"filler {i} " * 20, sid="big")
    lq.backend().sync()
    lq.reset()
    db = fresh_home / "queue.db"
    import sqlite3
    with sqlite3.connect(db) as conn:           # fold the WAL into the file
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    raw = bytearray(db.read_bytes())
    assert len(raw) > 64 * 4096
    raw[8 * 4096:40 * 4096] = b"\xff" * (32 * 4096)   # clobber pages, keep the header
    db.write_bytes(bytes(raw))
    with pytest.raises(lq.StorageError, match=r"queue\.db.*(malformed|corrupt)"):
        FileSystemQueue().dequeue(sid="big")


def test_tail_raises_when_the_producer_process_died(fresh_home):
    proc = _run_child("""
        import os, lazystream
        from lazystream.queue import backend
        lazystream.FileSystemQueue().enqueue("before the crash", sid="dies")
        backend().sync()
        os._exit(1)
    """, str(fresh_home))
    assert proc.returncode == 1
    events = tail("dies", timeout=30)
    assert next(events).data == "before the crash"
    with pytest.raises(ProducerGone, match="dies"):
        next(events)


def test_emit_rejects_an_empty_kind():
    with pytest.raises(ValueError, match="kind"):
        emit("", "x")


# --- LazyLLM's Thread and globals ---------------------------------------------------------

def test_thread_get_result_returns_the_target_value():
    t = lazystream.Thread(target=lambda a, b: a + b, args=(1, 2))
    t.start()
    assert t.get_result() == 3


def test_thread_get_result_raises_the_target_error_and_runs_prehooks_first():
    order = []

    def target():
        order.append("target")
        raise ValueError("bad city")

    with session() as sid:
        t = lazystream.Thread(target=target, prehook=lambda: order.append("hook"))
        t.start()
        with pytest.raises(ValueError, match="bad city"):
            t.get_result()
    assert order == ["hook", "target"]
    assert [(e.kind, e.data) for e in read_session(sid)][0] == \
        ("error", {"type": "ValueError", "message": "bad city"})


def test_thread_get_result_before_start_says_so():
    with pytest.raises(RuntimeError, match=r"get_result\(\) before start\(\); call start\(\) first"):
        lazystream.Thread(target=str).get_result()


def test_globals_sid_and_lazyllm_default_keys():
    with session() as sid:
        g = lazystream.globals
        assert g._sid == sid
        assert g["chat_history"] == {} and g["global_parameters"] == {}
        assert g.chat_history is g["chat_history"] and g.get("user_id") is None
        g["global_parameters"]["temperature"] = 0.1
        g.clear()
        assert g["global_parameters"] == {}
    with session():
        assert lazystream.globals["global_parameters"] == {}   # fresh per session, never shared


def test_missing_globals_key_names_the_session_and_the_fix():
    with session() as sid:
        with pytest.raises(KeyError, match=rf"'nope' is not set in the globals of session '{sid}'"):
            lazystream.globals["nope"]
