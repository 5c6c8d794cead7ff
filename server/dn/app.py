"""The data node's face: thin calls over DataNode, answered over HTTP and over the
SN's channel (WebSocket messages, offload/wire.py) alike."""
import asyncio
import json
import logging
import weakref

from aiohttp import WSCloseCode, WSMsgType, web

from ..core import fastjson, frames
from ..core.errors import HttpError, InsufficientStorage, NotFound, Unavailable
from ..core.frames import BATCH_BYTES, CHANNEL_PATH, MESSAGE_BYTES
from ..web import error_middleware, json_response, parse_json, read_body
from .chunks import ChunkOps, Request
from .node import DataNode

NODE = web.AppKey("node", DataNode)
OPS = web.AppKey("ops", ChunkOps)
SOCKETS = web.AppKey("sockets", weakref.WeakSet)
log = logging.getLogger("h5cloud.dn")
JSON = "application/json"
BINARY = "application/octet-stream"


def _where(q):
    return q.get("bucket", ""), q.get("key", "")


def _flag(q, name):
    return q.get(name, "0") not in ("", "0")


def _json(data, status: int = 200):
    return status, JSON, [fastjson.exact(data)]


def _framed(header: dict, sizes: list, payload: list):
    """A framed answer: its pieces are sent one by one (no joined copy)."""
    return 200, BINARY, [frames.head({**header, "sizes": sizes}), *payload]


async def health(request):
    node = request.app[NODE]
    return json_response({"id": node.node_id, "state": "READY", "dirty": node.dirty_count,
                          "cache": node.stats(), "channels": len(request.app[SOCKETS])})


# ---- calls: (app, query, body) -> (status, content type, body parts), answered alike
# over HTTP and over the SN's channel (offload/wire.py)

async def get_meta(app, q, body):
    return _json(await app[NODE].get(*_where(q)))


async def put_meta(app, q, body):
    doc = parse_json(body, fastjson.loads)
    await app[NODE].put(*_where(q), doc, exclusive=_flag(q, "exclusive"),
                        sync=_flag(q, "sync"))
    return _json({}, 201)


async def apply_op(app, q, body):
    call = parse_json(body, fastjson.loads)
    return _json(await app[NODE].apply(*_where(q), call["op"], call.get("args") or {},
                                       sync=bool(call.get("sync"))))


async def delete_meta(app, q, body):
    await app[NODE].delete(*_where(q))
    return _json({})


async def read_chunks(app, q, body):
    header, _ = frames.unpack(body)
    sizes, pieces = await app[OPS].read(Request(header))
    return _framed({}, sizes, pieces)


async def write_chunks(app, q, body):
    header, payload = frames.unpack(body)
    app[NODE].chunks.check_room(len(payload))
    await app[OPS].write(Request(header), frames.split(payload, header["sizes"]))
    return _json({})


async def dirty_chunks(app, q, body):
    prefixes = parse_json(body, fastjson.loads)["prefixes"]
    return _json({"dirty": app[NODE].chunks.dirty_prefixes(prefixes)})


async def query_chunks(app, q, body):
    header, _ = frames.unpack(body)
    if header.get("update"):
        app[NODE].chunks.check_room()
    counts, sizes, payload = await app[OPS].query(
        Request(header), header["query"], header.get("limit"), header.get("update"),
        header.get("positions", True))
    return _framed({"counts": counts}, sizes, payload)


async def flush(app, q, body):
    """Write every dirty object now. While storage fails: its error (503, or 507 when
    it is full), after at most flush_timeout seconds; the objects stay dirty."""
    node = app[NODE]
    timeout = node.settings.flush_timeout
    try:
        written, errors = await asyncio.wait_for(node.flush(0), timeout if timeout > 0 else None)
    except asyncio.TimeoutError:
        raise Unavailable(f"flush did not finish within {timeout:g} s "
                          f"({node.dirty_count} objects not yet stored)") from None
    if errors:
        full = [e for e in errors if isinstance(e, InsufficientStorage)]
        cls = InsufficientStorage if full else Unavailable
        raise cls(f"flush failed, {node.dirty_count} objects not yet stored: "
                  f"{(full or errors)[0]}")
    return _json({"written": written, "errors": []})


async def drop(app, q, body):
    await app[NODE].drop_prefix(q["bucket"], q["prefix"], purge=_flag(q, "purge"))
    return _json({})


CALLS = {"GET /meta": get_meta, "PUT /meta": put_meta, "DELETE /meta": delete_meta,
         "POST /meta/op": apply_op, "POST /chunks/read": read_chunks,
         "POST /chunks/write": write_chunks, "POST /chunks/dirty": dirty_chunks,
         "POST /chunks/query": query_chunks, "POST /flush": flush, "POST /drop": drop}


def _http(call):
    async def handler(request):
        status, content_type, parts = await call(request.app, request.query,
                                                 await read_body(request))
        if len(parts) == 1:
            return web.Response(body=parts[0], status=status, content_type=content_type)
        rsp = web.StreamResponse(status=status, headers={"Content-Type": content_type})
        rsp.content_length = sum(len(p) for p in parts)
        await rsp.prepare(request)
        for part in parts:
            await rsp.write(part)
        await rsp.write_eof()
        return rsp
    return handler


async def channel(request):
    """The SN's channel: each message one call, answered by id as it completes."""
    ws = web.WebSocketResponse(max_msg_size=2 * MESSAGE_BYTES + 1024**2)
    await ws.prepare(request)
    app, running = request.app, set()
    app[SOCKETS].add(ws)
    try:
        async for msg in ws:
            if msg.type == WSMsgType.BINARY:
                task = asyncio.ensure_future(_answer(app, ws, msg.data))
                running.add(task)
                task.add_done_callback(running.discard)
    finally:
        app[SOCKETS].discard(ws)
    return ws


async def _answer(app, ws, data):
    call_id = None
    try:
        head, body = frames.unpack(data)
        call_id = head.get("id")
        call = CALLS.get(head.get("call"))
        if call is None:
            raise NotFound(f"no call {head.get('call')!r}")
        status, _, parts = await call(app, head.get("q") or {}, body)
    except HttpError as e:
        status, parts = e.status, [json.dumps({"error": e.message}).encode("utf-8")]
    except Exception:
        log.exception("unexpected error in channel call")
        status, parts = 500, [b'{"error": "internal server error"}']
    if not ws.closed:
        try:
            await ws.send_bytes(frames.pack({"id": call_id, "status": status}, *parts))
        except ConnectionError:
            pass        # the SN went away: it answers its client 503


def max_body(settings) -> int:
    """The largest body a DN accepts (only the SN talks to it): a framed batch holds at
    most the larger of max_request_size, one chunk and the SN's batch size of values,
    and its JSON header (task selections, point coordinates) about as much again; plus
    64 MiB for the header's dataset document and metadata documents."""
    most = max(settings.max_request_size, settings.max_chunk_size, BATCH_BYTES)
    return 2 * most + 64 * 1024**2


def make_app(node: DataNode) -> web.Application:
    app = web.Application(middlewares=[error_middleware],
                          client_max_size=max_body(node.settings))
    app[NODE] = node
    app[OPS] = ChunkOps(node)
    app[SOCKETS] = weakref.WeakSet()
    for name, call in CALLS.items():
        method, path = name.split(" ")
        app.router.add_route(method, path, _http(call))
    app.router.add_get(CHANNEL_PATH, channel)
    app.router.add_get("/health", health)

    async def start(app):
        node.start()

    async def close_channels(app):
        for ws in list(app[SOCKETS]):
            await ws.close(code=WSCloseCode.GOING_AWAY)

    async def stop(app):
        await node.stop()
        await node.store.close()

    app.on_startup.append(start)
    app.on_shutdown.append(close_channels)
    app.on_cleanup.append(stop)
    return app
