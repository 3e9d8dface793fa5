"""The Redis backend across processes and hosts, and under faults.

The queue semantics themselves are the shared suite (test_queue.py and others, through the
``backend_kind`` fixture). Here each "host" is a process with its own LAZYSTREAM_HOME, so
nothing is shared but Redis; each test that breaks Redis starts its own server.
"""
from __future__ import annotations

import json
import re
import os
import signal
import subprocess
import sys
import textwrap
import threading
import uuid

import pytest

import lazystream
import lazystream.queue as lq
from lazystream import FileSystemQueue
from lazystream.queue import ProducerGone, StorageError, read_session, tail
from redis_server import RedisServer


@pytest.fixture(autouse=True)
def _back_to_the_default_store():
    """Tests here point this process at Redis: leave no Redis hub behind for later tests."""
    yield
    lq.reset()


@pytest.fixture
def on_redis(monkeypatch, tmp_path, redis_server):
    """This process on the shared test Redis, under a key prefix of its own."""
    return _use(monkeypatch, tmp_path, redis_server)


@pytest.fixture
def own_redis(monkeypatch, tmp_path):
    """A Redis of the test's own (with AOF), which it may kill, restart or fill."""
    server = RedisServer(tmp_path / "own-redis", aof=True).start()
    _use(monkeypatch, tmp_path, server, reconnect="20")
    yield server
    lq.reset()
    server.stop(signal.SIGKILL)


def _use(monkeypatch, tmp_path, server, reconnect="30"):
    prefix = f"t{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("LAZYSTREAM_QUEUE", server.url)
    monkeypatch.setenv("LAZYSTREAM_REDIS_PREFIX", prefix)
    monkeypatch.setenv("LAZYSTREAM_REDIS_RECONNECT", reconnect)
    monkeypatch.setenv("LAZYSTREAM_HOME", str(tmp_path / "reader-home"))
    lq.reset()
    return prefix


def _host(code: str, tmp_path, name: str = "producer", **env: str) -> subprocess.Popen:
    """Run ``code`` in another process: same Redis and prefix, a LAZYSTREAM_HOME of its own."""
    full = dict(os.environ, LAZYSTREAM_HOME=str(tmp_path / f"{name}-home"), **env)
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], env=full, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _finish(proc: subprocess.Popen, timeout: float = 60) -> str:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    return out


def _store_elsewhere(redis_server, prefix: str, rows: list) -> list[int]:
    """Store ``rows`` as another process does (a backend of its own: one batch, one
    message on the channel); return their seqs."""
    from lazystream.queue._redis import RedisBackend
    other = RedisBackend(redis_server.url, prefix=prefix)
    try:
        return other.store(rows, {}, "elsewhere:1:1")
    finally:
        other.close()


# --- configuration -----------------------------------------------------------------------

def test_unreachable_redis_at_start_names_the_url_without_the_password(monkeypatch, tmp_path):
    from redis_server import _free_port, require_redis
    require_redis()
    port = _free_port()   # nothing listens there
    monkeypatch.setenv("LAZYSTREAM_QUEUE", f"redis://app:s3cret@127.0.0.1:{port}/2")
    lq.reset()
    try:
        with pytest.raises(StorageError) as info:
            FileSystemQueue().enqueue("x")
        message = str(info.value)
        assert f"cannot reach Redis at redis://app:***@127.0.0.1:{port}/2" in message
        assert "start it or fix LAZYSTREAM_QUEUE" in message
        assert "s3cret" not in message
    finally:
        lq.reset()


@pytest.mark.parametrize("prefix", ["", "a{b}"])
def test_a_bad_prefix_is_named(monkeypatch, redis_server, prefix):
    monkeypatch.setenv("LAZYSTREAM_QUEUE", redis_server.url)
    monkeypatch.setenv("LAZYSTREAM_REDIS_PREFIX", prefix)
    lq.reset()
    try:
        with pytest.raises(ValueError, match=re.escape(f"LAZYSTREAM_REDIS_PREFIX={prefix!r} must be non-empty and free of braces")):
            FileSystemQueue().enqueue("x")
    finally:
        lq.reset()


def test_apps_with_different_prefixes_share_one_redis_without_seeing_each_other(monkeypatch, tmp_path,
                                                                               redis_server):
    _use(monkeypatch, tmp_path, redis_server)
    FileSystemQueue().enqueue("app one", sid="same-sid")
    lq.backend().sync()
    _use(monkeypatch, tmp_path, redis_server)
    assert read_session("same-sid") == []
    FileSystemQueue().enqueue("app two", sid="same-sid")
    assert FileSystemQueue().dequeue(sid="same-sid") == ["app two"]


def test_keys_carry_the_prefix_and_expire(on_redis, redis_server):
    with lazystream.session() as sid:
        FileSystemQueue().enqueue("x")
    FileSystemQueue().enqueue("y", sid="open")
    lq.backend().sync()
    r = redis_server.client()
    keys = sorted(k for k in r.keys(f"{on_redis}:*") if ":hb:" not in k and ":batch:" not in k)
    assert keys == sorted([f"{on_redis}:{{{sid}}}:log", f"{on_redis}:{{{sid}}}:meta",
                           f"{on_redis}:{{open}}:log", f"{on_redis}:{{open}}:meta",
                           f"{on_redis}:seen", f"{on_redis}:ended"])
    marks = r.keys(f"{on_redis}:batch:*")   # the writer's last batch, against re-sends
    assert len(marks) == 1 and 86400 < r.ttl(marks[0]) <= 86400 + 3600
    assert r.zrange(f"{on_redis}:ended", 0, -1) == [sid]
    assert "open" in r.zrange(f"{on_redis}:seen", 0, -1)
    # expire() deletes on time; the TTL is a safety net past that (idle retention + 1 h)
    assert 86400 < r.ttl(f"{on_redis}:{{open}}:log") <= 86400 + 3600


def test_a_batch_sent_again_after_a_lost_reply_is_stored_once(on_redis, redis_server):
    store = lq.backend().backend
    rows = [("resent-a", "lazy_stream", "token", "", '"x"', 1.0), ("resent-b", "lazy_stream", "token", "", '"y"', 1.0),
            ("resent-a", "lazy_stream", "token", "", '"z"', 1.0)]
    first = store._store_batch(rows, 7, "owner-1")
    assert store._store_batch(rows, 7, "owner-1") == first            # the re-send: same seqs, no write
    r = redis_server.client()
    assert [r.xlen(f"{on_redis}:{{resent-{x}}}:log") for x in "ab"] == [2, 1]
    later = store._store_batch(rows[:1], 8, "owner-1")               # the next batch is stored
    assert later[0] > first[2] and r.xlen(f"{on_redis}:{{resent-a}}:log") == 3


def test_a_pruned_session_keeps_a_tombstone_and_its_seqs_never_recur(on_redis):
    with lazystream.session() as sid:
        FileSystemQueue().enqueue("x")
    last = read_session(sid)[-1].seq
    assert lq.prune(retention=0) == 2
    info = lq.backend().session_info(sid)
    assert (info["pruned"], info["status"]) == (True, "ok")
    FileSystemQueue().enqueue("again", sid=sid)
    (again,) = read_session(sid)
    assert again.seq > last


# --- across hosts -----------------------------------------------------------------------------

_PRODUCE = """
    import lazystream
    with lazystream.session({sid!r}):
        for i in range({n}):
            lazystream.FileSystemQueue().enqueue(f"tok{{i}}")
"""


def test_a_producer_on_another_host_streams_to_a_blocked_reader_in_order(on_redis, tmp_path):
    got: list[str] = []
    reader = threading.Thread(target=lambda: [got.append(e.data) for e in tail("xhost", timeout=30)])
    reader.start()
    _finish(_host(_PRODUCE.format(sid="xhost", n=500), tmp_path))
    reader.join(30)
    assert not reader.is_alive()
    assert got == [f"tok{i}" for i in range(500)] + [{"status": "ok"}]


_PRODUCE_MANY = """
    import contextlib, lazystream
    sids = [f"many-{{i}}" for i in range({sessions})]
    q = lazystream.FileSystemQueue()
    input()   # until the reader follows every session
    with contextlib.ExitStack() as stack:
        for sid in sids:
            stack.enter_context(lazystream.session(sid))
        for k in range({n}):
            for sid in sids:
                q.enqueue(f"{{sid}}:{{k}}", sid=sid)
"""


def test_a_reader_process_following_many_sessions_of_another_gets_each_event_once_in_order(on_redis, tmp_path):
    """One thread per session dequeues, another follows the whole session, while another
    process writes every session in turn (its stores name many sessions at once)."""
    sessions, n = 30, 60
    sids = [f"many-{i}" for i in range(sessions)]
    q = FileSystemQueue()
    dequeued: dict[str, list] = {sid: [] for sid in sids}
    followed: dict[str, list] = {sid: [] for sid in sids}

    def dequeue(sid: str) -> None:
        while len(dequeued[sid]) < n:
            items = q.get(timeout=30, sid=sid)
            assert items, f"{sid}: nothing within 30 s after {len(dequeued[sid])} items"
            dequeued[sid] += items

    def follow(sid: str) -> None:
        followed[sid] += [(e.kind, e.data) for e in tail(sid, timeout=30)]

    for sid in sids:
        assert q.size(sid=sid) == 0   # claimed, and cached, before the producer starts
    threads = [threading.Thread(target=f, args=(sid,)) for sid in sids for f in (dequeue, follow)]
    for t in threads:
        t.start()
    producer = _host(_PRODUCE_MANY.format(sessions=sessions, n=n), tmp_path)
    producer.stdin.write("\n")
    producer.stdin.flush()
    _finish(producer)
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    for sid in sids:
        assert dequeued[sid] == [f"{sid}:{k}" for k in range(n)]
        assert followed[sid] == [("text", f"{sid}:{k}") for k in range(n)] + [("end", {"status": "ok"})]


@pytest.mark.parametrize("carried", [True, False])
def test_a_store_elsewhere_naming_many_followed_sessions_costs_readers_here_no_read_each(
        on_redis, redis_server, monkeypatch, carried):
    """Another process's store of 20 sessions this process reads. Its message carries the
    events (when small enough): no read at all; else the hub reads all 20 with one
    read_many. Either way every reader then reads its cache (no read of its own)."""
    from lazystream.queue import _redis
    if not carried:
        monkeypatch.setattr(_redis, "_SHARE", 0)
    sids = [f"one-trip-{i}" for i in range(20)]
    q = FileSystemQueue()
    for sid in sids:
        assert q.dequeue(sid=sid) == []   # claimed and cached; the hub now hears other processes
    hub = lq.backend()
    calls: dict[str, list] = {"read": [], "read_many": []}
    real_read, real_read_many = hub.backend.read, hub.backend.read_many

    def read(sid, queues, after, limit):
        calls["read"].append(sid)
        return real_read(sid, queues, after, limit)

    def read_many(afters, limit):
        calls["read_many"].append(sorted(afters))
        return real_read_many(afters, limit)

    hub.backend.read, hub.backend.read_many = read, read_many
    rows = [(sid, "lazy_stream", "text", "[]", json.dumps(f"to {sid}"), 1.0) for sid in sids]
    assert _store_elsewhere(redis_server, on_redis, rows) == [1] * len(sids)   # one batch, one message
    assert [q.get(timeout=30, sid=sid) for sid in sids] == [[f"to {sid}"] for sid in sids]
    assert calls == {"read": [], "read_many": [] if carried else [sorted(sids)]}


def test_events_whose_queue_or_kind_holds_a_separator_are_read_not_carried(on_redis, redis_server):
    """A store's message joins an event's fields with US (and sessions with NUL). A queue
    name or kind holding one is legal: its session's events are left out of the message
    and read with read_many; the others are still carried. Either way the events arrive
    exactly."""
    odd = {"us-queue": ("a\x1fqueue", "text"), "us-kind": ("lazy_stream", "odd\x1fkind"),
           "nul-kind": ("lazy_stream", "odd\0kind"), "plain": ("lazy_stream", "text")}
    hub = lq.backend()
    for sid, (queue, _) in odd.items():
        assert FileSystemQueue(queue).dequeue(sid=sid) == []   # cached; the hub now hears others
    read_many: list[list[str]] = []
    real = hub.backend.read_many

    def spy(afters, limit):
        read_many.append(sorted(afters))
        return real(afters, limit)

    hub.backend.read_many = spy
    rows = [(sid, queue, kind, "[]", json.dumps(f"to {sid}"), 1.5) for sid, (queue, kind) in odd.items()]
    assert _store_elsewhere(redis_server, on_redis, rows) == [1] * len(odd)
    for sid, (queue, kind) in odd.items():
        events = read_session(sid, timeout=30)
        assert [(e.seq, e.queue, e.kind, e.data, e.ts) for e in events] == [(1, queue, kind, f"to {sid}", 1.5)]
    assert read_many == [["nul-kind", "us-kind", "us-queue"]]


def test_a_message_of_another_format_is_read_not_trusted(on_redis, redis_server):
    """A message whose events do not split into five fields each (e.g. from a writer of
    another version) names its session to read; what it carried is not cached."""
    backend = lq.backend().backend
    named: dict = {}
    backend._heard("\0".join(["elsewhere:1:1", "s1", "4", "1", '["lazy_stream", "text", "[]", "\\"x\\"", "1.0"]',
                              "s2", "7", "1", "\x1f".join(["lazy_stream", "text", "[]", '"y"', "2.0"])]), named)
    assert named["s1"] is None
    assert named["s2"].prev == 6 and named["s2"].rows() == [(7, "lazy_stream", "text", "[]", '"y"', 2.0)]


def test_a_message_that_cannot_be_parsed_wakes_every_reader_and_the_watch_goes_on(on_redis, redis_server):
    """A message on the channel this version cannot parse (a writer of another version,
    a stray PUBLISH) does not end the watch: every cache is distrusted and every reader
    woken (it may have named anything), and later stores are heard as before."""
    import redis as redis_py
    hub = lq.backend()
    woken = threading.Event()
    real = hub._external

    def spy(sids, announced=None):
        real(sids, announced)
        if sids is None:
            woken.set()

    hub._external = spy   # before the hub starts listening: the watch thread calls this one
    q = FileSystemQueue()
    assert q.dequeue(sid="after-garbage") == []   # cached, and listening
    woken.clear()   # (starting to listen distrusted every cache once)
    client = redis_py.Redis.from_url(redis_server.url)
    try:
        assert client.publish(f"{on_redis}:stored", "not\0a\0message\0of\0ours") >= 1
        assert woken.wait(10)
        row = ("after-garbage", "lazy_stream", "text", "[]", json.dumps("still heard"), 1.0)
        assert _store_elsewhere(redis_server, on_redis, [row]) == [1]
        assert q.get(timeout=10, sid="after-garbage") == ["still heard"]
    finally:
        client.close()


@pytest.mark.parametrize("carried", [True, False])
def test_a_store_elsewhere_heard_after_a_later_store_here_is_still_cached(on_redis, redis_server, monkeypatch,
                                                                         carried):
    """Two writers of one session: another process stores seq 1, this one seq 2, and only
    then is the other's message heard. The cache must still get seq 1 (what the message
    carried, or a read from what the cache last read of the store, not from its newest)."""
    from lazystream.queue import _redis
    if not carried:
        monkeypatch.setattr(_redis, "_SHARE", 0)
    hub = lq.backend()
    heard, refreshed = threading.Event(), threading.Event()
    real = hub._external

    def late(sids, announced=None):
        if sids is not None:
            heard.wait(30)
        real(sids, announced)
        if sids is not None:
            refreshed.set()

    hub._external = late   # before the hub starts listening: the watch thread calls this one
    assert FileSystemQueue().dequeue(sid="two-writers") == []   # cached, and listening
    row = ("two-writers", "lazy_stream", "text", "[]", json.dumps("from elsewhere"), 1.0)
    assert _store_elsewhere(redis_server, on_redis, [row]) == [1]
    FileSystemQueue().enqueue("mine", sid="two-writers")
    hub.sync("two-writers")
    heard.set()
    assert refreshed.wait(30)
    assert [(e.seq, e.data) for e in read_session("two-writers")] == [(1, "from elsewhere"), (2, "mine")]


def test_a_queue_dequeued_on_one_host_is_busy_on_another_until_released(on_redis, tmp_path):
    n = 50
    for i in range(n):
        FileSystemQueue().enqueue(i, sid="work")
    lq.backend().sync()
    first = _host("""
        import json, lazystream
        print(json.dumps(lazystream.FileSystemQueue().dequeue(limit=20, sid="work")), flush=True)
        input()   # hold the queue until told to exit
    """, tmp_path, name="first")
    taken = json.loads(first.stdout.readline())
    with pytest.raises(lq.QueueBusy, match=r"queue 'lazy_stream' of session 'work' is being dequeued by "
                                           r"another process \(owner \S+:\d+:"):
        FileSystemQueue().dequeue(sid="work")
    first.stdin.write("\n")
    first.stdin.flush()
    _finish(first)   # a clean exit gives the queue back, with its cursor
    assert taken + FileSystemQueue().dequeue(sid="work") == list(range(n))


def test_a_producer_that_dies_on_another_host_is_noticed(on_redis, tmp_path):
    proc = _host("""
        import os, lazystream
        from lazystream.queue import backend
        lazystream.FileSystemQueue().enqueue("before the crash", sid="dies")
        backend().sync()
        print(os.getpid(), flush=True)
        input()
        os.kill(os.getpid(), 9)
    """, tmp_path)
    pid = int(proc.stdout.readline())
    it = tail("dies", timeout=30)
    assert next(it).data == "before the crash"
    assert lq.producer_gone("dies") is None   # alive: its heartbeat is fresh
    proc.stdin.write("\n")
    proc.stdin.flush()
    proc.wait(30)
    with pytest.raises(ProducerGone, match=rf"pid {pid} on \S+\) writing session 'dies' stopped"):
        next(it)


def test_tail_command_follows_a_session_produced_on_another_host(on_redis, tmp_path):
    tailer = _host("import sys, lazystream.cli; sys.exit(lazystream.cli.main(['tail', 'cli-sid', '--text']))",
                   tmp_path, name="tailer")
    _finish(_host(_PRODUCE.format(sid="cli-sid", n=20), tmp_path))
    assert _finish(tailer) == "".join(f"tok{i}" for i in range(20)) + "\n"


def test_the_sse_server_serves_a_session_produced_on_another_host(on_redis, tmp_path):
    from lazystream.web import follow_session
    server = _host("""
        import sys
        from lazystream.web import SessionServer
        s = SessionServer("127.0.0.1", 0)
        print(s.url, flush=True)
        s.serve_forever()
    """, tmp_path, name="web")
    try:
        url = server.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), server.stderr.read()
        _finish(_host(_PRODUCE.format(sid="web-sid", n=30), tmp_path))
        got = [(e.kind, e.data) for e in follow_session(url, "web-sid")]
        assert got == [("text", f"tok{i}") for i in range(30)] + [("end", {"status": "ok"})]
    finally:
        server.kill()
        server.communicate(timeout=30)


# --- faults -----------------------------------------------------------------------------------

_FLOOD = """
    import lazystream
    with lazystream.session({sid!r}):
        q = lazystream.FileSystemQueue()
        for i in range({n}):
            q.enqueue(f"t{{i}}")
            if i % 500 == 0:
                print(i, flush=True)
    print("done", flush=True)
"""


def _collect(sid: str, into: list) -> threading.Thread:
    t = threading.Thread(target=lambda: into.extend(e.data for e in tail(sid, timeout=60)), daemon=True)
    t.start()
    return t


def test_connections_killed_mid_stream_lose_and_duplicate_nothing(own_redis, tmp_path):
    """Every client connection (producer's pipelines, the reader's blocked XREAD and its
    dequeues) is killed again and again while 20,000 events stream between two hosts."""
    n = 20_000
    streamed: list = []
    reader = _collect("killed", streamed)
    dequeued: list = []
    consumer = threading.Thread(target=lambda: _drain(dequeued, "killed", n), daemon=True)
    consumer.start()
    producer = _host(_FLOOD.format(sid="killed", n=n), tmp_path)
    admin = own_redis.client()
    kills = 0
    for line in producer.stdout:
        if line.strip() == "done":
            break
        kills += admin.client_kill_filter(_type="normal", skipme=True)
    _finish(producer)
    reader.join(60)
    consumer.join(60)
    assert kills > 0
    assert streamed == [f"t{i}" for i in range(n)] + [{"status": "ok"}]
    assert dequeued == [f"t{i}" for i in range(n)]


def _drain(into: list, sid: str, n: int) -> None:
    q = FileSystemQueue()
    while len(into) < n:
        into.extend(q.get(timeout=60, sid=sid))


def test_redis_restarted_with_aof_mid_stream_resumes_with_nothing_lost(own_redis, tmp_path):
    n = 6000
    streamed: list = []
    reader = _collect("restarted", streamed)
    producer = _host(_FLOOD.format(sid="restarted", n=n), tmp_path)
    restarts = 0
    for line in producer.stdout:
        if line.strip() == "done":
            break
        if int(line) in (1000, 3000):
            own_redis.stop(signal.SIGKILL)   # a crash: appendfsync always kept every acknowledged write
            own_redis.start()
            restarts += 1
    _finish(producer)
    reader.join(60)
    assert restarts == 2
    assert streamed == [f"t{i}" for i in range(n)] + [{"status": "ok"}]


def test_redis_down_for_longer_than_the_reconnect_window_is_a_storage_error(own_redis, tmp_path, monkeypatch):
    monkeypatch.setenv("LAZYSTREAM_REDIS_RECONNECT", "0.5")
    lq.reset()
    q = FileSystemQueue()
    q.enqueue("stored", sid="down")
    lq.backend().sync()
    own_redis.stop()
    with pytest.raises(StorageError) as info:
        for _ in range(1_000_000):   # buffered until the window passes, then refused
            q.enqueue("lost", sid="down")
    assert f"cannot reach Redis at {own_redis.url}" in str(info.value)
    assert "LAZYSTREAM_REDIS_RECONNECT" in str(info.value)
    assert len(lq.backend()._pending) < 2 * lq._hub.MAX_PENDING   # bounded (the hub keeps and retries them)


def test_a_full_redis_is_a_storage_error_and_readers_elsewhere_see_the_producer_gone(tmp_path, monkeypatch):
    server = RedisServer(tmp_path / "full-redis", maxmemory="3mb").start()
    try:
        _use(monkeypatch, tmp_path, server)
        reader = _host("""
            import json, lazystream
            from lazystream.queue import ProducerGone, tail
            got = []
            try:
                for e in tail("full", timeout=60):
                    got.append(len(e.data))
            except ProducerGone as e:
                print(json.dumps({"gone": str(e), "got": len(got)}))
        """, tmp_path, name="reader")
        q = FileSystemQueue()
        with pytest.raises(StorageError) as info:
            for _ in range(1000):
                q.enqueue("x" * 100_000, sid="full")
                lq.backend().sync()
        assert f"Redis at {server.url} is full (maxmemory reached, noeviction)" in str(info.value)
        assert "raise maxmemory" in str(info.value)
        result = json.loads(_finish(reader))
        assert "writing session 'full' stopped without ending it" in result["gone"]
        assert result["got"] > 0
        assert [len(e.data) for e in read_session("full")] == [100_000] * result["got"]
    finally:
        lq.reset()
        server.stop(signal.SIGKILL)


# --- runs across hosts ------------------------------------------------------------------------

def test_a_run_on_another_host_is_followed_and_cancelled_from_here(on_redis, tmp_path):
    from lazystream.engine import Engine, Faults
    # the model sends one token, then stalls for a minute: only the cancel can end the run
    with Engine("one two three", model="m", faults=Faults(stall=60, stall_after=1)) as url:
        worker = _host(f"""
            from lazystream import OnlineChatModule, ThreadPoolExecutor, session
            from lazystream.runs import RunCancelled
            llm = OnlineChatModule("m", base_url={url!r}, api_key="x", stream=True, name="llm")
            with session("remote-run"):
                with ThreadPoolExecutor(1) as pool:
                    try:
                        pool.submit(llm, "q").result(timeout=60)
                        print("finished")
                    except RunCancelled:
                        print("cancelled")
        """, tmp_path, name="worker")
        events = tail("remote-run", timeout=60)
        seen = []
        for event in events:
            seen.append(event)
            if event.kind == "text":
                break
        assert lazystream.cancel("remote-run") is True   # no run here: stored for the worker's host
        seen += list(events)
        assert _finish(worker) == "cancelled\n"
    assert [e.kind for e in seen] == ["run_start", "message_start", "text", "cancel", "message_end", "run_end",
                                      "end"]
    by_kind = {e.kind: e.data for e in seen}
    assert by_kind["text"] == "one"
    assert by_kind["message_end"]["finish_reason"] == "cancelled"
    assert by_kind["run_end"]["status"] == "cancelled"
    assert lazystream.cancel("remote-run") is False   # ended
