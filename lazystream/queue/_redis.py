"""The Redis backend: sessions shared by every process and host that reaches one Redis.

Chosen with ``LAZYSTREAM_QUEUE=redis://[user:password@]host:port/db`` (``rediss://`` for
TLS); ``LAZYSTREAM_REDIS_PREFIX`` (default ``lazystream``) starts every key, so several
apps share one Redis. Needs Redis (or Valkey) 7.0 or later.

Keys of one session share a hash tag, ``<prefix>:{<sid>}:…``:

* ``…:log`` — a stream holding every event; Redis numbers the entries ``0-<seq>``
  (``XADD … 0-*``), so concurrent writers never collide and a seq is never reused while
  the key lives; fields ``q k n d t``: queue, kind, ns, data, ts;
* ``…:meta`` — a hash: the first writer's ``owner`` (its heartbeat key), ``pid``, ``host``,
  ``started``; ``ended`` and ``status`` once the ``end`` event is stored; ``w:<owner>``
  once that writer wrote here; after ``expire``, only ``pruned``, ``ended``, ``status``;
* ``…:cur`` — a hash: each queue's persisted dequeue cursor (``c:<queue>``) and its
  owner (``o:<queue>``).

Two sorted sets index sessions for ``expire``: ``<prefix>:seen`` (last write, refreshed
at most every ``_TOUCH_EVERY`` s) and ``<prefix>:ended``. ``<prefix>:batch:<owner>`` is a
writer's last batch (see ``_WRITE``). Each key also gets a TTL, a safety net for a Redis no lazystream
process expires any more. A process refreshes ``<prefix>:hb:<owner>`` (TTL
``_HEARTBEAT_TTL``) every second once it writes or dequeues, so other hosts know it lives
(``ProducerGone``, taking over a dead owner's queue). The script that stores a batch
publishes one message on ``<prefix>:stored`` naming each session it wrote, with its first
new seq and (up to ``_SHARE`` characters a message) the new events, so a reader process
elsewhere adds them to its caches without a read (``Announced``) and reads the rest of
what a message names with one ``read_many`` for all the sessions it follows.

A lost connection is retried for ``LAZYSTREAM_REDIS_RECONNECT`` seconds (default 30),
then ``StorageError`` names the URL (never its password) and the fix.
"""
from __future__ import annotations

import contextlib
import itertools
import json
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from ..events import TERMINAL, Event
from ._backend import TOMBSTONES, Announced, Backend, QueueBusy, Row, StorageError, Stored, make_event

__all__ = ["RedisBackend", "redact"]

T = TypeVar("T")

_HEARTBEAT_EVERY = 1.0      # s between a process's heartbeats
_HEARTBEAT_TTL = 3.0        # a process silent this long is gone
_READ_CHUNK = 1000
_TOUCH_EVERY = 5.0          # s between refreshes of a written session's TTLs and idle-index place
_MAX_TOUCHED = 100_000
_PACK = json.JSONEncoder(ensure_ascii=False).encode   # built once (see _backend._STRICT)
_DRAIN = 10_000             # pub/sub messages merged into one on_change call, at most
# Characters of events a store's message carries (readers elsewhere then need no read);
# the rest is only named. Bounded: Redis drops a subscriber 32 MB behind.
_SHARE = 256 * 1024

# A batch: stored at most once per (writer, batch number), then one message on the channel
# announcing it. The ``#!lua`` line makes Redis refuse the whole script when out of
# memory, instead of half-way. KEYS: seen ended; ARGV: owner batch pid host ttl_ms channel
# prefix, and one JSON array holding per session an array [sid, touch, end_ts, status,
# count, q, k, n, d, t, q, …]: touch '1' to refresh its TTLs and its place in the idle
# index (the writer asks every ``_TOUCH_EVERY`` s, not per batch: that halves Redis's work
# per event), count how many events, or '' to leave them out of the message. (One
# argument for the batch: redis-py packs each argument in Python, and three per session
# cost a third of a producer's CPU; the encoder packs the one array in C. The session's
# keys are built here, from the prefix.) ``<prefix>:batch:<owner>`` holds the writer's last
# batch number and its first seqs, so a batch re-sent after a lost reply is not stored
# twice. Returns each session's first seq. The message is NUL-separated (no sid, queue or
# owner holds a NUL): the owner, then per session its sid, first seq, count ('' when left
# out) and its events' fields joined by US (\x1f: ``q k n d t q …``, or ''); published by
# the script, so messages come in commit order. A reader splits that in C instead of
# parsing JSON; the writer leaves out a session whose queue or kind holds a US or NUL
# (JSON text and a float's repr never do).
_WRITE = """#!lua
local owner, batch, ttl, prefix = ARGV[1], ARGV[2], ARGV[5], ARGV[7]
local mark = prefix .. ':batch:' .. owner
local last = redis.call('GET', mark)
if last then
  local b, list = string.match(last, '^(%d+) (.*)$')
  if b == batch then   -- stored already: the reply was lost
    local firsts = {}
    for f in string.gmatch(list, '%d+') do firsts[#firsts + 1] = tonumber(f) end
    return firsts
  end
end
local firsts, texts, msg = {}, {}, {owner}
for _, rows in ipairs(cjson.decode(ARGV[8])) do
  local sid = rows[1]
  local base = prefix .. ':{' .. sid .. '}:'
  local log, meta = base .. 'log', base .. 'meta'
  local touch = rows[2] == '1'
  local state = redis.call('HMGET', meta, 'w:' .. owner, 'ended')
  if not state[1] then   -- new to this writer (a prune deletes the field)
    if redis.call('HEXISTS', meta, 'pruned') == 1 then
      redis.call('DEL', meta)
      state[2] = false
    end
    if redis.call('HSETNX', meta, 'owner', owner) == 1 then
      redis.call('HSET', meta, 'pid', ARGV[3], 'host', ARGV[4], 'started', rows[10])
    end
    redis.call('HSET', meta, 'w:' .. owner, '1')
    touch = true
  end
  local first = nil
  for i = 6, #rows, 5 do
    local id = redis.call('XADD', log, '0-*', 'q', rows[i], 'k', rows[i+1], 'n', rows[i+2], 'd', rows[i+3],
                          't', rows[i+4])
    if not first then first = string.sub(id, 3) end
  end
  if rows[3] ~= '' then
    redis.call('HSET', meta, 'ended', rows[3], 'status', rows[4])
    redis.call('ZADD', KEYS[2], rows[3], sid)
    redis.call('ZREM', KEYS[1], sid)
    touch = true
  elseif touch and not state[2] then
    redis.call('ZADD', KEYS[1], rows[#rows], sid)
  end
  if touch then
    redis.call('PEXPIRE', log, ttl)
    redis.call('PEXPIRE', meta, ttl)
    redis.call('PEXPIRE', base .. 'cur', ttl)
  end
  firsts[#firsts + 1] = tonumber(first)
  texts[#texts + 1] = first
  msg[#msg + 1] = sid
  msg[#msg + 1] = first
  msg[#msg + 1] = rows[5]
  msg[#msg + 1] = rows[5] ~= '' and table.concat(rows, '\\31', 6) or ''
end
redis.call('SET', mark, batch .. ' ' .. table.concat(texts, ' '), 'PX', ttl)
redis.call('PUBLISH', ARGV[6], table.concat(msg, '\\0'))
return firsts
"""
# KEYS: logs; ARGV: after (one per log), count. Each log's entries after its seq, at most
# count, as one JSON array ``[id, q, k, n, d, t, id, …]`` ('' when none): a client parses
# one string per session instead of a dozen protocol items per event.
_READ = """#!lua flags=no-writes
local out = {}
local count = ARGV[#KEYS + 1]
for i, key in ipairs(KEYS) do
  local flat = {}
  for _, e in ipairs(redis.call('XRANGE', key, '(0-' .. ARGV[i], '+', 'COUNT', count)) do
    local f = e[2]
    local n = #flat
    flat[n + 1] = e[1]
    for j = 2, 10, 2 do flat[n + j / 2 + 1] = f[j] end
  end
  out[i] = #flat == 0 and '' or cjson.encode(flat)
end
return out
"""

# KEYS: cur; ARGV: owner, hb key prefix, queue. Take over a queue unless a live owner holds it.
_CLAIM = """#!lua
local field = 'o:' .. ARGV[3]
local holder = redis.call('HGET', KEYS[1], field)
if holder and holder ~= ARGV[1] and redis.call('EXISTS', ARGV[2] .. holder) == 1 then
  return {'busy', holder}
end
redis.call('HSET', KEYS[1], field, ARGV[1])
return {'ok', redis.call('HGET', KEYS[1], 'c:' .. ARGV[3]) or '0'}
"""

# KEYS: cur; ARGV: owner, release ('1'/'0'), then queue, position pairs: persist the
# cursors this owner holds (and give them up).
_CURSORS = """#!lua
for i = 3, #ARGV, 2 do
  local q = ARGV[i]
  if redis.call('HGET', KEYS[1], 'o:' .. q) == ARGV[1] then
    redis.call('HSET', KEYS[1], 'c:' .. q, ARGV[i+1])
    if ARGV[2] == '1' then redis.call('HDEL', KEYS[1], 'o:' .. q) end
  end
end
return 0
"""

# KEYS: log meta cur seen ended; ARGV: sid, tombstone ttl_ms, now. Delete a session's
# events, keep its stream key (empty: its last id, so seqs never recur) and a tombstone.
_PRUNE = """#!lua
local n = redis.call('XLEN', KEYS[1])
local ended = redis.call('HGET', KEYS[2], 'ended') or ARGV[3]
local status = redis.call('HGET', KEYS[2], 'status') or 'idle'
redis.call('XTRIM', KEYS[1], 'MAXLEN', 0)
redis.call('DEL', KEYS[2], KEYS[3])
redis.call('HSET', KEYS[2], 'pruned', '1', 'ended', ended, 'status', status)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('ZREM', KEYS[5], ARGV[1])
return n
"""


def redact(url: str) -> str:
    """Return ``url`` with its password (if any) replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, f"{parts.username or ''}:***@{host}", parts.path, parts.query, parts.fragment))


def _seq(entry_id: str) -> int:
    return int(entry_id[2:])   # "0-<seq>"


class RedisBackend(Backend):
    """Event log in Redis Streams, shared across processes and hosts."""

    name = "redis"

    def __init__(self, url: str, *, prefix: str = "lazystream", reconnect: float = 30.0,
                 retention: float = 3600.0, idle_retention: float = 86400.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss"):
            raise ValueError(f"LAZYSTREAM_QUEUE={redact(url)!r} is not a Redis URL; "
                             "use redis://[user:password@]host:port/db or rediss://… for TLS")
        if not prefix or any(c in prefix for c in "{}"):
            raise ValueError(f"LAZYSTREAM_REDIS_PREFIX={prefix!r} must be non-empty and free of braces; "
                             "e.g. 'myapp'")
        self.where = redact(url)
        self.prefix = prefix
        self.reconnect = reconnect
        # The safety-net TTL: well past when expire() would delete a session.
        self._ttl_ms = int((max(retention, idle_retention) + TOMBSTONES) * 1000)
        self._tomb_ms = int(max(retention, TOMBSTONES) * 1000)
        try:
            # Any: with decode_responses every reply is str, which redis-py's hints cannot say.
            self._client: Any = redis.Redis.from_url(url, decode_responses=True, retry=Retry(NoBackoff(), 0),
                                                socket_connect_timeout=5, socket_timeout=30)
        except ValueError as e:
            raise ValueError(f"LAZYSTREAM_QUEUE={self.where!r} is not a valid Redis URL ({e}); "
                             "use redis://[user:password@]host:port/db") from None
        self._check_server()
        self._write = self._client.register_script(_WRITE)
        self._claim = self._client.register_script(_CLAIM)
        self._cursors = self._client.register_script(_CURSORS)
        self._prune = self._client.register_script(_PRUNE)
        self._range = self._client.register_script(_READ)
        self._channel = f"{prefix}:stored"
        self._batch = 0
        self._unsure: tuple[list[Row], int] | None = None   # a batch whose reply was lost
        self._owners: set[str] = set()
        self._stop = threading.Event()
        self._storing = threading.Event()   # clear while storing fails
        self._storing.set()
        self._heart: threading.Thread | None = None
        self._watcher: threading.Thread | None = None
        self._lock = threading.Lock()
        self._touched: dict[str, float] = {}   # sid -> when this writer last refreshed its TTLs

    # --- keys and connection --------------------------------------------------------
    def _keys(self, sid: str) -> list[str]:
        base = f"{self.prefix}:{{{sid}}}:"
        return [base + "log", base + "meta", base + "cur", f"{self.prefix}:seen", f"{self.prefix}:ended"]

    def _hb(self, owner: str) -> str:
        return f"{self.prefix}:hb:{owner}"

    def _check_server(self) -> None:
        version = self._call(lambda: self._client.info("server"), patient=False).get("redis_version", "0")
        if int(str(version).split(".")[0]) < 7:
            raise StorageError(f"Redis at {self.where} is version {version}; lazystream needs Redis or "
                               "Valkey 7.0 or later")

    def _call(self, fn: Callable[[], T], *, patient: bool = True) -> T:
        """Run ``fn``, retrying a lost connection for ``reconnect`` seconds (once if not
        ``patient``); then raise ``StorageError`` naming the URL and the fix."""
        deadline = time.monotonic() + (self.reconnect if patient else 0)
        delay = 0.02
        while True:
            try:
                return fn()
            except redis.AuthenticationError as e:
                raise StorageError(f"Redis at {self.where} refused the credentials ({e}); fix the user or "
                                   "password in LAZYSTREAM_QUEUE") from None
            except (redis.ConnectionError, redis.TimeoutError) as e:
                if time.monotonic() >= deadline:
                    raise StorageError(
                        f"cannot reach Redis at {self.where} ({e}); start it or fix LAZYSTREAM_QUEUE (tried for "
                        f"{self.reconnect:g} s; LAZYSTREAM_REDIS_RECONNECT sets how long)") from None
            except redis.ResponseError as e:
                raise StorageError(self._refused(e)) from None
            time.sleep(delay)   # backing off between reconnection attempts, not polling for data
            delay = min(delay * 2, 0.5)

    def _refused(self, error: BaseException) -> str:
        text = str(error)
        if "OOM" in text or "maxmemory" in text:
            return (f"Redis at {self.where} is full (maxmemory reached, noeviction): nothing more can be "
                    "stored; raise maxmemory, lower LAZYSTREAM_RETENTION/LAZYSTREAM_IDLE_RETENTION, or free "
                    "memory (the events wait in this process and are retried)")
        return f"Redis at {self.where} refused a command ({text})"

    # --- liveness ---------------------------------------------------------------------
    def _alive_as(self, owner: str) -> None:
        """Keep ``owner``'s heartbeat key fresh from now on (the first beat before returning)."""
        if owner in self._owners:
            return
        with self._lock:
            if owner in self._owners:
                return
            self._call(lambda: self._client.set(self._hb(owner), "1", px=int(_HEARTBEAT_TTL * 1000)))
            self._owners.add(owner)
            if self._heart is None:
                self._heart = threading.Thread(target=self._heartbeat, name="lazystream-redis-heartbeat",
                                               daemon=True)
                self._heart.start()

    def _failing(self, owner: str) -> None:
        """Storing fails: stop heart-beating until it works again, so readers on other hosts
        get ``ProducerGone`` instead of waiting for events that are not coming."""
        if self._storing.is_set():
            self._storing.clear()
            with contextlib.suppress(redis.RedisError):
                self._client.delete(self._hb(owner))   # DEL works even in a full Redis

    def _heartbeat(self) -> None:
        ttl = int(_HEARTBEAT_TTL * 1000)
        while not self._stop.wait(_HEARTBEAT_EVERY):
            if not self._storing.is_set():
                continue
            try:
                pipe = self._client.pipeline(transaction=False)
                for owner in list(self._owners):
                    pipe.set(self._hb(owner), "1", px=ttl)
                pipe.execute()
            except redis.RedisError:
                pass   # unreachable or full: others may call us gone, the writer says why

    # --- writing ----------------------------------------------------------------------
    def store(self, rows: list[Row], cursors: dict[tuple[str, str], int], owner: str) -> list[int]:
        self._alive_as(owner)
        seqs: list[int] = []
        unsure = self._unsure
        if unsure is not None and rows:
            if len(rows) >= len(unsure[0]) and all(a is b for a, b in zip(rows, unsure[0])):
                # The hub re-sends a batch whose reply we lost: store it under its old number.
                seqs = self._store_batch(unsure[0], unsure[1], owner)
                rows = rows[len(unsure[0]):]
            self._unsure = None
        if rows:
            self._batch += 1
            seqs += self._store_batch(rows, self._batch, owner)
        if cursors:
            self._save_cursors(cursors, owner, release=False)
        return seqs

    def _store_batch(self, rows: list[Row], number: int, owner: str) -> list[int]:
        groups: dict[str, list[int]] = {}
        for i, row in enumerate(rows):
            groups.setdefault(row[0], []).append(i)
        host, pid = socket.gethostname(), os.getpid()

        def send() -> list:
            sessions: list[list[str]] = []
            shared = 0
            for sid, idx in groups.items():
                touch = "1" if now - touched.get(sid, -_TOUCH_EVERY) >= _TOUCH_EVERY else ""
                flat = [sid, touch, "", "", str(len(idx))]
                plain = True
                for i in idx:
                    _, queue, kind, ns, data, ts = rows[i]
                    if kind == TERMINAL:
                        flat[2], flat[3] = repr(ts), _status_of(data)
                    if plain and (queue not in _PLAIN or kind not in _PLAIN):
                        plain = _plain(queue) and _plain(kind)
                    shared += len(data) + len(ns) + 32
                    flat += (queue, kind, ns, data, repr(ts))
                # Too much for the message, or not splittable: readers elsewhere read it.
                if not plain or shared > _SHARE:
                    flat[4] = ""
                sessions.append(flat)
            return self._write(keys=self._keys("")[3:], args=[owner, number, pid, host, self._ttl_ms,
                                                               self._channel, self.prefix, _PACK(sessions)])

        touched, now = self._touched, time.monotonic()

        try:
            firsts = self._call(send)
        except StorageError:
            self._unsure = (rows, number)   # it may have been stored: a re-send is deduplicated
            self._failing(owner)
            raise
        self._storing.set()
        if len(touched) > _MAX_TOUCHED:
            touched.clear()   # bounded: a session forgotten is merely refreshed once more
        for sid in groups:
            if now - touched.get(sid, -_TOUCH_EVERY) >= _TOUCH_EVERY:
                touched[sid] = now
        seqs = [0] * len(rows)
        for (sid, idx), first in zip(groups.items(), firsts):
            for k, i in enumerate(idx):
                seqs[i] = first + k   # one script's XADDs get consecutive ids
        return seqs

    def _save_cursors(self, cursors: dict[tuple[str, str], int], owner: str, *, release: bool) -> None:
        by_sid: dict[str, list[Any]] = {}
        for (sid, queue), pos in cursors.items():
            by_sid.setdefault(sid, []).extend((queue, pos))

        def send() -> None:
            pipe = self._client.pipeline(transaction=False)
            for sid, pairs in by_sid.items():
                self._cursors(keys=[self._keys(sid)[2]], args=[owner, "1" if release else "0", *pairs], client=pipe)
            pipe.execute()

        self._call(send)

    # --- dequeue owners ---------------------------------------------------------------
    def claim(self, sid: str, queue: str, owner: str) -> int:
        self._alive_as(owner)
        verdict, value = self._call(lambda: self._claim(keys=[self._keys(sid)[2]],
                                                        args=[owner, f"{self.prefix}:hb:", queue]))
        if verdict == "busy":
            raise QueueBusy(
                f"queue {queue!r} of session {sid!r} is being dequeued by another process (owner {value}); "
                "a queue has one destructive reader process at a time. Read it with read(after=seq) / tail() "
                "from this one, or dequeue it in that process")
        return int(value)

    def release(self, cursors: dict[tuple[str, str], int], owner: str) -> None:
        if cursors:
            self._save_cursors(cursors, owner, release=True)

    # --- reading ----------------------------------------------------------------------
    def read(self, sid: str, queues: tuple[str, ...] | None, after: int, limit: int | None) -> list[Event]:
        events: list[Event] = []
        pos = after
        while limit is None or len(events) < limit:
            rows = self.read_many({sid: pos}, _READ_CHUNK)[sid]
            for seq, queue, kind, ns, data, ts in rows:
                if queues is None or queue in queues:
                    events.append(make_event(seq, sid, queue, kind, ns, data, ts))
                    if limit is not None and len(events) >= limit:
                        break
            if len(rows) < _READ_CHUNK:
                break
            pos = rows[-1][0]
        return events

    def read_many(self, afters: dict[str, int], limit: int) -> dict[str, list[Stored]]:
        """One script call for all the sessions (one round trip, one string per session):
        a reader process brings every session another process's store named up to date."""
        if not afters:
            return {}
        sids = list(afters)
        keys = [self._keys(sid)[0] for sid in sids]
        replies = self._call(lambda: self._range(keys=keys, args=[*afters.values(), limit]))
        out: dict[str, list[Stored]] = {}
        for sid, text in zip(sids, replies):
            flat = json.loads(text) if text else []
            out[sid] = [(int(flat[i][2:]), flat[i + 1], flat[i + 2], flat[i + 3], flat[i + 4], float(flat[i + 5]))
                        for i in range(0, len(flat), 6)]
        return out

    def session_info(self, sid: str) -> dict[str, Any] | None:
        meta = self._call(lambda: self._client.hgetall(self._keys(sid)[1]))
        if not meta:
            return None
        ended = None if meta.get("ended") is None else float(meta["ended"])
        if meta.get("pruned"):
            return {"pid": None, "host": None, "started": None, "ended": ended, "status": meta.get("status"),
                    "pruned": True}
        writer = meta.get("owner", "")
        alive = ended is not None or writer in self._owners and self._storing.is_set() or \
            bool(self._call(lambda: self._client.exists(self._hb(writer))))
        return {"pid": int(meta.get("pid", 0)), "host": meta.get("host"), "started": float(meta.get("started", 0)),
                "ended": ended, "status": meta.get("status"), "pruned": False, "alive": alive}

    def sessions(self, limit: int | None) -> list[dict[str, Any]]:
        seen, ended = f"{self.prefix}:seen", f"{self.prefix}:ended"
        pipe = self._client.pipeline(transaction=False)
        pipe.zrange(seen, 0, -1, withscores=True)
        pipe.zrange(ended, 0, -1, withscores=True)
        open_, done = self._call(pipe.execute)
        last = {sid: score for sid, score in [*open_, *done]}
        sids = list(last)
        pipe = self._client.pipeline(transaction=False)
        for sid in sids:
            log, meta = self._keys(sid)[:2]
            pipe.hmget(meta, "pid", "host", "started", "ended", "status")
            pipe.xlen(log)
        replies = self._call(pipe.execute) if sids else []
        rows = []
        for k, sid in enumerate(sids):
            (pid, host, started, end, status), events = replies[2 * k], replies[2 * k + 1]
            if started is None:
                continue   # expired by its TTL meanwhile
            rows.append({"sid": sid, "pid": int(pid), "host": host, "started": float(started),
                         "ended": None if end is None else float(end), "status": status, "events": events,
                         "last": last[sid]})
        rows.sort(key=lambda r: r["started"], reverse=True)
        return rows[:limit]

    # --- retention --------------------------------------------------------------------
    def expire(self, retention: float, idle_retention: float, now: float) -> int:
        cutoff, idle_cutoff = now - retention, now - idle_retention
        seen, ended = f"{self.prefix}:seen", f"{self.prefix}:ended"
        pipe = self._client.pipeline(transaction=False)
        pipe.zrangebyscore(ended, "-inf", f"({cutoff}")
        pipe.zrangebyscore(seen, "-inf", f"({idle_cutoff}")
        pipe.zrange(seen, 0, -1)
        old_ended, idle, open_ = self._call(pipe.execute)
        deleted = 0
        for sid in {*old_ended, *idle}:
            deleted += self._call(lambda: self._prune(keys=self._keys(sid), args=[sid, self._tomb_ms, now]))  # noqa: B023 - called at once, in this iteration
        for sid in set(open_) - set(idle):
            deleted += self._drop_consumed(sid, cutoff)
        return deleted

    def _drop_consumed(self, sid: str, cutoff: float) -> int:
        """Delete an open session's events its queues' readers consumed before ``cutoff``
        (``XDEL`` keeps the stream's last id, so seqs keep growing)."""
        log, _, cur = self._keys(sid)[:3]
        cursors = {f[2:]: int(v) for f, v in self._call(lambda: self._client.hgetall(cur)).items()
                   if f.startswith("c:")}
        if not cursors or not any(cursors.values()):
            return 0
        doomed: list[str] = []
        start = "-"
        while True:
            rows = self._call(lambda: self._client.xrange(log, start, f"0-{max(cursors.values())}",  # noqa: B023 - called at once, in this iteration
                                                          count=_READ_CHUNK))
            doomed += [i for i, f in rows if float(f["t"]) < cutoff and _seq(i) <= cursors.get(f["q"], 0)]
            # ts grows with seq (up to clock skew between writers): past the cutoff, stop.
            if len(rows) < _READ_CHUNK or float(rows[-1][1]["t"]) >= cutoff:
                break
            start = "(" + rows[-1][0]
        for i in range(0, len(doomed), _READ_CHUNK):
            self._call(lambda: self._client.xdel(log, *doomed[i:i + _READ_CHUNK]))  # noqa: B023 - called at once, in this iteration
        return len(doomed)

    # --- other processes --------------------------------------------------------------
    def watch(self, on_change: Callable[..., None]) -> None:
        """Subscribe to ``<prefix>:stored`` (confirmed before returning); a thread turns
        messages from other processes into ``on_change(sids)``, and a reconnection into
        ``on_change(None)``. Pub/sub loses messages only with the connection (also when
        Redis drops a subscriber that fell behind), so no poll is needed."""
        with self._lock:
            if self._watcher is not None:
                return
            pubsub = self._subscribe()
            self._watcher = threading.Thread(target=self._watch_loop, args=(pubsub, on_change),
                                             name="lazystream-redis-watch", daemon=True)
            self._watcher.start()

    def _subscribe(self) -> Any:
        def connect() -> Any:
            pubsub = self._client.pubsub()
            pubsub.subscribe(self._channel)
            while pubsub.get_message(timeout=5) is None:   # the subscribe confirmation
                pass
            return pubsub
        return self._call(connect)

    def _heard(self, text: str, named: dict[str, _Announced | None]) -> None:
        """Add a store's message to ``named``: sid -> its announced events, or ``None``
        where they must be read (not carried, or not following what is already named)."""
        parts = text.split("\0")
        if parts[0] in self._owners:
            return   # this process's own store: the hub has handed it over already
        for i in range(1, len(parts) - 3, 4):
            sid, first, count, rows = parts[i], int(parts[i + 1]), parts[i + 2], parts[i + 3]
            if count and rows.count("\x1f") != 5 * int(count) - 1:
                count = ""   # not five fields an event (a writer of another format): read them
            if sid not in named:
                named[sid] = _Announced(first, int(count), rows) if count else None
            else:
                known = named[sid]
                if known is not None and not (count and known.extend(first, int(count), rows)):
                    named[sid] = None

    def _watch_loop(self, pubsub: Any, on_change: Callable[..., None]) -> None:
        while not self._stop.is_set():
            try:
                message = pubsub.get_message(timeout=30)
            except Exception:  # noqa: BLE001 - a killed connection shows as several error types
                with contextlib.suppress(Exception):
                    pubsub.close()
                pubsub = None
                while pubsub is None and not self._stop.is_set():
                    with contextlib.suppress(StorageError):
                        pubsub = self._subscribe()
                on_change(None)   # messages sent while we were away are lost
                continue
            # Drain what else has arrived: under load one call names the sessions of many
            # stores, and the hub brings them up to date at once.
            named: dict[str, _Announced | None] = {}
            unreadable = False
            for _ in range(_DRAIN):
                if message is None:
                    break
                if message.get("type") == "message":
                    try:
                        self._heard(message["data"], named)
                    except (ValueError, IndexError):   # another format: a writer of another version
                        unreadable = True
                try:
                    message = pubsub.get_message(timeout=0)
                except Exception:  # noqa: BLE001 - the next blocking call reconnects
                    break
            if unreadable:
                on_change(None)   # it is not known which sessions it names: all may have changed
            elif named:
                on_change(named, {sid: a for sid, a in named.items() if a is not None})
        if pubsub is not None:
            pubsub.close()

    def close(self) -> None:
        self._stop.set()
        try:
            if self._owners:   # a clean exit: others need not wait for the heartbeat TTL
                self._client.delete(*(self._hb(o) for o in self._owners))
        except redis.RedisError:
            pass
        if self._heart is not None:
            self._heart.join(timeout=5)
        self._client.close()


_PLAIN: set[str] = set()   # queue names and kinds seen free of the message's separators


def _plain(name: str) -> bool:
    """True if ``name`` holds neither US nor NUL, so a message can carry it (see ``_WRITE``)."""
    if "\x1f" in name or "\0" in name:
        return False
    if len(_PLAIN) < 4096:
        _PLAIN.add(name)
    return True


class _Announced(Announced):
    """Events a store's message carried: runs of ``(first seq, "q US k US n US d US t
    US q …")`` (Redis numbers a session's entries one by one, so a run's seqs are first,
    first+1, …)."""

    __slots__ = ("last", "runs")

    def __init__(self, first: int, count: int, rows: str) -> None:
        super().__init__(first - 1)
        self.runs = [(first, rows)]
        self.last = first + count - 1

    def extend(self, first: int, count: int, rows: str) -> bool:
        """Append the next message's run; False if it does not follow on (read instead)."""
        if first != self.last + 1:
            return False
        self.runs.append((first, rows))
        self.last = first + count - 1
        return True

    def rows(self) -> list[Stored]:
        out: list[Stored] = []
        for first, text in self.runs:
            f = text.split("\x1f")   # (fields in C: no JSON to parse, no Python loop)
            if len(f) == 5:   # one event: the common run at a model's pace
                out.append((first, f[0], f[1], f[2], f[3], float(f[4])))
                continue
            out += zip(itertools.count(first), f[0::5], f[1::5], f[2::5], f[3::5], map(float, f[4::5]))
        return out


def _status_of(data_json: str) -> str:
    data = json.loads(data_json)
    return data.get("status", "ok") if isinstance(data, dict) else "ok"
