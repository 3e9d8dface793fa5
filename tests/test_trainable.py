"""TrainableModule: deploy a local server, chat through it, stop it without leftovers."""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import openai
import pytest

from lazystream import FileSystemQueue, read_session, session
from lazystream.llm import DeployError, LLMConfigError, TrainableModule
from lazystream.engine import Engine

SERVER = str(Path(__file__).parent / "servers" / "tiny_server.py")
DEPLOY_AND_WAIT = str(Path(__file__).parent / "servers" / "deploy_and_wait.py")
WEATHER = [{"type": "function", "function": {
    "name": "get_current_weather", "description": "Get the current weather in a given location",
    "parameters": {"type": "object", "properties": {
        "location": {"type": "string"}, "unit": {"type": "string", "enum": ["fahrenheit", "celsius"]}},
        "required": ["location"]}}}]


def gone(pid: int, timeout: float = 10.0) -> bool:
    """Wait until ``pid`` has exited (a zombie counts as exited); False if it outlives timeout."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):   # reaped, before or while we read
            return True
        if state in ("Z", "X"):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)


def group_gone(pgid: int, timeout: float = 10.0) -> bool:
    """Wait until no process of group ``pgid`` is left but zombies; False if one outlives timeout."""
    deadline = time.monotonic() + timeout
    def live_member(pid: str) -> bool:
        try:
            with open(f"/proc/{pid}/stat") as f:
                state, _ppid, pgrp = f.read().rsplit(")", 1)[1].split()[:3]
        except (FileNotFoundError, ProcessLookupError):
            return False
        return int(pgrp) == pgid and state not in ("Z", "X")

    while True:
        if not any(live_member(pid) for pid in os.listdir("/proc") if pid.isdigit()):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)


def refused(base_url: str) -> bool:
    client = openai.OpenAI(base_url=base_url, api_key="k", max_retries=0, timeout=2)
    try:
        client.models.list()
    except openai.APIConnectionError:
        return True
    return False


def child_pid(module: TrainableModule) -> int:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for line in list(module.deployment.lines):
            if "child pid" in line:
                return int(line.split()[-1])
        time.sleep(0.02)
    raise AssertionError(f"no child pid in {list(module.deployment.lines)}")


# -- the bundled engine ------------------------------------------------------------------------
def test_engine_deploy_starts_chats_and_stops():
    llm = TrainableModule("internlm2-chat-20b", stream=True, deploy="engine").start()
    url = llm.base_url
    try:
        assert openai.OpenAI(base_url=url, api_key="k").models.list().data[0].id == "internlm2-chat-20b"
        with session() as sid:
            assert llm("Hello engine") == "Hello engine"
            assert FileSystemQueue().dequeue() == ["Hello", " engine"]
            assert {e.ns for e in read_session(sid) if e.kind == "text"} == {("trainablemodule",)}
    finally:
        llm.stop()
    assert refused(url)
    with pytest.raises(RuntimeError, match="not started; call .start"):
        llm("again")


def test_engine_instance_deploy_uses_its_policy_and_restarts():
    llm = TrainableModule("m", deploy=Engine(lambda r: f"policy saw {r.last_user}"))
    llm.start()
    assert llm("x") == "policy saw x"
    llm.stop()
    llm.start()
    try:
        assert llm("y") == "policy saw y"
    finally:
        llm.stop()


def test_seed_weather_turn_with_internlm2_raw_tool_calls():
    llm = TrainableModule("internlm2-chat-20b", stream=True, deploy="engine",
                          tool_call_format="internlm2").start()
    try:
        with session() as sid:
            result = llm("What's the weather like today in celsius in Tokyo and Paris.", tools=WEATHER)
            assert [(c["function"]["name"], c["function"]["arguments"]) for c in result["tool_calls"]] == [
                ("get_current_weather", '{"location": "Tokyo", "unit": "celsius"}'),
                ("get_current_weather", '{"location": "Paris", "unit": "celsius"}')]
            assert FileSystemQueue().dequeue() == []
            assert [e.data["name"] for e in read_session(sid) if e.kind == "tool_call"] == [
                "get_current_weather"] * 2
    finally:
        llm.stop()


def test_no_server_installed_falls_back_to_the_engine_with_a_log_line(monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("PATH", str(tmp_path))
    caplog.set_level(logging.WARNING, logger="lazystream.llm")
    llm = TrainableModule("internlm2-chat-20b").start()
    try:
        assert llm.deployment.kind == "engine"
        assert llm("hi") == "hi"
    finally:
        llm.stop()
    assert "no inference server (vllm, llama-server, ollama) on PATH; deploying the bundled " \
           "scripted engine, which is not a model" in caplog.text


# -- command deployments --------------------------------------------------------------------------
def test_command_template_deploy_starts_chats_and_leaves_no_process(caplog):
    caplog.set_level(logging.INFO, logger="lazystream.llm")
    llm = TrainableModule("tiny-model", stream=True,
                          deploy=f"{{python}} {SERVER} --port {{port}} --model {{model}} --spawn-child")
    llm.start()
    pid, child = llm.deployment.pid, child_pid(llm)
    url = llm.base_url
    try:
        with session():
            assert llm("ping") == "pong: ping"
            assert FileSystemQueue().dequeue() == ["pong:", " ping"]
    finally:
        llm.stop()
    assert gone(pid) and gone(child) and group_gone(pid)
    assert refused(url)
    # Zombies left to an init that does not reap are dead, not "survivors".
    assert f"deploy template: stopped pid {pid}" in caplog.text
    assert "survived SIGKILL" not in caplog.text


def test_command_as_argument_list():
    llm = TrainableModule("tiny", deploy=[sys.executable, SERVER, "--port", "{port}"]).start()
    try:
        assert llm("a b") == "pong: a b"
    finally:
        llm.stop()


def test_interpreter_exit_stops_the_server(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(
        "import sys, time\n"
        "from lazystream.llm import TrainableModule\n"
        f"llm = TrainableModule('tiny', deploy=[sys.executable, {SERVER!r}, '--port', '{{port}}',"
        " '--spawn-child']).start()\n"
        "print(llm.deployment.pid, flush=True)\n"
        "while not any('child pid' in l for l in llm.deployment.lines): time.sleep(0.01)\n"
        "print([l for l in llm.deployment.lines if 'child pid' in l][0].split()[-1], flush=True)\n"
        "print(llm('bye'), flush=True)\n")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=30,
                         env=dict(os.environ))
    assert out.returncode == 0, out.stderr
    pid, child, reply = out.stdout.splitlines()
    assert reply == "pong: bye"
    assert gone(int(pid)) and gone(int(child))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_deployer_killed_by_a_signal_leaves_no_server(sig):
    # A signal's default action skips atexit; the server's group must end all the same.
    deployer = subprocess.Popen([sys.executable, DEPLOY_AND_WAIT], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = deployer.stdout.readline()
        assert line, deployer.stderr.read()
        pid, child = map(int, line.split())
        assert not gone(pid, timeout=0) and not gone(child, timeout=0)   # running until the kill
        deployer.send_signal(sig)
        assert deployer.wait(10) == -sig
    finally:
        deployer.kill()
        deployer.wait()
        deployer.stdin.close()
        deployer.stdout.close()
        deployer.stderr.close()
    assert group_gone(pid) and gone(pid) and gone(child)


def test_server_that_exits_reports_its_last_output():
    llm = TrainableModule("tiny", deploy=[sys.executable, SERVER, "--port", "{port}", "--fail"])
    with pytest.raises(DeployError, match=r"exited with code 3 before it was ready(.|\n)*"
                                          r"\| tiny server: loading tiny\n  \| error: out of memory"):
        llm.start()
    assert llm.deployment is None


def test_server_never_ready_times_out_with_its_output_and_is_killed():
    llm = TrainableModule("tiny", ready_timeout=0.5,
                          deploy=[sys.executable, SERVER, "--port", "{port}", "--never-ready"])
    with pytest.raises(DeployError, match=r"did not answer within 0.5 s(.|\n)*still loading") as info:
        llm.start()
    pid = int(str(info.value).split("(pid ")[1].split(")")[0])
    assert gone(pid)


def test_bad_deploy_values_raise_clearly():
    with pytest.raises(LLMConfigError, match=r"has no \{port\} placeholder"):
        TrainableModule("m", deploy="python server.py --port 8000")
    with pytest.raises(LLMConfigError, match="unknown deploy 'vlm'; use 'engine', 'vllm', 'llamacpp', 'ollama'"):
        TrainableModule("m", deploy="vlm")
    with pytest.raises(ValueError, match="tool_call_format 'hermes' is unknown"):
        TrainableModule("m", tool_call_format="hermes")


def test_known_server_not_installed_names_the_command(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    llm = TrainableModule("Qwen/Qwen2.5-0.5B-Instruct", deploy="vllm")
    with pytest.raises(LLMConfigError, match="command 'vllm' not found on PATH.*use deploy='engine'"):
        llm.start()
