"""Long work is visible: deploy waits and ollama pulls show progress, retries are logged and
written as status events, and the scripted-engine fallback is loud and can be refused."""
from __future__ import annotations

import io
import logging
import os
import re
import shutil
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from lazystream import read_session, session
from lazystream.llm import DeployError, LLMConfigError, OnlineChatModule, TrainableModule
from lazystream.llm import _deploy
from lazystream.engine import Engine, Faults

SERVERS = Path(__file__).parent / "servers"
TINY = str(SERVERS / "tiny_server.py")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _clock(*times: float):
    ticks = iter(times)
    return lambda: next(ticks)


def test_progress_is_a_live_line_on_a_terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    out = _Terminal()
    progress = _deploy._Progress("deploy vllm (pid 7): waiting", out, _clock(100.0, 100.0, 100.2, 101.6, 112.0))
    progress.update("loading weights 1/3")
    progress.update("too soon")                  # 0.2 s later: not shown
    progress.update("loading weights 2/3")
    progress.update("")
    progress.done()
    line1 = "deploy vllm (pid 7): waiting: 0 s | loading weights 1/3"
    line2 = "deploy vllm (pid 7): waiting: 2 s | loading weights 2/3"
    line3 = "deploy vllm (pid 7): waiting: 12 s"
    assert out.getvalue() == ("\r" + line1 + "\r" + line2 + "\r" + line3.ljust(len(line2))
                              + "\r" + " " * len(line3) + "\r")


def test_progress_is_info_log_lines_otherwise(caplog):
    caplog.set_level(logging.INFO, logger="lazystream.llm")
    out = io.StringIO()
    progress = _deploy._Progress("deploy vllm (pid 7): waiting", out, _clock(0.0, 0.0, 5.0, 12.0))
    for detail in ("a", "b", "c"):
        progress.update(detail)
    progress.done()
    assert out.getvalue() == ""
    assert [r.getMessage() for r in caplog.records] == [
        "deploy vllm (pid 7): waiting: 0 s | a", "deploy vllm (pid 7): waiting: 12 s | c"]


def test_the_deploy_wait_reports_elapsed_time_and_the_server_output(monkeypatch, caplog):
    monkeypatch.setattr(_deploy, "_PROGRESS_EVERY", 0.0)   # every poll, so the test sees one
    # (a poll may come after the server printed its last line and before it answers)
    caplog.set_level(logging.INFO, logger="lazystream.llm")
    llm = TrainableModule("tiny", deploy=[sys.executable, TINY, "--port", "{port}"]).start()
    try:
        pid, url = llm.deployment.pid, llm.base_url
    finally:
        llm.stop()
    waits = [r.getMessage() for r in caplog.records if "waiting for" in r.getMessage()]
    assert waits, caplog.text
    assert all(re.fullmatch(rf"deploy template \(pid {pid}\): waiting for {url}/models: \d+ s"
                            rf"( \| tiny server: (loading tiny|listening on {urlsplit(url).port}))?", w) for w in waits), waits


@pytest.fixture
def fake_ollama(tmp_path, monkeypatch):
    exe = tmp_path / "ollama"
    exe.write_text(f"#!{sys.executable}\n" + (SERVERS / "fake_ollama.py").read_text())
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert shutil.which("ollama") == str(exe)
    monkeypatch.setattr(_deploy, "_PROGRESS_EVERY", 0.0)


def test_ollama_pull_progress_is_streamed(fake_ollama, caplog):
    caplog.set_level(logging.INFO, logger="lazystream.llm")
    llm = TrainableModule("llama3", deploy="ollama").start()
    llm.stop()
    pulls = [re.sub(r": \d+ s \| ", ": N s | ", r.getMessage()) for r in caplog.records
             if "pull" in r.getMessage()]
    assert pulls == [
        "deploy ollama: pulling llama3: N s | pulling manifest",
        "deploy ollama: pulling llama3: N s | downloading sha256:1a2b3c4d 25% (0.5 of 2.0 GB)",
        "deploy ollama: pulling llama3: N s | downloading sha256:1a2b3c4d 100% (2.0 of 2.0 GB)",
        "deploy ollama: pulling llama3: N s | verifying sha256 digest",
        "deploy ollama: pulling llama3: N s | success",
        "deploy ollama: pulled llama3"]


def test_a_failed_ollama_pull_is_a_deploy_error_and_stops_the_server(fake_ollama, monkeypatch):
    monkeypatch.setenv("FAKE_OLLAMA_FAIL_PULL", "1")
    llm = TrainableModule("nosuch", deploy="ollama")
    with pytest.raises(DeployError, match=r"^deploy 'ollama': pulling 'nosuch' failed: pull model manifest: "
                                          r"file does not exist: nosuch$"):
        llm.start()
    assert llm.deployment is None


@pytest.mark.parametrize("faults,said", [
    (Faults(fail_first=2, status=429), "rate limited"),
    (Faults(fail_first=2, status=503), "server error 503"),
])
def test_each_retry_is_logged_and_written_as_a_status_event(faults, said, caplog):
    caplog.set_level(logging.WARNING, logger="lazystream.llm")
    with Engine("recovered", faults=faults) as url, session() as sid:
        llm = OnlineChatModule("m", base_url=url, api_key="k", stream=True, max_retries=2,
                               retry_backoff=0.01, name="llm")
        assert llm("?") == "recovered"
    statuses = [e.data for e in read_session(sid) if e.kind == "status"]
    assert statuses == [f"{said}, retrying in 0.01 s", f"{said}, retrying in 0.02 s"]
    warnings = [r.getMessage() for r in caplog.records]
    assert [w.split(": HTTP")[0] for w in warnings] == [
        f"llm: {said}, retrying in 0.01 s (attempt 2 of 3)", f"llm: {said}, retrying in 0.02 s (attempt 3 of 3)"]


def test_the_engine_fallback_is_a_loud_warning_naming_the_way_out(monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("LAZYSTREAM_ENGINE_FALLBACK", raising=False)
    caplog.set_level(logging.WARNING, logger="lazystream.llm")
    llm = TrainableModule("internlm2-chat-20b").start()
    llm.stop()
    [record] = [r for r in caplog.records if "inference server" in r.getMessage()]
    assert record.levelno == logging.WARNING
    assert record.getMessage() == (
        "TrainableModule('internlm2-chat-20b'): no inference server (vllm, llama-server, ollama) on "
        "PATH; deploying the bundled scripted engine, which is not a model: its demo policy answers "
        "as model 'internlm2-chat-20b'. To use a real model, install one of them or pass "
        "deploy='vllm'|'llamacpp'|'ollama' or a command template with {port}; set "
        "LAZYSTREAM_ENGINE_FALLBACK=0 to make this an error.")


def test_the_engine_fallback_can_be_turned_off(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("LAZYSTREAM_ENGINE_FALLBACK", "0")
    with pytest.raises(LLMConfigError, match=r"no inference server \(vllm, llama-server, ollama\) on PATH "
                                             r"and LAZYSTREAM_ENGINE_FALLBACK=0 forbids the scripted engine"):
        TrainableModule("internlm2-chat-20b").start()


@pytest.mark.parametrize("faults,said", [
    (Faults(fail_first=2, status=429, retry_after=0), "rate limited"),
    (Faults(fail_first=1, status=503, retry_after=0), "server error 503"),
])
def test_the_dspy_lm_says_each_retry_too(faults, said, caplog):
    import lazystream as dspy
    caplog.set_level(logging.WARNING, logger="lazystream.programs")
    with Engine("recovered", faults=faults) as url, session() as sid:
        lm = dspy.LM("openai/m", api_base=url, api_key="k", num_retries=2, cache=False)
        assert lm("?") == ["recovered"]
    tries = faults.fail_first
    delays = ["0.5", "1"][:tries]
    assert [e.data for e in read_session(sid) if e.kind == "status"] == [f"{said}, retrying in {d} s" for d in delays]
    assert [r.getMessage() for r in caplog.records] == [
        f"LM('openai/m'): {said}, retrying in {d} s (attempt {i + 2} of 3)" for i, d in enumerate(delays)]
