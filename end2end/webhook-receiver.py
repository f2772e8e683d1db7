#!/usr/bin/env python3
"""A webhook endpoint for Director's tests, written apart from Director: it checks each POST's
X-Director-Signature with Python's own hmac module, as a receiver would.

    python3 webhook-receiver.py PORT

Every path is an endpoint. Control requests (never signed):
    PUT /_secret/<path>   body: the endpoint's secret (from Director's answer when it was added)
    PUT /_status/<path>   body: statuses to answer in turn, "503,302" (then 204 for ever)
    GET /_received        every POST so far, as JSON: path, headers, body, verified
It prints "webhook receiver on PORT" once it listens.
"""

import hashlib
import hmac
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

lock = threading.Lock()
secrets = {}
statuses = {}
received = []


def verified(secret, header, body):
    """Whether `header` (t=<unix>,v1=<hex>) signs `body` with `secret`, sent within 5 minutes."""
    if secret is None or not header:
        return False
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        sent = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(time.time() - sent) > 300:
        return False
    expected = hmac.new(secret.encode(), f"{sent}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts.get("v1", ""))


class Handler(BaseHTTPRequestHandler):
    def body(self):
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def answer(self, status, payload=b""):
        self.send_response(status)
        if status in (301, 302, 307, 308):
            self.send_header("Location", "http://127.0.0.1:1/elsewhere")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_PUT(self):
        value = self.body().decode()
        with lock:
            if self.path.startswith("/_secret/"):
                secrets["/" + self.path[len("/_secret/"):]] = value
            elif self.path.startswith("/_status/"):
                statuses["/" + self.path[len("/_status/"):]] = [int(s) for s in value.split(",") if s]
            else:
                return self.answer(404)
        self.answer(204)

    def do_GET(self):
        if self.path != "/_received":
            return self.answer(404)
        with lock:
            payload = json.dumps(received).encode()
        self.answer(200, payload)

    def do_POST(self):
        body = self.body()
        with lock:
            ok = verified(secrets.get(self.path), self.headers.get("X-Director-Signature"), body)
            queue = statuses.get(self.path) or []
            status = queue.pop(0) if queue else 204
            received.append({
                "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": json.loads(body or b"null"),
                "verified": ok,
                "answered": status,
            })
        self.answer(status)

    def log_message(self, *args):
        pass


def main():
    port = int(sys.argv[1])
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print(f"webhook receiver on {port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
