"""Chunk work on a data node: read, write and query selections inside the chunks it owns.

Requests carry the dataset's document (type, layout, filters, fill) and a list
of chunk tasks (core.selection.ChunkTask as JSON), so a DN needs no look-ups of
its own. Chunks are cached decoded (numpy, full chunk shape) in the node's chunk
cache; a write changes the cached array and marks it dirty, and the write-back
loop encodes and stores it later. Pieces travel as raw bytes (core.frames).
"""
import asyncio
import collections
import logging

import numpy as np

from ..core import types, values
from ..core.chunks import codec_for
from ..core.errors import BadRequest, ServerError
from ..core.frames import QUERY_WINDOW
from ..core.ids import chunk_index, chunk_key
from ..core.query import parse_query, parse_update
from ..core.selection import ChunkTask

log = logging.getLogger("h5cloud.dn")


def subtype(type_json: dict, fields) -> dict:
    """The compound type of just these fields (in this order); 400 if any is unknown."""
    if not fields:
        return type_json
    if type_json.get("class") != "H5T_COMPOUND":
        raise BadRequest("fields can only be selected from a compound type")
    by_name = {f["name"]: f for f in type_json["fields"]}
    missing = [f for f in fields if f not in by_name]
    if missing:
        raise BadRequest(f"unknown fields: {', '.join(missing)}")
    return {"class": "H5T_COMPOUND", "fields": [by_name[f] for f in fields]}


class Request:
    """One batch from the SN: a dataset, its chunk dims, optional fields, tasks."""

    def __init__(self, header: dict):
        self.bucket = header["bucket"]
        self.dset = header["dset"]
        self.type = self.dset["type"]
        self.chunk_dims = tuple(header["chunk_dims"])
        self.fields = header.get("fields") or None
        self.piece_type = subtype(self.type, self.fields)
        self.piece_info = types.type_info(self.piece_type)     # once, not per chunk
        self.codec = codec_for(self.dset, self.chunk_dims)
        self.tasks = [(t["id"], ChunkTask.from_json(t["task"]), t.get("ref"))
                      for t in header["tasks"]]


class ChunkOps:
    def __init__(self, node):
        self.node = node
        self.store = node.store

    async def _chunk(self, req: Request, chunk: str, ref=None):
        """The cached chunk entry (loaded from storage, from a referenced byte range,
        or the fill chunk when it was never written)."""
        codec = req.codec
        loop = asyncio.get_running_loop()
        bk = (req.bucket, chunk_key(chunk))

        async def decode(data):
            try:
                arr = await loop.run_in_executor(None, codec.decode, bytes(data)) \
                    if codec.compressed else codec.decode(data)
            except ServerError as e:      # damaged at rest: one line, the request fails
                log.warning("%s/%s (%d bytes): %s", bk[0], bk[1], len(data), e.message)
                raise
            return self._fields(codec, arr)

        def missing():
            return self._fields(codec, codec.missing(chunk_index(chunk)))

        if ref and self.node.chunks.cached(bk) is None:
            # linked (_REF) layouts: the bytes live in byte ranges of another object
            arr = await self._assemble(codec, ref)
            return self.node.chunks.insert(bk, stored=False, **self._fields(codec, arr))
        return await self.node.chunks.get(bk, decode, missing)

    async def _assemble(self, codec, pieces):
        """A chunk from its pieces [bucket, key, offset, size, slices or None]: one piece
        is the whole chunk (padded if short); several are hyperchunk parts placed at
        their slices, the rest fill."""
        datas = await asyncio.gather(*(self.store.get_range(b, k, o, n)
                                       for b, k, o, n, _ in pieces))
        if len(pieces) == 1 and pieces[0][4] is None:
            return codec.decode(datas[0], pad=True)
        arr = codec.fill_chunk()
        for data, (_, _, _, _, sel) in zip(datas, pieces):
            slices = tuple(slice(a, b) for a, b in sel)
            shape = tuple(b - a for a, b in sel)
            arr[slices] = codec.decode_piece(data, shape, pad=True)
        return arr

    @staticmethod
    def _fields(codec, arr) -> dict:
        return {"value": arr, "encode": codec.to_raw, "empty": codec.is_fill,
                "compress": codec.compress if codec.compressed else None}

    @staticmethod
    def _piece(req: Request, piece):
        """The selected elements with just the request's fields."""
        if req.fields:
            piece = np.ascontiguousarray(piece[list(req.fields)]).astype(
                req.piece_info.dtype)
        return piece

    async def _entries(self, req: Request) -> list:
        """Each task's cache entry: those the cache holds now taken at once (a task
        each would cost more than a small piece), the others loaded together."""
        cache = self.node.chunks
        entries = [cache.hit((req.bucket, chunk_key(c))) for c, _, _ in req.tasks]
        missing = [i for i, entry in enumerate(entries) if entry is None]
        if missing:
            loaded = await asyncio.gather(*(self._chunk(req, req.tasks[i][0], req.tasks[i][2])
                                            for i in missing))
            for i, entry in zip(missing, loaded):
                entries[i] = entry
        return entries

    def _piece_bytes(self, req: Request, piece):
        return values.as_buffer(self._piece(req, piece), req.piece_info)

    async def pieces(self, req: Request) -> list:
        """Each task's selected elements (arrays), in task order."""
        entries = await self._entries(req)
        return [self._piece(req, entry.value[task.chunk_sel])
                for entry, (_, task, _) in zip(entries, req.tasks)]

    async def read(self, req: Request) -> tuple[list, list]:
        """Each task's selected elements as raw bytes, in task order."""
        pieces = [values.as_buffer(p, req.piece_info) for p in await self.pieces(req)]
        return [len(p) for p in pieces], pieces

    async def write(self, req: Request, payloads: list):
        """Put each task's piece (raw bytes) into its chunk; the chunks become dirty. A
        piece that is a whole chunk replaces it without reading the old one, and its
        bytes are adopted as they are (read-only; copied if a later write changes it)."""
        if any(ref for _, _, ref in req.tasks):
            raise BadRequest("datasets with linked (_REF) layouts are read-only")
        codec = req.codec
        pieces = [values.from_bytes(data, req.piece_info, task.shape, internal=True)
                  for data, (_, task, _) in zip(payloads, req.tasks)]
        whole = [not req.fields and _covers(task, codec.shape) for _, task, _ in req.tasks]
        entries = await asyncio.gather(*(
            _none() if full else self._chunk(req, c)
            for full, (c, _, _) in zip(whole, req.tasks)))
        for entry, full, piece, (chunk, task, _) in zip(entries, whole, pieces, req.tasks):
            bk = (req.bucket, chunk_key(chunk))
            if full:      # storage may or may not hold the old chunk: stored unknown
                value = piece.reshape(codec.shape)
                value.flags.writeable = False     # shared with the body: copy before changes
                self.node.chunks.insert(bk, stored=None, **self._fields(codec, value))
            else:
                # evicted or replaced while other chunks loaded: change the cache's own
                entry = self.node.chunks.live(bk, entry)
                if not entry.value.flags.writeable:
                    entry.value = entry.value.copy()
                target = entry.value
                if req.fields:
                    for name in req.fields:
                        target[name][task.chunk_sel] = piece[name]
                else:
                    target[task.chunk_sel] = piece
            self.node.chunks.changed(bk)

    async def query(self, req: Request, text: str, limit: int | None, update: dict | None,
                    with_positions=True):
        """Rows matching the query in each task's rows: positions within the task's piece
        (unless not wanted: binary answers carry rows only) and the rows (selected
        fields). With update, those rows are changed first."""
        dtype = types.dtype_of(req.type)
        query = parse_query(text, dtype)
        changes = parse_update(update, dtype) if update else None
        if changes and query.has_where_in:
            raise BadRequest("a query with 'where ... in' cannot update")
        out_sizes, out_payload, counts = [], [], []
        remaining = limit
        # the next chunks load while this one is searched: a few GETs in flight, not one
        # storage round trip per chunk in turn (and not every chunk in memory at once)
        todo, loading = iter(req.tasks), collections.deque()

        def load_next():
            item = next(todo, None)
            if item is not None:
                loading.append((item, asyncio.ensure_future(self._chunk(req, item[0], item[2]))))
        # an update changes entries in place: each must still be cached when changed, so
        # those load one at a time (a prefetched entry could be evicted meanwhile)
        for _ in range(1 if changes else QUERY_WINDOW):
            load_next()
        try:
            while loading:
                (chunk, task, ref), pending = loading.popleft()
                entry = await pending
                load_next()
                rows = entry.value[task.chunk_sel]
                hits = np.flatnonzero(query.mask(rows))
                if remaining is not None:
                    hits = hits[:remaining]
                    remaining -= len(hits)
                if changes and len(hits):
                    if ref:
                        raise BadRequest("datasets with linked (_REF) layouts are read-only")
                    if not entry.value.flags.writeable:
                        entry.value = entry.value.copy()
                    positions = _positions(task, hits)
                    for name, value in changes.items():
                        entry.value[name][positions] = value
                    self.node.chunks.changed((req.bucket, chunk_key(chunk)))
                    rows = entry.value[task.chunk_sel]
                counts.append(len(hits))
                out_payload.append(hits.astype("<u8").tobytes() if with_positions else b"")
                out_payload.append(self._piece_bytes(req, np.take(rows, hits)))
                out_sizes += [len(out_payload[-2]), len(out_payload[-1])]
                if remaining == 0:
                    break
        finally:
            # after an early stop (a limit, an error) the loads already started finish
            await asyncio.gather(*(f for _, f in loading), return_exceptions=True)
        return counts, out_sizes, out_payload


async def _none():
    return None


def _covers(task: ChunkTask, chunk_shape: tuple) -> bool:
    """Does the task write every element of its chunk (full slices, chunk order)?"""
    sel = task.chunk_sel
    if tuple(task.shape) != tuple(chunk_shape[:len(task.shape)]) or len(sel) != len(task.shape):
        return False
    return all(isinstance(s, slice) and (s.start or 0) == 0 and (s.step or 1) == 1
               and s.stop == n for s, n in zip(sel, task.shape))


def _positions(task: ChunkTask, hits: np.ndarray):
    """Chunk coordinates (1-D) of the given positions within a task's piece."""
    sel = task.chunk_sel[0]
    if isinstance(sel, slice):
        return sel.start + hits * (sel.step or 1)
    return np.asarray(sel)[hits]
