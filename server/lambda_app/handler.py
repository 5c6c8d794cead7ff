"""The whole server in one Lambda function: `lambda_handler(event, context)`.

A warm function instance keeps one event loop, one store client and the SN's
aiohttp app (with LocalNodes: the DN logic in-process) served on a loopback
port of its own process. Each event becomes one HTTP request to that app, so
every route, check and middleware is the server's own; the answer is returned
in the form the event came in (events.py). Nothing runs between invocations and
nothing is left unwritten when an answer goes out (nodes.py).
"""
import asyncio
import base64
import json
import logging
import os
import time

import aiohttp
from aiohttp import web

from ..config import keep_freed_memory, load_settings
from ..sn.app import make_app
from ..sn.service import Service
from ..storage import open_store
from . import LOADED_AT, events
from .nodes import LocalNodes

log = logging.getLogger("h5cloud.lambda")


class Runtime:
    """The server of one function instance (built on the first invocation)."""

    def __init__(self, function_name: str):
        self.function = function_name
        self.loop = asyncio.new_event_loop()
        self.settings = load_settings()
        self.credentials = None
        self.loop.run_until_complete(self._start())

    async def _start(self):
        store = open_store(self.settings)
        svc = Service(self.settings, store, LocalNodes(store, self.settings))
        svc.object_ttl = 0          # other instances change objects: read them every time
        svc.auth.add_user(self.function, self.settings.lambda_password)
        # a direct invocation runs as the function's user (AWS checked the caller)
        token = f"{self.function}:{svc.auth.passwords[self.function]}".encode()
        self.credentials = "Basic " + base64.b64encode(token).decode()
        self.runner = web.AppRunner(make_app(svc), access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        self.base = "http://127.0.0.1:%d" % self.runner.addresses[0][1]
        self.session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None),
            connector=aiohttp.TCPConnector(limit=0), auto_decompress=False)

    def close(self):
        """Stop serving (tests; a function instance is simply frozen and dropped)."""
        async def stop():
            await self.session.close()
            await self.runner.cleanup()
        self.loop.run_until_complete(stop())
        self.loop.close()

    def handle(self, event) -> dict:
        return self.loop.run_until_complete(self._handle(event))

    async def _handle(self, event) -> dict:
        try:
            req = events.request_of(event)
        except Exception as e:        # BadRequest and anything odd in the event itself
            form = events.GATEWAY if isinstance(event, dict) and event.get("version") == "2.0" \
                else events.DIRECT
            body = json.dumps({"error": str(e), "status": 400}).encode()
            return events.answer(form, 400, {"Content-Type": "application/json"}, body)
        headers = dict(req.headers)
        if req.form != events.GATEWAY and "authorization" not in headers:
            headers["authorization"] = self.credentials
        headers.setdefault("host", self.function)
        async with self.session.request(req.method, self.base + req.path, params=req.params,
                                        headers=headers, data=req.body) as rsp:
            body = await rsp.read()
            out = {k: v for k, v in rsp.headers.items()
                   if k not in ("Content-Length", "Date", "Connection", "Transfer-Encoding")}
            return events.answer(req.form, rsp.status, out, body)


_runtime: Runtime | None = None
_request_id = None          # the invocation being answered, for every log line


class JsonLines(logging.Formatter):
    """Log records as JSON lines with the request id (CloudWatch Logs Insights)."""

    def format(self, record):
        return json.dumps({"level": record.levelname, "logger": record.name,
                           "request_id": _request_id, "message": record.getMessage()})


def setup_logging():
    """JSON lines on the runtime's own log handler (or on stderr where there is none)."""
    root = logging.getLogger()
    root.setLevel(os.environ.get("LOG_LEVEL", "INFO").upper())
    if not root.handlers:
        root.addHandler(logging.StreamHandler())
    for handler in root.handlers:
        handler.setFormatter(JsonLines())


def lambda_handler(event, context):
    global _runtime, _request_id
    _request_id = getattr(context, "aws_request_id", None)
    cold = _runtime is None
    if cold:
        setup_logging()
        keep_freed_memory()     # Lambda runs on Firecracker too: fresh pages are dear
        name = getattr(context, "function_name", None) or \
            os.environ.get("AWS_LAMBDA_FUNCTION_NAME") or "hslambda"
        _runtime = Runtime(name)
    start = time.perf_counter()
    result = _runtime.handle(event)
    ms = round((time.perf_counter() - start) * 1000, 1)
    # one JSON line per invocation, with Embedded Metric Format metrics (LAMBDA.md F)
    status = result.get("statusCode", 200)
    print(json.dumps({
        "request_id": _request_id, "status": status, "ms": ms,
        "cold_start_ms": round((start - LOADED_AT) * 1000, 1) if cold else None,
        "_aws": {"Timestamp": int(time.time() * 1000), "CloudWatchMetrics": [{
            "Namespace": "h5cloud", "Dimensions": [["FunctionName"]],
            "Metrics": [{"Name": "RequestMs", "Unit": "Milliseconds"},
                        {"Name": "ClientErrors", "Unit": "Count"},
                        {"Name": "ColdStarts", "Unit": "Count"}]}]},
        "FunctionName": _runtime.function, "RequestMs": ms,
        "ClientErrors": int(400 <= status < 500), "ColdStarts": int(cold)}), flush=True)
    return result
