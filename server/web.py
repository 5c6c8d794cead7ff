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
