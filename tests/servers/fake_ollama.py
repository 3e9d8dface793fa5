"""A stand-in for ``ollama`` (stdlib only) for TrainableModule's deploy="ollama" tests.

``ollama serve`` listens on $OLLAMA_HOST and answers ``GET /v1/models`` and a streamed
``POST /api/pull`` (NDJSON progress lines, as Ollama writes them). ``--fail-pull`` makes the
pull end with an ``{"error": ...}`` line.
"""
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

if sys.argv[1:2] != ["serve"]:
    sys.exit(f"fake ollama: only 'serve' is implemented, got {sys.argv[1:]}")
host, _, port = os.environ["OLLAMA_HOST"].rpartition(":")
fail_pull = os.environ.get("FAKE_OLLAMA_FAIL_PULL") == "1"
print("fake ollama: listening", flush=True)

PULL = [{"status": "pulling manifest"},
        {"status": "downloading sha256:1a2b3c4d", "digest": "sha256:1a2b3c4d", "total": 2_000_000_000,
         "completed": 500_000_000},
        {"status": "downloading sha256:1a2b3c4d", "digest": "sha256:1a2b3c4d", "total": 2_000_000_000,
         "completed": 2_000_000_000},
        {"status": "verifying sha256 digest"},
        {"status": "success"}]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_GET(self):
        data = json.dumps({"object": "list", "data": [{"id": "m", "object": "model"}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        assert body["stream"] is True, body
        lines = PULL[:2] + [{"error": f"pull model manifest: file does not exist: {body['model']}"}] \
            if fail_pull else PULL
        data = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


ThreadingHTTPServer((host, int(port)), Handler).serve_forever()
