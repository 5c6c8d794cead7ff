"""A fault-injecting HTTP proxy in front of an S3 endpoint (moto's server), for tests.

    proxy = FaultProxy(moto_endpoint, seed=13).start()   # loopback only
    env["AWS_S3_GATEWAY"] = proxy.url                    # the servers talk to S3 through it
    proxy.inject("slowdown", methods="PUT", match="/db/", times=2)
    ...
    proxy.clear(); proxy.stats["slowdown"]

A request goes through unchanged unless a rule matches it (the first matching rule
wins). A rule names a fault and which requests get it:

  fault     "slowdown"  503 SlowDown (S3's XML error body); the request never reaches S3
            "unavailable" 503 ServiceUnavailable; "internal" 500 InternalError
            "reset"     the connection is reset (RST) after the request was read
            "truncate"  S3's answer, with its Content-Length but only half of the body
            "corrupt"   S3's answer with bytes of the body flipped (same length)
            "pass"      S3's answer unchanged (with `delay`: a slow S3)
  delay     seconds to wait first (longer than the client's read timeout: a timeout);
            after the wait the request is forwarded as usual (S3 may well apply a
            request its client gave up on, as the real one does)
  methods   "GET", ("PUT", "DELETE"), ... (default: any)
  match     a regular expression searched in the path with its query (default: any)
  share     the probability that a matching request gets it (a seeded random stream)
  times     only the first `times` requests of each distinct method + path + query
            get it (a retry of the same request then goes through: deterministic
            whatever the order of concurrent requests)
  limit     at most this many injections of this rule in all

It can be driven in-process (inject/clear/stats) or over HTTP on the proxy itself:
PUT /_faults with a JSON list of rules, DELETE /_faults, GET /_faults (stats).
S3 bucket names cannot start with '_', so the path never shadows a bucket.
"""
import http.client
import http.server
import json
import random
import re
import socket
import struct
import threading
import time
from collections import Counter
from urllib.parse import urlsplit

FAULTS = ("slowdown", "unavailable", "internal", "reset", "truncate", "corrupt", "pass")
_ERRORS = {
    "slowdown": (503, "SlowDown", "Please reduce your request rate."),
    "unavailable": (503, "ServiceUnavailable", "Service is unable to handle request."),
    "internal": (500, "InternalError", "We encountered an internal error. Please try again."),
}
_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer",
        "upgrade", "expect"}
CONTROL = "/_faults"


class Rule:
    def __init__(self, fault: str, methods=(), match: str = "", share: float = 1.0,
                 times: int = 0, limit: int = 0, delay: float = 0.0):
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; one of {FAULTS}")
        self.fault = fault
        self.methods = {methods.upper()} if isinstance(methods, str) else \
            {m.upper() for m in methods}
        self.match = re.compile(match) if match else None
        self.share = float(share)
        self.times = int(times)
        self.limit = int(limit)
        self.delay = float(delay)
        self.seen: Counter = Counter()      # distinct request -> times matched
        self.injected = 0

    def to_json(self) -> dict:
        return {"fault": self.fault, "methods": sorted(self.methods),
                "match": self.match.pattern if self.match else "", "share": self.share,
                "times": self.times, "limit": self.limit, "delay": self.delay,
                "injected": self.injected}


class FaultProxy:
    def __init__(self, upstream: str, seed: int = 0, host: str = "127.0.0.1", port: int = 0):
        parts = urlsplit(upstream)
        if parts.scheme != "http":
            raise ValueError("the proxy forwards plain http (moto's server) only")
        self.upstream = (parts.hostname, parts.port or 80)
        self.rng = random.Random(seed)
        self.rules: list[Rule] = []
        self.stats: Counter = Counter()       # fault name -> injections; "requests" -> all
        self.log: list = []                   # (method, path, fault) of every injection
        self.lock = threading.Lock()
        proxy = self

        class Handler(_Handler):
            owner = proxy

        self.httpd = http.server.ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://{host}:{self.httpd.server_address[1]}"
        self._thread = None

    # ---- control --------------------------------------------------------------

    def start(self) -> "FaultProxy":
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True,
                                        name="s3-fault-proxy")
        self._thread.start()
        return self

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def inject(self, fault: str, **how) -> Rule:
        rule = Rule(fault, **how)
        with self.lock:
            self.rules.append(rule)
        return rule

    def clear(self):
        with self.lock:
            self.rules.clear()

    def reset_stats(self):
        with self.lock:
            self.stats.clear()
            self.log.clear()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ---- per request ------------------------------------------------------------

    def choose(self, method: str, path: str) -> Rule | None:
        with self.lock:
            self.stats["requests"] += 1
            for rule in self.rules:
                if rule.methods and method not in rule.methods:
                    continue
                if rule.match and not rule.match.search(path):
                    continue
                if rule.limit and rule.injected >= rule.limit:
                    continue
                if rule.times:
                    rule.seen[(method, path)] += 1
                    if rule.seen[(method, path)] > rule.times:
                        continue
                if rule.share < 1.0 and self.rng.random() >= rule.share:
                    continue
                rule.injected += 1
                self.stats[rule.fault] += 1
                self.log.append((method, path, rule.fault))
                return rule
        return None


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"        # keep-alive, as S3 clients expect
    owner: FaultProxy

    def log_message(self, *args):        # quiet
        pass

    def _body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            out = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _handle(self):
        body = self._body()
        if self.path.startswith(CONTROL):
            return self._control(body)
        rule = self.owner.choose(self.command, self.path)
        if rule is not None and rule.delay:
            time.sleep(rule.delay)
        fault = rule.fault if rule is not None else "pass"
        if fault in _ERRORS:
            return self._s3_error(*_ERRORS[fault])
        if fault == "reset":
            return self._reset()
        status, reason, headers, data = self._forward(body)
        if fault == "corrupt" and status == 200 and data:
            data = bytes(b ^ 0x5A for b in data[:64]) + data[64:]
        self.send_response(status, reason)
        for name, value in headers:
            if name.lower() not in _HOP and name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command == "HEAD":
            return
        if fault == "truncate" and data:
            self.wfile.write(data[:len(data) // 2])
            self.wfile.flush()
            return self._reset()
        self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = lambda self: self._guard()

    def _guard(self):
        try:
            self._handle()
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            self.close_connection = True     # the client gave up (a timeout): fine

    def _forward(self, body: bytes):
        conn = http.client.HTTPConnection(*self.owner.upstream, timeout=60)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
            headers["Content-Length"] = str(len(body))
            conn.request(self.command, self.path, body=body, headers=headers)
            rsp = conn.getresponse()
            data = rsp.read()
            return rsp.status, rsp.reason, rsp.getheaders(), data
        finally:
            conn.close()

    def _s3_error(self, status: int, code: str, message: str):
        body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
                f"<Message>{message}</Message><RequestId>FAULT{self.owner.stats['requests']}"
                f"</RequestId><HostId>s3-faults</HostId></Error>").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("x-amz-request-id", "FAULT")
        if self.command == "HEAD":
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _reset(self):
        """Close with RST (SO_LINGER 0): the client sees 'connection reset by peer'."""
        self.close_connection = True
        try:
            self.wfile.flush()
        except OSError:
            pass
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass

    def _control(self, body: bytes):
        owner = self.owner
        if self.command == "PUT":
            rules = json.loads(body or b"[]")
            owner.clear()
            for r in rules if isinstance(rules, list) else [rules]:
                owner.inject(r.pop("fault"), **r)
        elif self.command == "DELETE":
            owner.clear()
        with owner.lock:
            answer = json.dumps({"stats": dict(owner.stats),
                                 "rules": [r.to_json() for r in owner.rules]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)
