"""Shared fixtures: every test run gets its own LAZYSTREAM_HOME, never the user's."""
from __future__ import annotations

import os
import sys
import tempfile
import uuid

import pytest

sys.path.insert(0, os.path.dirname(__file__))   # test helpers (redis_server) import by name
os.environ["LAZYSTREAM_HOME"] = tempfile.mkdtemp(prefix="lazystream-test-home-")
os.environ.pop("OPENAI_API_KEY", None)
os.environ.pop("OPENAI_BASE_URL", None)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """One private redis-server for the whole run (tests that kill it start their own)."""
    from redis_server import RedisServer
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "memory", "redis"])
def backend_kind(request, monkeypatch, tmp_path):
    """Run a test once per queue backend, each on a fresh store (Redis: a fresh key prefix)."""
    import lazystream.queue as q
    monkeypatch.setenv("LAZYSTREAM_HOME", str(tmp_path / "home"))
    if request.param == "redis":
        server = request.getfixturevalue("redis_server")
        monkeypatch.setenv("LAZYSTREAM_QUEUE", server.url)
        monkeypatch.setenv("LAZYSTREAM_REDIS_PREFIX", f"t{uuid.uuid4().hex[:12]}")
    else:
        monkeypatch.setenv("LAZYSTREAM_QUEUE", request.param)
    q.reset()
    yield request.param
    q.reset()


@pytest.fixture
def fresh_home(monkeypatch, tmp_path):
    """A fresh SQLite store in a new LAZYSTREAM_HOME; returns the home path."""
    import lazystream.queue as q
    home = tmp_path / "home"
    monkeypatch.setenv("LAZYSTREAM_HOME", str(home))
    monkeypatch.setenv("LAZYSTREAM_QUEUE", "sqlite")
    q.reset()
    yield home
    q.reset()


@pytest.fixture(autouse=True)
def own_session():
    """Each test runs in a session of its own, so no test reads another's leftovers."""
    import lazystream
    with lazystream.session() as sid:
        yield sid


@pytest.fixture(scope="module")
def engine():
    """The bundled engine answering as a model for programs (ChatAdapter/JSONAdapter)."""
    from lazystream.engine import Engine
    from lazystream.programs import program_policy
    eng = Engine(program_policy)
    eng.start()
    yield eng
    eng.stop()


@pytest.fixture
def lm(engine):
    """An uncached ``LM`` on the program engine."""
    from lazystream.programs import LM
    return LM("openai/gpt-4o-mini", api_base=engine.base_url, cache=False)
