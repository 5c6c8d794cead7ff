"""Lambda events in, HTTP requests out, and the answers back in the event's own form
(LAMBDA.md Part C). Plain functions over dicts: no server, no I/O.

Three forms come in: direct events (h5pyd's http+lambda://, scripts), API Gateway
HTTP API payload 2.0 events, and anything else (the console's test event), which
is answered as GET /about.
"""
import base64
import binascii
import json
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from ..core.errors import BadRequest

DIRECT, GATEWAY, CONSOLE = "direct", "gateway", "console"
MAX_PAYLOAD = 6 * 1024 * 1024           # Lambda's limit for a synchronous answer
BINARY = "application/octet-stream"
_HEX = set("0123456789abcdefABCDEF")


@dataclass
class HttpRequest:
    form: str
    method: str = "GET"
    path: str = "/about"
    params: list = field(default_factory=list)        # [(name, value)], repeats allowed
    headers: dict = field(default_factory=dict)
    body: bytes | None = None


def request_of(event) -> HttpRequest:
    """The HTTP request an event stands for; BadRequest for a malformed one."""
    if not isinstance(event, dict):
        return HttpRequest(CONSOLE)
    if event.get("version") == "2.0" and isinstance(event.get("requestContext"), dict):
        return _gateway(event)
    if "method" in event or "path" in event or "request" in event:
        return _direct(event)
    return HttpRequest(CONSOLE)


def _direct(event) -> HttpRequest:
    method = str(event.get("method") or "GET").upper()
    path = event.get("path") or event.get("request")
    if not isinstance(path, str) or not path.startswith("/"):
        raise BadRequest("the event's path must be a string starting with /")
    params = event.get("params") or {}
    if not isinstance(params, dict):
        raise BadRequest("the event's params must be an object")
    pairs = []
    for name, value in params.items():
        for v in (value if isinstance(value, list) else [value]):
            if v is not None:
                pairs.append((str(name), str(v)))    # as requests puts them in a URL
    headers = _headers(event.get("headers"))
    body = event.get("body")
    if isinstance(body, (dict, list)):
        data = json.dumps(body).encode()
        headers.setdefault("content-type", "application/json")
    elif isinstance(body, str):
        data = _decode_text(body, event.get("isBase64Encoded"), event.get("encoding"))
    elif body is None:
        data = None
    else:
        raise BadRequest("the event's body must be an object, a string or absent")
    return HttpRequest(DIRECT, method, path, pairs, headers, data)


def _gateway(event) -> HttpRequest:
    ctx = event["requestContext"]
    http = ctx.get("http") or {}
    method = str(http.get("method") or "GET").upper()
    path = event.get("rawPath") or http.get("path") or "/"
    stage = ctx.get("stage")
    if stage and stage != "$default" and path.startswith(f"/{stage}/"):
        path = path[len(stage) + 1:]            # a named stage prefixes every path
    if event.get("rawQueryString"):
        pairs = parse_qsl(event["rawQueryString"], keep_blank_values=True)
    else:
        pairs = [(k, v) for k, v in (event.get("queryStringParameters") or {}).items()]
    body = event.get("body")
    data = None
    if body is not None:
        data = _decode_text(body, event.get("isBase64Encoded"), None)
    headers = _headers(event.get("headers"))
    if ctx.get("domainName"):
        headers.setdefault("host", ctx["domainName"])
    return HttpRequest(GATEWAY, method, path, pairs, headers, data)


def _headers(raw) -> dict:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise BadRequest("the event's headers must be an object")
    # hop-by-hop and length headers belong to the transport, not to the request
    return {str(k).lower(): str(v) for k, v in raw.items()
            if str(k).lower() not in ("content-length", "connection", "transfer-encoding")}


def _decode_text(text: str, encoded, encoding) -> bytes:
    if not encoded:
        return text.encode("utf-8")
    if encoding == "hex":
        if len(text) % 2 or not set(text) <= _HEX:
            raise BadRequest("the event's body is not hex")
        return bytes.fromhex(text)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest("the event's body is not base64") from None


# ---- answers -----------------------------------------------------------------------

def answer(form: str, status: int, headers: dict, body: bytes) -> dict:
    """The function's return value for an HTTP answer, in the event's form."""
    ctype = headers.get("Content-Type", "")
    if _encoded_size(form, ctype, body) > MAX_PAYLOAD:
        return answer(form, 413, {"Content-Type": "application/json"}, json.dumps({
            "message": f"the answer ({len(body)} bytes) is more than a Lambda function can "
                       "return; select less at a time", "status": 413}).encode())
    if form == GATEWAY:
        binary = ctype.startswith(BINARY)
        text = base64.b64encode(body).decode() if binary else body.decode("utf-8", "replace")
        result = {"statusCode": status, "headers": headers, "body": text,
                  "isBase64Encoded": binary}
    else:
        result = _direct_answer(status, headers, body, ctype)
        if form == CONSOLE:
            result.update(status_code=status, output=result["body"])
    return result


def _encoded_size(form: str, ctype: str, body: bytes) -> int:
    """About the size of the answer once encoded (hex or base64 for binary bodies; a
    margin for headers and JSON), without encoding it twice."""
    factor = (4 / 3 if form == GATEWAY else 2) if ctype.startswith(BINARY) else 1
    return int(len(body) * factor) + 4096


def _direct_answer(status, headers, body, ctype) -> dict:
    """What h5pyd 0.20-0.24 decode: headers as a JSON string; JSON bodies as objects,
    binary bodies as hex with isBase64Encoded (their historical quirk)."""
    result = {"statusCode": status, "headers": json.dumps(headers), "isBase64Encoded": False}
    if ctype.startswith(BINARY):
        result.update(body=body.hex(), isBase64Encoded=True)
        return result
    parsed = None
    if ctype.startswith("application/json") and body:
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
    if status >= 400:
        message = parsed.get("error") if isinstance(parsed, dict) else None
        result["body"] = {"message": message or body.decode("utf-8", "replace"),
                          **(parsed if isinstance(parsed, dict) else {})}
    elif isinstance(parsed, dict) and parsed:
        result["body"] = parsed
    else:
        # h5pyd reads an empty object as "no JSON"; its text form parses as {}
        result["body"] = body.decode("utf-8", "replace")
    return result
