"""The data node's HTTP face: thin handlers over DataNode."""
import asyncio

from aiohttp import web

from ..core import frames
from ..core.errors import InsufficientStorage, Unavailable
from ..offload.dn import BATCH_BYTES
from ..web import error_middleware, json_response, read_body, read_json
from .chunks import ChunkOps, Request
from .node import DataNode

NODE = web.AppKey("node", DataNode)
OPS = web.AppKey("ops", ChunkOps)


def _where(request):
    q = request.query
    return q.get("bucket", ""), q.get("key", "")


def _flag(request, name):
    return request.query.get(name, "0") not in ("", "0")


async def health(request):
    node = request.app[NODE]
    return json_response({"id": node.node_id, "state": "READY", "dirty": node.dirty_count,
                          "cache": node.stats()})


async def get_meta(request):
    return json_response(await request.app[NODE].get(*_where(request)))


async def put_meta(request):
    doc = await read_json(request)
    await request.app[NODE].put(*_where(request), doc,
                                exclusive=_flag(request, "exclusive"), sync=_flag(request, "sync"))
    return json_response({}, status=201)


async def apply_op(request):
    body = await read_json(request)
    result = await request.app[NODE].apply(*_where(request), body["op"], body.get("args") or {},
                                           sync=bool(body.get("sync")))
    return json_response(result)


async def delete_meta(request):
    await request.app[NODE].delete(*_where(request))
    return json_response({})


async def flush(request):
    """Write every dirty object now. While storage fails: its error (503, or 507 when
    it is full), after at most flush_timeout seconds; the objects stay dirty."""
    node = request.app[NODE]
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
    return json_response({"written": written, "errors": []})


async def drop(request):
    q = request.query
    await request.app[NODE].drop_prefix(q["bucket"], q["prefix"], purge=_flag(request, "purge"))
    return json_response({})


# ---- chunks: framed requests (JSON header + raw payload) -------------------------

BINARY = "application/octet-stream"


async def _framed(request, header: dict, sizes: list, payload: list) -> web.StreamResponse:
    """A framed answer written piece by piece (no joined copy)."""
    rsp = web.StreamResponse(headers={"Content-Type": BINARY})
    first = frames.head({**header, "sizes": sizes})
    rsp.content_length = len(first) + sum(sizes)
    await rsp.prepare(request)
    await rsp.write(first)
    for part in payload:
        await rsp.write(part)
    await rsp.write_eof()
    return rsp


async def read_chunks(request):
    header, _ = frames.unpack(await request.read())
    sizes, pieces = await request.app[OPS].read(Request(header))
    return await _framed(request, {}, sizes, pieces)


async def write_chunks(request):
    header, payload = frames.unpack(await read_body(request))
    request.app[NODE].chunks.check_room(len(payload))
    req = Request(header)
    await request.app[OPS].write(req, frames.split(payload, header["sizes"]))
    return json_response({})


async def dirty_chunks(request):
    body = await read_json(request)
    return json_response({"dirty": request.app[NODE].chunks.dirty_prefixes(body["prefixes"])})


async def query_chunks(request):
    header, _ = frames.unpack(await request.read())
    if header.get("update"):
        request.app[NODE].chunks.check_room()
    counts, sizes, payload = await request.app[OPS].query(
        Request(header), header["query"], header.get("limit"), header.get("update"),
        header.get("positions", True))
    return await _framed(request, {"counts": counts}, sizes, payload)


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
    app.router.add_post("/chunks/read", read_chunks)
    app.router.add_post("/chunks/write", write_chunks)
    app.router.add_post("/chunks/query", query_chunks)
    app.router.add_post("/chunks/dirty", dirty_chunks)
    app.router.add_get("/health", health)
    app.router.add_get("/meta", get_meta)
    app.router.add_put("/meta", put_meta)
    app.router.add_delete("/meta", delete_meta)
    app.router.add_post("/meta/op", apply_op)
    app.router.add_post("/flush", flush)
    app.router.add_post("/drop", drop)

    async def start(app):
        node.start()

    async def stop(app):
        await node.stop()
        await node.store.close()

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    return app
