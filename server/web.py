"""aiohttp helpers shared by the SN and DN apps: JSON in and out, errors as JSON."""
import json
import logging

import numpy as np
from aiohttp import web

from .core import fastjson
from .core.errors import BadRequest, HttpError
from .core.limits import MAX_JSON_DEPTH, json_depth_ok, safe_header

log = logging.getLogger("h5cloud.web")
JSON_TYPE = "application/json"
RETRY_AFTER = "2"      # seconds, on every 503


def json_response(data, status: int = 200, headers=None) -> web.Response:
    body = fastjson.exact(data)
    return web.Response(body=body, status=status, headers=headers,
                        content_type=JSON_TYPE, charset="utf-8")


def error_response(status: int, message: str) -> web.Response:
    # the reason phrase repeats the message (h5pyd shows rsp.reason): one line of printable
    # ASCII, whatever user text the message quotes (a control character breaks a response)
    reason = safe_header(message)
    body = json.dumps({"error": message, "status": status}).encode("utf-8")
    # 503 is "try again later" (storage or data nodes down, overload): say when; h5pyd's
    # retries wait that long (urllib3 honours Retry-After on 503)
    headers = {"Retry-After": RETRY_AFTER} if status == 503 else None
    return web.Response(body=body, status=status, reason=reason or None, headers=headers,
                        content_type=JSON_TYPE, charset="utf-8")


def parse_json(raw, loads=json.loads):
    """A JSON body (NaN/Infinity allowed); empty or 'null' -> None; else 400. loads:
    fastjson.loads for bodies from our own processes."""
    if isinstance(raw, memoryview):
        raw = raw.tobytes()
    if not raw or not raw.strip():
        return None
    too_deep = BadRequest(f"body is nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        value = loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise BadRequest(f"body is not valid JSON: {e}") from None
    except RecursionError:
        raise too_deep from None
    # nesting deeper than the limit takes two brackets a level: short bodies cannot
    if len(raw) >= 2 * MAX_JSON_DEPTH and not json_depth_ok(value):
        raise too_deep
    return value


async def read_body(request: web.Request) -> bytes | memoryview:
    """The whole body, copied once into a buffer of the announced size (aiohttp's own
    read() grows a buffer and copies it again). The buffer is numpy's, not zero-filled
    first as a bytearray is: every byte is overwritten (32 MiB: 10 ms, not 32)."""
    size = request.content_length
    if not size:
        return await request.read()
    if size > request.app._client_max_size:
        raise web.HTTPRequestEntityTooLarge(max_size=request.app._client_max_size,
                                            actual_size=size)
    view = memoryview(np.empty(size, dtype=np.uint8))
    pos = 0
    async for chunk in request.content.iter_any():
        n = len(chunk)
        if pos + n > size:
            raise BadRequest("body longer than its Content-Length")
        view[pos:pos + n] = chunk
        pos += n
    if pos != size:
        raise BadRequest("body shorter than its Content-Length")
    return view


async def read_json(request: web.Request):
    return parse_json(await request.read())


@web.middleware
async def error_middleware(request, handler):
    try:
        return await handler(request)
    except HttpError as e:
        return error_response(e.status, e.message)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        return error_response(e.status, e.reason)
    except Exception:
        log.exception("unexpected error in %s %s", request.method, request.path)
        return error_response(500, "internal server error")
