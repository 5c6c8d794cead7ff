"""Dataset values (REST_API.md §11): GET, PUT and POST …/value.

Every form — hyperslabs, coordinate lists, points, queries, appends — becomes a
list of chunk tasks (core.selection) run by an executor (offload: the DNs by
default). Binary reads stream page by page with memory bounded by
max_request_size; binary bodies and responses are raw numpy bytes.
"""
import asyncio
import base64
import binascii

import numpy as np
from aiohttp import web

from ..core import layout, selection, shapes, types, values
from ..core.errors import BadRequest, TooLarge
from ..offload.job import Job
from ..web import json_response, parse_json, read_body
from . import refs
from .objects import load_object, object_op
from .params import flag, int_param
from .service import VIA, href, require_domain, service

BINARY = "application/octet-stream"
STREAM_PAGE = 8 * 1024**2      # bytes per streamed page of a binary read


# ---- context -----------------------------------------------------------------

async def load_dataset(request, action: str):
    svc = service(request)
    target, domain_doc = await require_domain(request, action)
    doc = await load_object(svc, target, domain_doc, request.match_info["id"], "d", cached=True)
    if (doc.get("shape") or {}).get("class") == "H5S_NULL":
        raise BadRequest("a null-space dataset has no values")
    return svc, target, domain_doc, doc


def parse_fields(text) -> list | None:
    if not text:
        return None
    return [f for f in str(text).split(":") if f]


async def make_job(svc, target, doc: dict, fields=None, domain_doc=None) -> Job:
    if fields and doc["type"].get("class") != "H5T_COMPOUND":
        raise BadRequest("fields can only be selected from a compound type")
    if fields:
        names = {f["name"] for f in doc["type"]["fields"]}
        unknown = [f for f in fields if f not in names]
        if unknown:
            raise BadRequest(f"unknown fields: {', '.join(unknown)}")
    job = Job(target.bucket, doc, layout.chunk_dims_of(doc), fields)
    job.where = (target, domain_doc)          # for linked layouts' look-ups
    return job


async def _prepare(svc, job: Job, tasks):
    if refs.ref_class(job.dset):
        await refs.attach_refs(svc, *job.where, job, tasks)
    return tasks


def dims_of(doc) -> tuple:
    return shapes.dims_of(doc["shape"])


def item_estimate(job: Job) -> int:
    return 512 if job.item_size == "H5T_VARIABLE" else job.item_size


async def read_array(svc, job: Job, sel, request=None, decision=None) -> np.ndarray:
    out = np.empty(types.full_shape(job.piece_type, sel.shape), job.out_dtype)
    tasks = await _prepare(svc, job, selection.chunk_tasks(sel, job.chunk_dims))
    via = await svc.executor.read(job, tasks, out, decision)
    if request is not None:
        request[VIA] = via          # which executor ran it, for the request's log line
    return out


async def read_points(svc, job: Job, points: np.ndarray, request=None) -> np.ndarray:
    out = np.empty(types.full_shape(job.piece_type, (len(points),)), job.out_dtype)
    tasks = await _prepare(svc, job, selection.point_chunk_tasks(points, job.chunk_dims))
    via = await svc.executor.read(job, tasks, out)
    if request is not None:
        request[VIA] = via
    return out


def encode(arr: np.ndarray, job: Job, binary: bool, ignore_nan=False, reduce_dim=False,
           scalar=False):
    if binary:
        if job.item_size == "H5T_VARIABLE":
            return values.to_bytes(arr, job.piece_type, wire=True)
        flat = np.ascontiguousarray(arr).reshape(-1)
        return memoryview(flat.view(np.uint8)) if flat.size else b""
    if reduce_dim and arr.ndim > 1:
        arr = arr.reshape([n for n in arr.shape if n != 1] or [1])
    value = values.to_json(arr, job.piece_type, ignore_nan=ignore_nan)
    if scalar and isinstance(value, list) and len(value) == 1 and arr.shape == (1,):
        value = value[0]
    return value


def value_hrefs(request, target, doc, domain_doc) -> list:
    dset = doc["id"]
    return [{"rel": "self", "href": href(request, target, f"/datasets/{dset}/value")},
            {"rel": "root", "href": href(request, target, f"/groups/{domain_doc['root']}")},
            {"rel": "home", "href": href(request, target, "/")},
            {"rel": "owner", "href": href(request, target, f"/datasets/{dset}")}]


# ---- GET ---------------------------------------------------------------------

async def get_value(request):
    svc, target, domain_doc, doc = await load_dataset(request, "read")
    q = request.query
    job = await make_job(svc, target, doc, parse_fields(q.get("fields")), domain_doc)
    binary = BINARY in request.headers.get("Accept", "")
    if q.get("query"):
        return await query_response(request, svc, target, domain_doc, doc, job, binary)
    sel = selection.parse_select(q.get("select"), dims_of(doc))
    return await selection_response(request, svc, target, domain_doc, doc, job, sel, binary)


async def selection_response(request, svc, target, domain_doc, doc, job, sel, binary):
    q = request.query
    limit = svc.settings.max_request_size
    estimate = sel.count * item_estimate(job)
    scalar = dims_of(doc) == ()
    if (not binary or scalar) and estimate >= limit:
        raise TooLarge(f"the response would be {estimate} bytes (limit {limit})")
    if not binary:
        arr = await read_array(svc, job, sel, request)
        value = encode(arr, job, False, flag(q, "ignore_nan"), flag(q, "reduce_dim"), scalar)
        if scalar and isinstance(value, list) and not job.type.get("class") in (
                "H5T_COMPOUND", "H5T_ARRAY", "H5T_VLEN"):
            value = value[0] if value else value
        return json_response({"value": value,
                              "hrefs": value_hrefs(request, target, doc, domain_doc)})
    # stream page by page (chunk rows), reading the next page while sending this one
    page_bytes, decision = min(limit, STREAM_PAGE), None
    if estimate > page_bytes and svc.executor.serverless is not None:
        # one decision for the whole request on where its chunks are read (one log line);
        # Lambda caches nothing, so its pages hold whole chunk rows: each chunk read once
        decision = await svc.executor.start_read(job,
                                                 selection.chunk_tasks(sel, job.chunk_dims))
        if decision is not None and decision.offload is not None:
            page_bytes = page_size(sel, job, limit)
    elif estimate > page_bytes and svc.executor.whole_chunk_pages(job, sel):
        page_bytes = page_size(sel, job, limit)     # the SN inflates chunks, keeps none
    pages = list(selection.pages(sel, job.chunk_dims,
                                 max(1, page_bytes // item_estimate(job))))
    try:
        if len(pages) <= 1:
            arr = await read_array(svc, job, sel, request, decision)
            _finish(decision)
            return web.Response(body=encode(arr, job, True), content_type=BINARY)
        return await stream_pages(request, svc, job, pages, estimate, decision)
    finally:
        _finish(decision)       # after a failure; once logged it is not logged again


def _finish(decision):
    if decision is not None and decision.offload is not None:
        decision.offload.finish()


async def stream_pages(request, svc, job: Job, pages, estimate: int, decision):
    rsp = web.StreamResponse(headers={"Content-Type": BINARY})
    if job.item_size != "H5T_VARIABLE":
        rsp.content_length = estimate
    upcoming = asyncio.ensure_future(read_array(svc, job, pages[0][0], request, decision))
    try:
        await rsp.prepare(request)
        for i in range(len(pages)):
            arr = await upcoming
            if i + 1 < len(pages):
                upcoming = asyncio.ensure_future(
                    read_array(svc, job, pages[i + 1][0], decision=decision))
            else:
                _finish(decision)    # logged before the client can have it all
            await rsp.write(encode(arr, job, True))
    finally:
        upcoming.cancel()
    await rsp.write_eof()
    return rsp


def page_size(sel, job: Job, limit: int) -> int:
    """Bytes per page of a read that keeps no chunks (Lambda, or the SN inflating them
    itself): STREAM_PAGE, or one chunk row of the selection when that is bigger (up to
    4 pages), so no chunk is read once per page it spans. (DN reads keep STREAM_PAGE:
    their caches serve a chunk's second page, and smaller pages measured faster there.)"""
    axis = next((i for i, n in enumerate(sel.shape) if n > 1), 0)
    rows = min(sel.shape[axis], job.chunk_dims[axis]) if sel.shape else 1
    chunk_row = rows * int(np.prod(sel.shape[axis + 1:], dtype=np.int64)) * item_estimate(job)
    return max(1, min(limit, max(STREAM_PAGE, min(4 * STREAM_PAGE, chunk_row))))


# ---- queries -------------------------------------------------------------------

def is_table(doc) -> bool:
    """Queries of a compound dataset select rows; of any other, elements (named `_`)."""
    return doc["type"].get("class") == "H5T_COMPOUND"


def _check_query(doc, update):
    dims = dims_of(doc)
    if is_table(doc) and len(dims) != 1:
        raise BadRequest("queries need a one-dimensional compound dataset")
    if not is_table(doc) and (update or not dims):
        raise BadRequest("query updates need a compound dataset" if update else
                         "queries need a dataset with dimensions")


async def run_query(svc, job, doc, select, text, limit, update=None, positions=True):
    """(absolute row indices, rows) of the matches, in row order; indices None when
    positions is false (binary answers carry rows only: less to move from the DNs).
    Of a non-compound dataset: (positions in the selection, elements), in C order."""
    _check_query(doc, update)
    sel = selection.parse_select(select, dims_of(doc))
    if not all(isinstance(part, slice) for part in sel.parts):
        raise BadRequest("a query selection must be a range")
    table = is_table(doc)
    positions = positions or not table       # elements are put in order by position
    tasks = await _prepare(svc, job, selection.chunk_tasks(sel, job.chunk_dims))
    found = await svc.executor.query(job, tasks, text, None if not table else limit, update,
                                     positions)
    index_parts, row_parts = [], []
    for task, found_at, rows in found:
        if positions and table:
            start, step = sel.parts[0].start, sel.parts[0].step or 1
            offset = task.out_sel[0].start if isinstance(task.out_sel[0], slice) else 0
            index_parts.append(start + (offset + found_at) * step)
        elif positions:                 # flat position in the selection's answer
            at = np.unravel_index(found_at, task.shape)
            index_parts.append(np.ravel_multi_index(
                tuple(a + s.start for a, s in zip(at, task.out_sel)), sel.shape))
        row_parts.append(rows)
    if not row_parts:
        return np.zeros(0, np.int64), np.zeros(0, job.piece_dtype)
    rows = values.concat(row_parts)
    indices = np.concatenate(index_parts) if positions else None
    if not table:
        order = np.argsort(indices, kind="stable")
        indices, rows = indices[order], rows[order]
    return (indices[:limit] if positions else None), rows[:limit]


async def query_response(request, svc, target, domain_doc, doc, job, binary, update=None):
    q = request.query
    limit = int_param(q, "Limit")
    if limit is not None and limit <= 0:
        limit = None
    rows_only = binary and update is None
    indices, rows = await run_query(svc, job, doc, q.get("select"), q["query"], limit, update,
                                    positions=not rows_only)
    if rows_only:
        # rows only, in the dataset's packing (what HSDS 1.0.2 answers and clients read)
        return web.Response(body=encode(rows, job, True), content_type=BINARY)
    listed = values.to_json(rows, job.piece_type, ignore_nan=flag(q, "ignore_nan"))
    # rows of a table with their index first; a simple dataset's elements as they are
    value = [[int(i)] + list(row) for i, row in zip(indices, listed)] if is_table(doc) \
        else listed
    return json_response({"value": value,
                          "hrefs": value_hrefs(request, target, doc, domain_doc)})


# ---- POST (points, long selections) ---------------------------------------------------

async def post_value(request):
    svc, target, domain_doc, doc = await load_dataset(request, "read")
    dims = dims_of(doc)
    if dims == ():
        raise BadRequest("point reads need a dataset with dimensions")
    q = request.query
    binary_out = BINARY in request.headers.get("Accept", "")
    raw = await request.read()
    fields = parse_fields(q.get("fields"))
    if BINARY in request.headers.get("Content-Type", ""):
        if len(raw) % 8:
            raise BadRequest("binary points must be uint64 values")
        points = selection.parse_points(np.frombuffer(raw, "<u8"), dims)
        sel = None
    else:
        body = parse_json(raw)
        if not isinstance(body, dict):
            raise BadRequest("expected points or a selection")
        fields = parse_fields(body.get("fields")) or fields
        has_sel = any(k in body for k in ("select", "start", "stop"))
        if ("points" in body) == has_sel:
            raise BadRequest("give points or a selection")
        points = selection.parse_points(body["points"], dims) if "points" in body else None
        sel = None if points is not None else _body_selection(body, dims)
    job = await make_job(svc, target, doc, fields, domain_doc)
    if sel is not None:
        return await selection_response(request, svc, target, domain_doc, doc, job, sel,
                                        binary_out)
    estimate = len(points) * item_estimate(job)
    if estimate >= svc.settings.max_request_size:
        raise TooLarge(f"the response would be {estimate} bytes")
    arr = await read_points(svc, job, points, request)
    if binary_out:
        return web.Response(body=encode(arr, job, True), content_type=BINARY)
    return json_response({"value": encode(arr, job, False, flag(q, "ignore_nan")),
                          "hrefs": value_hrefs(request, target, doc, domain_doc)})


def _body_selection(body: dict, dims):
    if "select" in body:
        return selection.parse_select(body["select"], dims)
    if "start" in body and "stop" in body:
        return selection.from_start_stop(body["start"], body["stop"], body.get("step"), dims)
    return selection.whole(dims)


# ---- PUT ------------------------------------------------------------------------

async def put_value(request):
    svc, target, domain_doc, doc = await load_dataset(request, "update")
    q = request.query
    content_type = request.headers.get("Content-Type", "")
    binary = BINARY in content_type
    if not binary and content_type and "json" not in content_type:
        raise BadRequest(f"unsupported content type: {content_type}")
    raw = await read_body(request)
    body = {} if binary else parse_json(raw)
    if not binary and not isinstance(body, dict):
        raise BadRequest("expected a JSON object")

    def param(name):
        if name in q and name in body and name in ("select",):
            raise BadRequest(f"{name} given twice")
        return body.get(name, q.get(name))

    if refs.ref_class(doc):
        raise BadRequest("datasets with linked (_REF) layouts are read-only")
    if param("query"):
        job = await make_job(svc, target, doc, None, domain_doc)
        update = {k: v for k, v in body.items() if k not in ("query", "Limit", "select")}
        return await query_response(request, svc, target, domain_doc, doc, job, False, update)
    fields = parse_fields(param("fields"))
    job = await make_job(svc, target, doc, fields)
    dims = dims_of(doc)
    append = param("append")
    points = body.get("points")
    if append is not None:
        if points is not None or param("select") is not None or "start" in body:
            raise BadRequest("append cannot be combined with a selection or points")
        sel, doc = await _append(svc, target, doc, append, param("append_dim"))
        job = await make_job(svc, target, doc, fields)
    elif points is not None:
        pts = selection.parse_points(points, dims)
        src = _source(job, body, raw, binary, (len(pts),), param("element_count"))
        await svc.executor.write(job, selection.point_chunk_tasks(pts, job.chunk_dims), src)
        return json_response({})
    elif param("select") is not None:
        sel = selection.parse_select(param("select"), dims)
    elif "start" in body and "stop" in body:
        sel = selection.from_start_stop(body["start"], body["stop"], body.get("step"), dims)
    else:
        sel = selection.whole(dims)
    if sel.count == 0:
        raise BadRequest("Selection is empty")
    src = _source(job, body, raw, binary, sel.shape, param("element_count"))
    await svc.executor.write(job, selection.chunk_tasks(sel, job.chunk_dims), src)
    return json_response({})


def _source(job: Job, body: dict, raw: bytes, binary: bool, shape: tuple, element_count):
    """The values to write, shaped like the target (broadcast per element_count)."""
    count = 1
    for n in shape:
        count *= n
    given = int_param({"element_count": element_count}, "element_count") \
        if element_count is not None else count
    block = _broadcast_shape(shape, given)
    if binary:
        src = values.from_bytes(raw, job.piece_type, block, writable=False)
    elif "value_base64" in body:
        try:
            data = base64.b64decode(body["value_base64"], validate=True)
        except (binascii.Error, TypeError, ValueError):
            raise BadRequest("value_base64 is not valid base64") from None
        src = values.from_bytes(data, job.piece_type, block)
    elif "value" in body:
        src = values.from_json(body["value"], job.piece_type, block)
    else:
        raise BadRequest("expected value or value_base64")
    if block != tuple(shape):
        src = np.broadcast_to(src.reshape(types.full_shape(job.piece_type, block)),
                              types.full_shape(job.piece_type, shape))
    return src


def _broadcast_shape(shape: tuple, given: int) -> tuple:
    """element_count (§11.3): the whole target, one element, or its last k extents."""
    total = 1
    for n in shape:
        total *= n
    if given == total:
        return tuple(shape)
    if given == 1:
        return (1,) * len(shape) if shape else ()
    for k in range(1, len(shape)):
        tail = shape[len(shape) - k:]
        size = 1
        for n in tail:
            size *= n
        if size == given:
            return (1,) * (len(shape) - k) + tuple(tail)
    raise BadRequest(f"element_count {given} does not fit the selection")


async def _append(svc, target, doc, append, append_dim):
    """Grow one dimension by `append` and return the new slab as the selection."""
    n = int_param({"append": append}, "append")
    dim = int_param({"append_dim": append_dim}, "append_dim", 0)
    dims = dims_of(doc)
    if not dims:
        raise BadRequest("append needs a dataset with dimensions")
    if n is None or n <= 0:
        raise BadRequest("append must be a positive integer")
    if dim < 0 or dim >= len(dims):
        raise BadRequest("append_dim out of range")
    if any(d == 0 for i, d in enumerate(dims) if i != dim):
        raise BadRequest("cannot append to a dataset with an empty dimension")
    result = await object_op(svc, target, doc["id"], "resize",
                             {"body": {"extend": n, "extend_dim": dim}})
    old = result["old_dims"]
    doc = {**doc, "shape": {**doc["shape"], "dims": result["new_dims"]}}
    parts = [f"0:{d}" for d in result["new_dims"]]
    parts[dim] = f"{old[dim]}:{old[dim] + n}"
    return selection.parse_select("[" + ",".join(parts) + "]", tuple(result["new_dims"])), doc


# ---- helpers for datasets.py ---------------------------------------------------

async def write_json_value(svc, target, doc, value):
    """Initial values given at creation (h5pyd 1.0 sends small ones that way)."""
    dims = dims_of(doc)
    if dims is None:
        raise BadRequest("a null-space dataset has no values")
    job = await make_job(svc, target, doc)
    sel = selection.whole(dims)
    src = values.from_json(value, job.type, sel.shape)
    await svc.executor.write(job, selection.chunk_tasks(sel, job.chunk_dims), src)


async def clear_region(svc, target, doc, old_dims, new_dims):
    """After a shrink: reset everything cut off to the fill value (chunks partly or wholly
    outside the new extent), so a later extend shows fill, never old data."""
    job = await make_job(svc, target, doc)
    props = doc.get("creationProperties") or {}
    b64 = props.get("fillValue") if props.get("fillValue_encoding") == "base64" else None
    fill = values.fill_array(job.type, (), None if b64 else props.get("fillValue"), b64)
    grid = tuple(-(-o // c) * c for o, c in zip(old_dims, job.chunk_dims))
    if 0 in grid:
        return
    for d, (old, new) in enumerate(zip(old_dims, new_dims)):
        if new >= old:
            continue
        parts = [f"0:{g}" for g in grid]
        parts[d] = f"{new}:{grid[d]}"
        region = selection.parse_select("[" + ",".join(parts) + "]", grid)
        src = np.broadcast_to(fill, types.full_shape(job.type, region.shape))
        await svc.executor.write(job, selection.chunk_tasks(region, job.chunk_dims), src)
