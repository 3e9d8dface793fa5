"""A private ``redis-server`` for tests: on a free loopback port, killable and restartable.

Tests never touch a shared Redis (127.0.0.1:6379): each server here has its own port and
directory. ``require_redis()`` skips, with the reason, where no ``redis-server`` binary
exists, unless ``LAZYSTREAM_REQUIRE_REDIS`` is set (CI), where it fails instead.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

_BINARY = "redis-server"


def require_redis() -> str:
    """Return the path of ``redis-server``, or skip (fail under LAZYSTREAM_REQUIRE_REDIS)."""
    path = shutil.which(_BINARY)
    if path is None:
        reason = ("redis-server not found on PATH: the Redis backend tests need it "
                  "(apt-get install redis-server); LAZYSTREAM_REQUIRE_REDIS=1 turns this skip into a failure")
        if os.environ.get("LAZYSTREAM_REQUIRE_REDIS"):
            pytest.fail(reason)
        print(f"SKIP: {reason}")
        pytest.skip(reason)
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """One ``redis-server`` process; ``stop``/``kill`` and ``start`` again keep port and data."""

    def __init__(self, directory: Path, *, aof: bool = False, maxmemory: str | None = None) -> None:
        self.binary = require_redis()
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.aof = aof
        self.maxmemory = maxmemory
        self.port = _free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
                "--save", "", "--daemonize", "no", "--loglevel", "warning",
                "--appendonly", "yes" if self.aof else "no", "--appendfsync", "always"]
        if self.maxmemory:
            args += ["--maxmemory", self.maxmemory, "--maxmemory-policy", "noeviction"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while True:   # until it accepts connections and has loaded its data
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited: {self.proc.stderr.read().decode(errors='replace')}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(64).startswith(b"+PONG"):
                        return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server on port {self.port} did not answer within {timeout} s")
            time.sleep(0.01)   # waiting for a child process to listen: there is nothing to wait on

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the server (SIGTERM: a clean shutdown that flushes the AOF; SIGKILL: a crash)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(10)
        if self.proc is not None and self.proc.stderr is not None:
            self.proc.stderr.close()
        self.proc = None

    def client(self):
        import redis
        return redis.Redis(host="127.0.0.1", port=self.port, decode_responses=True)
