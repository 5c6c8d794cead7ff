"""Binary framing between the SN, the DNs and the chunk_read Lambda: a JSON header
followed by raw payload bytes, so chunk data never goes through JSON.

    u32 little-endian header length | header (UTF-8 JSON) | payload
"""
import struct

from . import fastjson
from .errors import BadRequest

_LEN = struct.Struct("<I")

# the channel between the SN and its DNs: server/offload calls, server/dn answers
CHANNEL_PATH = "/channel"       # the WebSocket the calls travel on as messages
MESSAGE_BYTES = 1024**2         # bodies up to this go as messages, bigger ones as HTTP
BATCH_BYTES = 16 * 1024**2      # a chunk call's elements at most: pipelining, no big buffers
QUERY_WINDOW = 16               # chunks a DN query loads ahead, in order (its memory)


def head(header: dict) -> bytes:
    """The frame's start (length + JSON header); the payload parts follow it. Floats in
    the header must be finite, or in a fastjson.embedded part."""
    text = fastjson.dumps(header)
    return _LEN.pack(len(text)) + text


def pack(header: dict, *payload) -> bytes:
    return b"".join((head(header), *payload))


def unpack(body) -> tuple[dict, memoryview]:
    view = memoryview(body)
    if len(view) < 4:
        raise BadRequest("short frame")
    (n,) = _LEN.unpack_from(view, 0)
    if 4 + n > len(view):
        raise BadRequest("short frame header")
    try:
        header = fastjson.loads(bytes(view[4:4 + n]))
    except ValueError:
        raise BadRequest("frame header is not JSON") from None
    return header, view[4 + n:]


def split(payload: memoryview, sizes) -> list:
    """Cut a payload into consecutive pieces of the given sizes."""
    out, pos = [], 0
    for size in sizes:
        out.append(payload[pos:pos + size])
        pos += size
    if pos != len(payload):
        raise BadRequest(f"payload has {len(payload)} bytes, expected {pos}")
    return out
