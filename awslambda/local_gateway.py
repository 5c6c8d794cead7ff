"""A local API Gateway HTTP API (payload format 2.0) in front of a Lambda Invoke
endpoint, so plain HTTP clients (h5pyd 1.0, curl) reach a function as they would
through AWS:

    python awslambda/local_gateway.py [--port 9002] [--invoke http://127.0.0.1:9001]
        [--stage $default] FUNCTION

Each request becomes a 2.0 event (rawPath, rawQueryString, queryStringParameters,
lower-case headers, requestContext.http, body base64-encoded unless it is text) and
is invoked synchronously; the function's answer (statusCode, headers, body,
isBase64Encoded) becomes the response. As on AWS: a function error is 502
{"message": "Internal Server Error"}, a request body over 10 MB is 413. A throttled
invocation (429) is retried for a few seconds first (a local convenience: the
endpoint runs only a few workers).
"""
import argparse
import asyncio
import base64
import json
import time
import uuid

import aiohttp
from aiohttp import web

MAX_BODY = 10 * 1024 * 1024
TEXT_TYPES = ("text/", "application/json", "application/xml", "application/javascript")
CONFIG = web.AppKey("config", dict)


def event_of(request: web.Request, body: bytes, stage: str) -> dict:
    ctype = request.headers.get("Content-Type", "")
    text = not body or ctype.startswith(TEXT_TYPES)
    headers, query = {}, {}
    for k, v in request.headers.items():           # repeated headers join with commas
        headers[k.lower()] = f"{headers[k.lower()]},{v}" if k.lower() in headers else v
    for k, v in request.query.items():
        query[k] = f"{query[k]},{v}" if k in query else v
    path = request.path          # a named stage is the first part of the URL, as on AWS
    event = {"version": "2.0", "routeKey": "$default", "rawPath": path,
             "rawQueryString": request.query_string, "headers": headers,
             "requestContext": {"http": {"method": request.method, "path": path,
                                         "protocol": f"HTTP/{request.version.major}."
                                                     f"{request.version.minor}",
                                         "sourceIp": request.remote or "127.0.0.1",
                                         "userAgent": request.headers.get("User-Agent", "")},
                                "domainName": request.host, "stage": stage,
                                "requestId": uuid.uuid4().hex, "routeKey": "$default",
                                "timeEpoch": int(time.time() * 1000)},
             "isBase64Encoded": not text}
    if query:
        event["queryStringParameters"] = query
    if body:
        event["body"] = body.decode("utf-8") if text else base64.b64encode(body).decode()
    return event


async def invoke(session, url: str, event: dict):
    """(status, payload bytes, function error?) of one invocation; 429s retried a while."""
    for attempt in range(40):
        async with session.post(url, data=json.dumps(event).encode()) as rsp:
            payload = await rsp.read()
            if rsp.status != 429:
                return rsp.status, payload, "X-Amz-Function-Error" in rsp.headers
        await asyncio.sleep(min(0.5, 0.02 * (attempt + 1)))
    return 429, payload, False


def response_of(answer) -> web.Response:
    if not isinstance(answer, dict) or "statusCode" not in answer:
        # a 2.0 integration may return any JSON: API Gateway sends it as a 200
        return web.json_response(answer)
    body = answer.get("body") or ""
    data = base64.b64decode(body) if answer.get("isBase64Encoded") else str(body).encode()
    headers = {k: str(v) for k, v in (answer.get("headers") or {}).items()
               if k.lower() not in ("content-length", "transfer-encoding", "connection")}
    return web.Response(status=int(answer["statusCode"]), body=data, headers=headers)


async def handle(request: web.Request) -> web.Response:
    cfg = request.app[CONFIG]
    body = await request.read()
    if len(body) > MAX_BODY:
        return web.json_response({"message": "Request Entity Too Large"}, status=413)
    status, payload, failed = await invoke(cfg["session"], cfg["url"],
                                           event_of(request, body, cfg["stage"]))
    if status != 200 or failed:
        if status == 429:
            return web.json_response({"message": "Too Many Requests"}, status=429)
        return web.json_response({"message": "Internal Server Error"}, status=502)
    return response_of(json.loads(payload))


def make_app(invoke_url: str, function: str, stage: str = "$default") -> web.Application:
    app = web.Application(client_max_size=MAX_BODY + 1)
    app[CONFIG] = {"url": f"{invoke_url.rstrip('/')}/2015-03-31/functions/{function}"
                          "/invocations", "stage": stage}
    app.router.add_route("*", "/{tail:.*}", handle)

    async def start(app):
        app[CONFIG]["session"] = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=60))

    async def stop(app):
        await app[CONFIG]["session"].close()

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    return app


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--port", type=int, default=9002)
    p.add_argument("--invoke", default="http://127.0.0.1:9001", help="Lambda Invoke endpoint")
    p.add_argument("--stage", default="$default")
    p.add_argument("function")
    args = p.parse_args(argv)
    print(f"API Gateway (HTTP API, payload 2.0) on http://127.0.0.1:{args.port} -> "
          f"{args.function} at {args.invoke}", flush=True)
    web.run_app(make_app(args.invoke, args.function, args.stage), host="127.0.0.1",
                port=args.port, print=None)


if __name__ == "__main__":
    main()
