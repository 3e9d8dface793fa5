"""lazystream.stream / astream, the async readers, and readers' argument errors."""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap

import pytest

import lazystream
from lazystream import OnlineChatModule, ThreadPoolExecutor, read_session
from lazystream.engine import Engine, Faults
from lazystream.runs import RunCancelled

TOTALS = {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}


def llm_for(url, **kw):
    return OnlineChatModule("m", base_url=url, api_key="x", stream=True, name="llm", **kw)


def kinds(events):
    return [e.kind for e in events]


OK_KINDS = ["run_start", "message_start", "text", "text", "usage", "message_end", "run_end", "end"]


def test_stream_yields_the_runs_events_then_result_and_usage():
    with Engine("Hi there", model="m") as url:
        s = lazystream.stream(llm_for(url), "hello")
        with pytest.raises(RuntimeError, match="has not ended; iterate the stream"):
            s.result
        events = list(s)
    assert kinds(events) == OK_KINDS
    assert [e.data for e in events if e.kind == "text"] == ["Hi", " there"]
    assert {e.sid for e in events} == {s.sid}
    assert events == read_session(s.sid)
    assert (s.result, s.usage) == ("Hi there", TOTALS)


def test_astream_yields_the_same_events_in_the_same_order():
    async def collect(url):
        s = lazystream.astream(llm_for(url), "hello")
        return s, [e async for e in s]

    with Engine("Hi there", model="m") as url:
        sync_events = list(lazystream.stream(llm_for(url), "hello"))
        s, async_events = asyncio.run(collect(url))
    assert [(e.kind, e.ns, e.data if e.kind in ("text", "end") else None) for e in async_events] == \
        [(e.kind, e.ns, e.data if e.kind in ("text", "end") else None) for e in sync_events]
    assert (s.result, s.usage) == ("Hi there", TOTALS)


def test_stream_of_a_failing_run_yields_error_events_then_raises():
    def fail(x):
        raise ValueError(f"bad {x}")

    s = lazystream.stream(fail, "input")
    seen = []
    with pytest.raises(ValueError, match="bad input"):
        for event in s:
            seen.append((event.kind, event.data.get("status") if isinstance(event.data, dict) else None))
    assert seen == [("run_start", None), ("error", None), ("run_end", "error"), ("end", "error")]


def test_breaking_out_of_stream_cancels_the_run_and_closes_the_model_stream():
    engine = Engine("one two three four", model="m", faults=Faults(stall=60, stall_after=1))
    with engine as url:
        s = lazystream.stream(llm_for(url), "q")
        for event in s:
            if event.kind == "text":
                break
        s.close()
        assert engine.wait_disconnects(1, timeout=30)
        events = list(lazystream.tail(s.sid, timeout=30))
    assert kinds(read_session(s.sid))[-3:] == ["message_end", "run_end", "end"]
    assert events[-1].data == {"status": "cancelled"}


def test_stream_cancel_ends_the_stream_with_cancelled():
    engine = Engine("a b c d e f g h i j", model="m", tokens_per_second=5)
    with engine as url:
        s = lazystream.stream(llm_for(url), "q")
        got = []
        for event in s:   # a cancelled run is no failure: the iteration just ends
            got.append(event.kind)
            if event.kind == "text":
                s.cancel()
    assert got[-3:] == ["message_end", "run_end", "end"]
    with pytest.raises(RunCancelled):
        s.result
    assert [e.data["finish_reason"] for e in read_session(s.sid) if e.kind == "message_end"] == ["cancelled"]


def test_astream_aclose_cancels_the_run():
    engine = Engine("one two three four", model="m", faults=Faults(stall=60, stall_after=1))

    async def first_text_then_leave(url):
        s = lazystream.astream(llm_for(url), "q")
        async for event in s:
            if event.kind == "text":
                break
        await s.aclose()
        return s.sid

    with engine as url:
        sid = asyncio.run(first_text_then_leave(url))
        assert engine.wait_disconnects(1, timeout=30)
        assert list(lazystream.tail(sid, timeout=30))[-1].data == {"status": "cancelled"}


def test_stream_refuses_what_is_not_callable():
    with pytest.raises(TypeError, match="must be a module or a callable, got str 'agent'"):
        lazystream.stream("agent", "q")


# -- async readers ---------------------------------------------------------------------------
def test_atail_and_tail_yield_the_same_events():
    with Engine("Hi there", model="m") as url:
        s = lazystream.stream(llm_for(url), "hello")
        list(s)

    async def read():
        return [e async for e in lazystream.atail(s.sid)]

    assert asyncio.run(read()) == list(lazystream.tail(s.sid)) == read_session(s.sid)


def test_atail_raises_timeout_like_tail():
    async def read():
        return [e async for e in lazystream.atail("nothing-here", timeout=0.2)]

    with pytest.raises(TimeoutError, match="no event in session 'nothing-here' for 0.2 s"):
        asyncio.run(read())


def test_afollow_yields_what_follow_yields():
    with Engine("Hi there", model="m") as url:
        with ThreadPoolExecutor(1) as pool:
            sync = list(lazystream.follow(pool.submit(llm_for(url), "q")))

            async def read():
                return [x async for x in lazystream.afollow(pool.submit(llm_for(url), "q"))]

            flat = [(name, x) for name, items in asyncio.run(read()) for x in items]
    # batches depend on timing; the items, their queue and their order do not
    assert flat == [(name, x) for name, items in sync for x in items] == [
        ("lazy_stream", "Hi"), ("lazy_stream", " there")]


def test_aread_session_reads_like_read_session(own_session):
    lazystream.FileSystemQueue().enqueue("x")
    assert asyncio.run(lazystream.aread_session(own_session)) == read_session(own_session)


def test_follow_with_a_single_queue_name_says_how_to_fix_it():
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(lambda: 1)
        with pytest.raises(TypeError, match=r"single str 'lazy_stream'; write follow\(future, \['lazy_stream'\]\)"):
            list(lazystream.follow(future, "lazy_stream"))


def test_follow_of_something_not_a_future_is_refused():
    with pytest.raises(TypeError, match="must be the future that lazystream.ThreadPoolExecutor.submit returned"):
        list(lazystream.follow("sid-123"))


def test_leaving_follow_early_cancels_the_work():
    engine = Engine("one two three", model="m", faults=Faults(stall=60, stall_after=1))
    with engine as url:
        with ThreadPoolExecutor(1) as pool:
            future = pool.submit(llm_for(url), "q")
            for _ in lazystream.follow(future):
                break
            with pytest.raises(RunCancelled):
                future.result(timeout=30)
        assert engine.wait_disconnects(1, timeout=30)


# -- the implicit session of the seed's pattern ------------------------------------------------
def test_readme_pattern_in_a_process_that_stays_alive_ends_its_tail(tmp_path):
    """The seed's pattern (no session()) in a process that keeps running: a tail of its
    session from another process ends at the run's `idle`."""
    with Engine("Hi there", model="m") as url:
        code = textwrap.dedent(f"""
            import sys, threading
            import lazystream as lazyllm
            llm = lazyllm.OnlineChatModule("m", base_url={url!r}, api_key="x", stream=True)
            with lazyllm.ThreadPoolExecutor(max_workers=2) as executor:
                future = executor.submit(llm, "hello")
                while True:
                    if value := lazyllm.FileSystemQueue().dequeue():
                        pass
                    elif future.done():
                        break
            print(lazyllm.current_sid(), flush=True)
            sys.stdin.readline()   # the process stays alive until the test is done
        """)
        child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 text=True, env=dict(os.environ))
        try:
            sid = child.stdout.readline().strip()
            events = list(lazystream.tail(sid, timeout=30))
        finally:
            child.stdin.close()
            child.wait(timeout=30)
            child.stdout.close()
    assert kinds(events) == ["run_start", "message_start", "text", "text", "usage", "message_end", "run_end",
                             "idle"]
    assert events[-1].data == {"run": events[0].data["run"]}


def test_cli_tail_of_a_session_with_no_events_says_so_and_times_out():
    proc = subprocess.run([sys.executable, "-m", "lazystream", "tail", "no-events-here", "--timeout", "0.3"],
                          capture_output=True, text=True, timeout=60, env=dict(os.environ))
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == [
        "lazystream tail: session 'no-events-here' has no events yet; waiting up to 10 s for it to start "
        "(LAZYSTREAM_START_GRACE), then for its events (giving up after 0.3 s)",
        "lazystream tail: tail: no event in session 'no-events-here' for 0.3 s",
    ]
