"""aiohttp helpers shared by the SN and DN apps: JSON in and out, errors as JSON."""
import json
import logging

from aiohttp import web

from .core.errors import BadRequest, HttpError

log = logging.getLogger("h5cloud.web")
JSON_TYPE = "application/json"


def json_response(data, status: int = 200, headers=None) -> web.Response:
    body = json.dumps(data).encode("utf-8")
    return web.Response(body=body, status=status, headers=headers,
                        content_type=JSON_TYPE, charset="utf-8")


def error_response(status: int, message: str) -> web.Response:
    # the reason phrase repeats the message (h5pyd shows rsp.reason); keep it one clean line
    reason = " ".join(str(message).split())[:200].encode("ascii", "replace").decode()
    body = json.dumps({"error": message, "status": status}).encode("utf-8")
    return web.Response(body=body, status=status, reason=reason or None,
                        content_type=JSON_TYPE, charset="utf-8")


def parse_json(raw: bytes):
    """A JSON body (NaN/Infinity allowed); empty or 'null' -> None; else 400."""
    if not raw or not raw.strip():
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise BadRequest(f"body is not valid JSON: {e}") from None


async def read_body(request: web.Request) -> bytes | bytearray:
    """The whole body, copied once into a buffer of the announced size (aiohttp's own
    read() grows a buffer and copies it again)."""
    size = request.content_length
    if not size:
        return await request.read()
    if size > request.app._client_max_size:
        raise web.HTTPRequestEntityTooLarge(max_size=request.app._client_max_size,
                                            actual_size=size)
    buf = bytearray(size)
    view = memoryview(buf)
    pos = 0
    async for chunk in request.content.iter_any():
        n = len(chunk)
        if pos + n > size:
            raise BadRequest("body longer than its Content-Length")
        view[pos:pos + n] = chunk
        pos += n
    if pos != size:
        raise BadRequest("body shorter than its Content-Length")
    return buf


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
