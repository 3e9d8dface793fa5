"""Timeouts of coroutines waiting on the hub (``aget``): one timer per loop settles every
wait that is due, whatever order the waits were started in, and forgets woken ones."""
from __future__ import annotations

import asyncio
import threading

from lazystream import FileSystemQueue
from lazystream.queue import _timeouts


def test_every_aget_returns_after_its_own_timeout(fresh_home):
    q = FileSystemQueue.get_instance("timeouts")
    timeouts = [0.3, 0.1, 0.5, 0.1, 0.2, 0.05]

    async def main() -> list[tuple[float, float, list]]:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        done: list[tuple[float, float, list]] = []

        async def one(i: int, timeout: float) -> None:
            got = await q.aget(timeout=timeout, sid=f"timeouts-{i}")
            done.append((timeout, loop.time() - t0, got))

        await asyncio.gather(*(one(i, t) for i, t in enumerate(timeouts)))
        return done

    done = asyncio.run(main())
    assert [got for _, _, got in done] == [[]] * len(timeouts)
    assert all(elapsed >= timeout for timeout, elapsed, _ in done)
    assert sorted(timeout for timeout, _, _ in done) == sorted(timeouts)
    assert done[-1][0] == 0.5   # (200 ms after the next: the order of the rest may vary under load)


def test_a_short_timeout_after_a_long_one_fires_and_the_long_one_still_gets_its_data(fresh_home):
    q = FileSystemQueue.get_instance("timeouts")

    async def main() -> tuple[list, list, list, float]:
        loop = asyncio.get_running_loop()
        long = asyncio.ensure_future(q.aget(timeout=30, sid="timeouts-long"))
        await asyncio.sleep(0.05)            # the long wait is registered (its timer at +30 s)
        t0 = loop.time()
        short = await q.aget(timeout=0.1, sid="timeouts-short")
        waited = loop.time() - t0
        again = await q.aget(timeout=0.05, sid="timeouts-short")   # after a sweep, a timer again
        assert not long.done()
        q.enqueue("late", sid="timeouts-long")
        return short, again, await long, waited

    short, again, long, waited = asyncio.run(main())
    assert (short, again, long) == ([], [], ["late"])
    assert waited >= 0.1


def test_waits_woken_by_data_are_forgotten(fresh_home):
    """Thousands of waits with a long timeout, each woken by an item: the loop's table
    keeps at most a bounded few of them (it drops woken ones as it grows)."""
    q = FileSystemQueue.get_instance("timeouts")

    async def main() -> tuple[list, int]:
        got = []

        async def read() -> None:
            while len(got) < 3000:
                got.extend(await q.aget(timeout=60, sid="timeouts-many"))

        reader = asyncio.ensure_future(read())
        for i in range(3000):
            await asyncio.sleep(0)
            q.enqueue(i, sid="timeouts-many")
        await reader
        return got, len(_timeouts._by_loop[asyncio.get_running_loop()].entries)

    got, left = asyncio.run(main())
    assert got == list(range(3000))
    assert left <= 2 * _timeouts._MIN_PRUNE


def test_loops_in_two_threads_time_out_each_on_its_own(fresh_home):
    q = FileSystemQueue.get_instance("timeouts")
    results: dict[int, list] = {}

    def run(i: int) -> None:
        async def main() -> list:
            return [await q.aget(timeout=0.1 * (i + 1), sid=f"timeouts-thread-{i}-{k}") for k in range(3)]
        results[i] = asyncio.run(main())

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results == {0: [[], [], []], 1: [[], [], []]}
