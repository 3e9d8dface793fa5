"""Deploy tiny_server.py by a command template, print the server's and its child's pids, then wait.

Run by tests/test_trainable.py, which kills this process with a signal that skips atexit and
checks that the deployed server's process group does not outlive it.
"""
import sys
import time
from pathlib import Path

from lazystream.llm import TrainableModule

SERVER = Path(__file__).parent / "tiny_server.py"

llm = TrainableModule("tiny", ready_timeout=20,
                      deploy=f"{{python}} {SERVER} --port {{port}} --spawn-child").start()
deadline = time.monotonic() + 10
while not any("child pid" in line for line in llm.deployment.lines):
    if time.monotonic() > deadline:
        sys.exit(f"tiny server printed no child pid: {list(llm.deployment.lines)}")
    time.sleep(0.01)
child = next(line for line in llm.deployment.lines if "child pid" in line).split()[-1]
print(llm.deployment.pid, child, flush=True)
sys.stdin.read()   # until the test kills us (or closes our stdin)
