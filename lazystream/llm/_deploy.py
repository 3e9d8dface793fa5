"""Local inference servers for ``TrainableModule``: commands, readiness, clean shutdown.

A deployment is either the bundled engine (in-process, a thread) or a server process
started from a command on a free port. Processes run in their own process group, so
``stop()`` ends the server and everything it spawned; a registry of live deployments
(the one piece of process-wide state here) is stopped at interpreter exit. For the deaths
that skip ``atexit`` (SIGTERM, SIGKILL, ``os._exit``), each server has a watchdog process
that stops its group once this process is gone.
"""
from __future__ import annotations

import atexit
import collections
import json
import logging
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import weakref
from collections.abc import Callable, Sequence
from typing import TextIO

from ..engine import Engine
from . import _process_group
from .errors import DeployError, LLMConfigError

__all__ = ["KNOWN", "Deployment", "EngineDeployment", "ProcessDeployment", "deployment_for"]

log = logging.getLogger("lazystream.llm")

# The documented serve command of each inference server; {model} and {port} are filled in.
KNOWN: dict[str, tuple[str, list[str]]] = {
    "vllm": ("vllm", ["vllm", "serve", "{model}", "--host", "127.0.0.1", "--port", "{port}"]),
    "llamacpp": ("llama-server", ["llama-server", "{model_flag}", "{model}", "--jinja",
                                  "--host", "127.0.0.1", "--port", "{port}"]),
    "ollama": ("ollama", ["ollama", "serve"]),
}
_READY_TIMEOUT = {"engine": 10.0, "template": 120.0, "vllm": 900.0, "llamacpp": 900.0,
                  "ollama": 900.0}
_LAST_LINES = 40
# stop() and the watchdog: each signal to the server's group, then how long it may take to end.
_TERM_GRACE = 10.0
_KILL_GRACE = 5.0
# deploy="engine" stands in for a model: it streams at a fast model's pace, so a reader
# polling the queue sees the tokens arrive one by one, as the seed shows.
ENGINE_TOKENS_PER_SECOND = 200.0
_live: weakref.WeakSet[Deployment] = weakref.WeakSet()
# Progress of a long wait: a live line on a terminal every _LIVE_EVERY s, else an INFO log
# line every _PROGRESS_EVERY s (a log file should not get a line per poll).
_LIVE_EVERY = 0.5
_PROGRESS_EVERY = 10.0
# LAZYSTREAM_ENGINE_FALLBACK=0: no silent stand-in for a model when no server is installed.
_FALLBACK_VARIABLE = "LAZYSTREAM_ENGINE_FALLBACK"


class _Progress:
    """Shows how a long wait goes: elapsed seconds and the latest detail (a server's last
    output line, a download's percentage). On a terminal it rewrites one live line on
    ``stream``; otherwise it logs an INFO line now and then."""

    def __init__(self, what: str, stream: TextIO | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.what = what
        self.stream = sys.stderr if stream is None else stream
        isatty = getattr(self.stream, "isatty", None)
        self.live = bool(isatty and isatty())
        self.clock = clock
        self.started = clock()
        self._last: float | None = None
        self._shown = 0

    def update(self, detail: str = "") -> None:
        """Show the elapsed time and ``detail``, unless the last showing was too recent."""
        now = self.clock()
        if self._last is not None and now - self._last < (_LIVE_EVERY if self.live else _PROGRESS_EVERY):
            return
        self._last = now
        text = f"{self.what}: {now - self.started:.0f} s" + (f" | {detail.strip()}" if detail.strip() else "")
        if not self.live:
            log.info("%s", text)
            return
        text = text[:max(20, shutil.get_terminal_size().columns - 1)]
        self.stream.write("\r" + text.ljust(self._shown))
        self.stream.flush()
        self._shown = len(text)

    def done(self) -> None:
        """Clear the live line (log lines stay)."""
        if self.live and self._shown:
            self.stream.write("\r" + " " * self._shown + "\r")
            self.stream.flush()
            self._shown = 0


class Deployment:
    """A running OpenAI-compatible server: ``base_url``, ``model``; ``stop()`` ends it."""

    base_url: str
    model: str
    kind: str

    def start(self, ready_timeout: float | None) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError


class EngineDeployment(Deployment):
    """The bundled scripted engine, served from a thread of this process."""

    kind = "engine"

    def __init__(self, engine: Engine, model: str) -> None:
        self.engine = engine
        self.model = model

    def start(self, ready_timeout: float | None) -> None:
        self.base_url = self.engine.start()
        _live.add(self)

    def stop(self) -> None:
        self.engine.stop()
        _live.discard(self)


class ProcessDeployment(Deployment):
    """A server process started from ``args`` (placeholders already filled in)."""

    def __init__(self, kind: str, args: list[str], port: int, model: str,
                 env: dict[str, str] | None = None) -> None:
        self.kind = kind
        self.args = args
        self.port = port
        self.model = model
        self.env = env
        self.base_url = f"http://127.0.0.1:{port}/v1"
        self.proc: subprocess.Popen[str] | None = None
        self.lines: collections.deque[str] = collections.deque(maxlen=_LAST_LINES)
        self._reader: threading.Thread | None = None
        self._watchdog: _Watchdog | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def start(self, ready_timeout: float | None) -> None:
        """Start the process and wait until ``/v1/models`` answers 200.

        Raises ``LLMConfigError`` if the command is not installed and ``DeployError`` if the
        process exits or is not ready within ``ready_timeout`` (its last output included).
        """
        env = dict(os.environ, **(self.env or {}))
        # The watchdog starts first, so the server is guarded from the moment it exists.
        watchdog = _Watchdog()
        try:
            self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=subprocess.STDOUT, text=True, errors="replace",
                                         bufsize=1, start_new_session=True, env=env)
        except FileNotFoundError as e:
            watchdog.release()
            raise LLMConfigError(f"deploy {self.kind!r}: command {self.args[0]!r} not found on PATH "
                                 f"({shlex.join(self.args)}); install it or use deploy='engine'") from e
        except BaseException:
            watchdog.release()
            raise
        watchdog.guard(self.proc.pid)
        self._watchdog = watchdog
        _live.add(self)
        log.info("deploy %s: started pid %d: %s", self.kind, self.proc.pid, shlex.join(self.args))
        self._reader = threading.Thread(target=self._read_output, daemon=True,
                                        name=f"lazystream-deploy:{self.port}")
        self._reader.start()
        timeout = _READY_TIMEOUT.get(self.kind, _READY_TIMEOUT["template"]) if ready_timeout is None \
            else ready_timeout
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def _read_output(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            self.lines.append(line)
            log.debug("deploy %s[%d]: %s", self.kind, self.proc.pid, line)

    def _last_output(self) -> str:
        if self._reader is not None and self.proc is not None and self.proc.poll() is not None:
            self._reader.join(1.0)   # the process is gone: let the reader drain its pipe
        lines = list(self.lines)
        return "\n".join(f"  | {line}" for line in lines) if lines else "  | (no output)"

    def _wait_ready(self, timeout: float) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        url = f"{self.base_url}/models"
        delay = 0.02
        who = f"deploy {self.kind!r} (pid {self.proc.pid})"
        progress = _Progress(f"deploy {self.kind} (pid {self.proc.pid}): waiting for {url}")
        try:
            self._poll_ready(progress, who, url, deadline, timeout, delay)
        finally:
            progress.done()

    def _poll_ready(self, progress: _Progress, who: str, url: str, deadline: float, timeout: float,
                    delay: float) -> None:
        assert self.proc is not None
        while True:
            code = self.proc.poll()
            if code is not None:
                raise DeployError(f"{who}: the server exited with code {code} before it was ready "
                                  f"({shlex.join(self.args)}); last output:\n{self._last_output()}")
            if _answers(url):
                log.info("deploy %s: ready at %s", self.kind, self.base_url)
                return
            if time.monotonic() >= deadline:
                raise DeployError(f"{who}: {url} did not answer within {timeout:g} s "
                                  f"({shlex.join(self.args)}); pass ready_timeout= to wait longer; "
                                  f"last output:\n{self._last_output()}")
            progress.update(self.lines[-1] if self.lines else "")
            # Polling an external process: there is nothing to wait on but its port.
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)

    def stop(self) -> None:
        """Terminate the server's whole process group (SIGTERM, then SIGKILL). Idempotent."""
        proc, self.proc = self.proc, None
        watchdog, self._watchdog = self._watchdog, None
        _live.discard(self)
        if proc is None:
            return
        for sig, grace in ((signal.SIGTERM, _TERM_GRACE), (signal.SIGKILL, _KILL_GRACE)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break   # the group is empty
            deadline = time.monotonic() + grace
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                continue
            # The server is reaped; what it spawned gets the rest of the grace to end too.
            if _wait_group_gone(proc.pid, deadline):
                break
        else:
            log.warning("deploy %s: process group %d survived SIGKILL", self.kind, proc.pid)
        # Only now: were stop() interrupted above, the watchdog would still finish the job.
        if watchdog is not None:
            watchdog.release()
        if proc.stdout is not None:
            proc.stdout.close()
        log.info("deploy %s: stopped pid %d", self.kind, proc.pid)


def _wait_group_gone(pgid: int, deadline: float) -> bool:
    """Wait until process group ``pgid`` is gone; False if it is still there at ``deadline``."""
    while _process_group.alive(pgid):
        if time.monotonic() >= deadline:
            return False
        # Other members of the group are not our children: there is nothing to wait on.
        time.sleep(0.02)
    return True


class _Watchdog:
    """A process that stops a server's process group if this process dies without ``stop()``.

    ``atexit`` does not run when this process is killed by a signal or leaves by ``os._exit``,
    and the server, in its own session, would keep running with everything it spawned. A pipe
    is the one "parent died" signal that works for every kind of death, SIGKILL included (a
    ``PR_SET_PDEATHSIG`` fires when the forking *thread* ends and reaches the server alone).
    Limit: a child forked from this process without exec (``multiprocessing``'s fork start
    method) inherits the pipe, so the watchdog also waits for that child to end.
    """

    def __init__(self) -> None:
        read_end, write_end = os.pipe()
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-I", _process_group.__file__, str(_TERM_GRACE), str(_KILL_GRACE)],
                stdin=read_end, stdout=subprocess.DEVNULL, start_new_session=True)
        except BaseException:
            os.close(write_end)
            raise
        finally:
            os.close(read_end)
        self._pipe = os.fdopen(write_end, "wb", buffering=0)

    def guard(self, pgid: int) -> None:
        """Watch process group ``pgid`` from now on."""
        self._pipe.write(f"{pgid}\n".encode())

    def release(self) -> None:
        """End the watchdog without it touching the group (``stop()`` has done its job)."""
        self._proc.kill()
        self._proc.wait()
        self._pipe.close()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2.0) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False   # not listening yet


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _fill(args: Sequence[str], values: dict[str, str]) -> list[str]:
    out = []
    for arg in args:
        for key, value in values.items():
            arg = arg.replace("{" + key + "}", value)
        out.append(arg)
    return out


def detect() -> str:
    """The deploy to use when none is given: the first installed server, else the engine."""
    for kind, (exe, _) in KNOWN.items():
        if shutil.which(exe):
            return kind
    return "engine"


def deployment_for(deploy: object, model: str, tool_call_format: str | None) -> Deployment:
    """Build (not start) the deployment ``deploy`` describes for ``model``.

    Raises ``LLMConfigError`` for an unknown deploy or a template without ``{port}``.
    """
    if deploy is None:
        deploy = detect()
        if deploy == "engine":
            answered_as = model or "lazystream-engine"
            if os.environ.get(_FALLBACK_VARIABLE, "1").strip().lower() in ("0", "false", "no", "off"):
                raise LLMConfigError(
                    f"TrainableModule({model!r}): no inference server (vllm, llama-server, ollama) on "
                    f"PATH and {_FALLBACK_VARIABLE}=0 forbids the scripted engine; install one, or "
                    f"pass deploy='vllm'|'llamacpp'|'ollama' or a command such as "
                    f"'python my_server.py --port {{port}}'")
            log.warning("TrainableModule(%r): no inference server (vllm, llama-server, ollama) on "
                        "PATH; deploying the bundled scripted engine, which is not a model: its demo "
                        "policy answers as model %r. To use a real model, install one of them or "
                        "pass deploy='vllm'|'llamacpp'|'ollama' or a command template with {port}; "
                        "set %s=0 to make this an error.", model, answered_as, _FALLBACK_VARIABLE)
    if isinstance(deploy, Engine):
        return EngineDeployment(deploy, model or deploy.model)
    if deploy == "engine":
        engine = Engine(model=model or "lazystream-engine", tool_call_format=tool_call_format,
                        tokens_per_second=ENGINE_TOKENS_PER_SECOND)
        return EngineDeployment(engine, model or "lazystream-engine")
    if isinstance(deploy, str) and deploy in KNOWN:
        if not model:
            raise LLMConfigError(f"deploy={deploy!r} needs a base_model to serve")
        port = free_port()
        model_flag = "-m" if model.endswith(".gguf") or os.path.exists(model) else "-hf"
        args = _fill(KNOWN[deploy][1], {"model": model, "port": str(port), "model_flag": model_flag})
        env = {"OLLAMA_HOST": f"127.0.0.1:{port}"} if deploy == "ollama" else None
        return (_OllamaDeployment if deploy == "ollama" else ProcessDeployment)(
            deploy, args, port, model, env)
    if isinstance(deploy, (list, tuple)) and all(isinstance(a, str) for a in deploy) and deploy:
        template = list(deploy)
    elif isinstance(deploy, str) and (" " in deploy.strip() or "{port}" in deploy):
        template = shlex.split(deploy)
    else:
        raise LLMConfigError(f"TrainableModule: unknown deploy {deploy!r}; use 'engine', 'vllm', "
                             f"'llamacpp', 'ollama', an Engine(...), or a command template with "
                             f"{{port}} such as 'python my_server.py --port {{port}}'")
    if not any("{port}" in a for a in template):
        raise LLMConfigError(f"TrainableModule: deploy command {shlex.join(template)!r} has no {{port}} "
                             f"placeholder; the server must listen on the port lazystream picks, "
                             f"e.g. 'python my_server.py --port {{port}}'")
    port = free_port()
    args = _fill(template, {"port": str(port), "model": model, "host": "127.0.0.1",
                            "python": sys.executable})
    return ProcessDeployment("template", args, port, model)


class _OllamaDeployment(ProcessDeployment):
    """``ollama serve`` on its own port, then the model pulled if it is not there yet."""

    def start(self, ready_timeout: float | None) -> None:
        super().start(ready_timeout)
        root = self.base_url[: -len("/v1")]
        # Streamed: one JSON object per line ({"status", "digest", "total", "completed"} or
        # {"error"}), shown as it comes, so a download of gigabytes is not a silent wait.
        body = json.dumps({"model": self.model, "stream": True}).encode()
        request = urllib.request.Request(f"{root}/api/pull", method="POST", data=body,
                                         headers={"Content-Type": "application/json"})
        progress = _Progress(f"deploy ollama: pulling {self.model}")
        try:
            with urllib.request.urlopen(request, timeout=ready_timeout or _READY_TIMEOUT["ollama"]) as response:
                for raw in response:
                    try:
                        item = json.loads(raw)
                    except ValueError:
                        continue   # not a progress object: nothing to show
                    if not isinstance(item, dict):
                        continue
                    if item.get("error"):
                        raise DeployError(f"deploy 'ollama': pulling {self.model!r} failed: {item['error']}")
                    progress.update(_pull_status(item))
            log.info("deploy ollama: pulled %s", self.model)
        except (urllib.error.URLError, OSError, DeployError) as e:
            self.stop()
            if isinstance(e, DeployError):
                raise
            raise DeployError(f"deploy 'ollama': pulling {self.model!r} failed: {e}; last output:\n"
                              f"{self._last_output()}") from e
        finally:
            progress.done()


def _pull_status(item: dict[str, object]) -> str:
    """``downloading sha256:1a2b3c4d 45% (1.2 of 2.7 GB)`` from one ``/api/pull`` line."""
    text = str(item.get("status") or "")
    total, completed = item.get("total"), item.get("completed")
    if isinstance(total, int) and total > 0 and isinstance(completed, int):
        text += f" {100 * completed // total}% ({completed / 1e9:.1f} of {total / 1e9:.1f} GB)"
    return text


@atexit.register
def _stop_all() -> None:
    for deployment in list(_live):
        deployment.stop()
