"""A minimal OpenAI-compatible server (stdlib only) for TrainableModule's command deploy tests.

Replies "pong: <last user message>" (streaming or not). Flags: --fail (print a loading
error and exit 3), --never-ready (print and never listen), --spawn-child (start a child
process and print its pid, to check that the whole process group is stopped).
"""
import argparse
import json
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--model", default="tiny")
parser.add_argument("--fail", action="store_true")
parser.add_argument("--never-ready", action="store_true")
parser.add_argument("--spawn-child", action="store_true")
args = parser.parse_args()

print(f"tiny server: loading {args.model}", flush=True)
if args.fail:
    print("error: out of memory while loading weights", flush=True)
    sys.exit(3)
if args.never_ready:
    print("tiny server: still loading...", flush=True)
    while True:
        time.sleep(3600)
if args.spawn_child:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
    print(f"tiny server: child pid {child.pid}", flush=True)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def send(self, payload):
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.send({"object": "list", "data": [{"id": args.model, "object": "model", "owned_by": "tiny"}]})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        text = "pong: " + body["messages"][-1]["content"]
        base = {"id": "chatcmpl-tiny", "created": 0, "model": body["model"]}
        if not body.get("stream"):
            return self.send({**base, "object": "chat.completion", "choices": [
                {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}]})
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        pieces = [{"content": w} for w in text.split(" ")[:1] + [" " + w for w in text.split(" ")[1:]]]
        for delta, finish in [(d, None) for d in pieces] + [({}, "stop")]:
            chunk = {**base, "object": "chat.completion.chunk",
                     "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")


print(f"tiny server: listening on {args.port}", flush=True)
ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()
