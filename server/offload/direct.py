"""The SN as its own executor: read chunks straight from storage with the same kernel
the DNs use, skipping the hop through a DN. Only for datasets no DN holds dirty
chunks of (the dispatcher decides)."""
import asyncio
import math

import numpy as np

from ..core import types
from ..core.errors import BadGateway, NotFound, ServerError
from ..core.ids import chunk_key
from ..core.query import parse_query
from .job import Job

CONCURRENCY = 32
SPARSE = 1 / 16     # below this share of each chunk, a mapped read touches only its pages


async def fetch_chunk(store, job: Job, task, codec):
    """The full chunk array of a task: its key, its linked byte ranges, or fill."""
    pieces = job.refs.get(tuple(task.index))
    loop = asyncio.get_running_loop()
    if pieces:
        datas = await asyncio.gather(*(store.get_range(b, k, o, n) for b, k, o, n, _ in pieces))
        if len(pieces) == 1 and pieces[0][4] is None:
            return codec.decode(datas[0], pad=True, writable=False)
        arr = codec.fill_chunk()
        for data, (_, _, _, _, sel) in zip(datas, pieces):
            arr[tuple(slice(a, b) for a, b in sel)] = codec.decode_piece(
                data, tuple(b - a for a, b in sel), pad=True)
        return arr
    key = chunk_key(job.chunk_id(task))
    try:
        data = await store.get(job.bucket, key)
    except NotFound:
        return codec.missing(task.index)
    try:
        if codec.compressed:
            return await loop.run_in_executor(None, lambda: codec.decode(data, writable=False))
        return codec.decode(data, writable=False)
    except ServerError as e:     # damaged at rest: 502, as when a DN reads it
        raise BadGateway(f"stored object {key} is damaged: {e.message}") from None


async def fetch_rows(store, job: Job, task, codec):
    """(array, selection in it) of a task. An uncompressed chunk is stored in C order,
    so the rows of its first dimension that the task touches are one byte range: only
    those are read (a page of half the chunk's rows reads half the file, not all)."""
    first = task.chunk[0] if task.chunk else None
    if not (codec.pipeline.identity and not codec.variable and isinstance(first, slice)
            and all(isinstance(c, slice) for c in task.chunk)
            and tuple(task.index) not in job.refs):
        return await fetch_chunk(store, job, task, codec), task.chunk_sel
    rows = range(codec.chunk_dims[0])[first]
    if not rows or len(rows) == codec.chunk_dims[0]:
        return await fetch_chunk(store, job, task, codec), task.chunk_sel
    lo, hi = min(rows[0], rows[-1]), max(rows[0], rows[-1]) + 1
    row_bytes = codec.nbytes // codec.chunk_dims[0]
    key = chunk_key(job.chunk_id(task))
    try:
        data = await store.get_range(job.bucket, key, lo * row_bytes, (hi - lo) * row_bytes)
    except NotFound:
        return codec.missing(task.index), task.chunk_sel
    if len(data) != (hi - lo) * row_bytes:      # short: the whole chunk says why (pad, 502)
        return await fetch_chunk(store, job, task, codec), task.chunk_sel
    part = codec.decode_piece(data, (hi - lo, *codec.chunk_dims[1:]), writable=False)
    shifted = slice(first.start - lo if first.start is not None else None,
                    first.stop - lo if first.stop is not None else None, first.step)
    return part, (shifted, *task.chunk_sel[1:])


def sparse(job: Job, tasks) -> bool:
    """Do these tasks use only a few elements of each chunk, on average (a column,
    scattered points)?"""
    used = sum(t.count for t in tasks) / (max(1, len(tasks)) * math.prod(job.chunk_dims))
    return used < SPARSE


def select(job: Job, arr, task, sel=None):
    piece = arr[task.chunk_sel if sel is None else sel]
    if job.fields:
        piece = piece[list(job.fields)].astype(job.piece_dtype)
    return piece


class DirectExecutor:
    name = "sn"

    def __init__(self, store):
        self.store = store
        # a store that maps objects (POSIX) serves a few elements of a chunk cheaply
        self.maps = callable(getattr(store, "run_mapped", None))

    async def _each(self, job: Job, tasks, fn, fetch=fetch_chunk):
        codec = job.codec
        sem = asyncio.Semaphore(CONCURRENCY)

        async def one(task):
            async with sem:
                fn(task, await fetch(self.store, job, task, codec))

        await asyncio.gather(*(one(t) for t in tasks))

    def maps_plain(self, job: Job) -> bool:
        """Can a few elements of a chunk be read through a memory map: chunks stored as
        plain arrays, each in its own object, in a store that maps?"""
        codec = job.codec
        return self.maps and codec.pipeline.identity and not codec.variable and not job.refs

    async def read(self, job: Job, tasks, out: np.ndarray):
        if self.maps_plain(job) and sparse(job, tasks):
            tasks = await self._read_mapped(job, tasks, out)

        def place(task, found):
            arr, sel = found
            out[task.out_sel] = select(job, arr, task, sel)
        await self._each(job, tasks, place, fetch_rows)

    async def _read_mapped(self, job: Job, tasks, out: np.ndarray) -> list:
        """Sparse reads (a column, scattered points) of plain chunks through memory
        maps, all in one worker thread: the pages touched, not whole chunks. Returns
        the tasks whose object is not a whole chunk (read the usual way: pad or 502)."""
        codec, left = job.codec, []

        def use(i, view):
            task = tasks[i]
            if view is None:
                out[task.out_sel] = select(job, codec.missing(task.index), task)
            elif len(view) != codec.nbytes:
                left.append(task)
            else:
                out[task.out_sel] = select(
                    job, codec.decode_piece(view, codec.chunk_dims, writable=False), task)

        await self.store.run_mapped(job.bucket, [chunk_key(job.chunk_id(t)) for t in tasks], use)
        return left

    async def query(self, job: Job, tasks, text: str, limit=None, update=None) -> list:
        """Read-only queries (updates go to the DNs): [(task, positions, rows)]."""
        assert update is None
        query = parse_query(text, types.dtype_of(job.type))
        found = {}

        def match(task, arr):
            rows = arr[task.chunk_sel]
            hits = np.flatnonzero(query.mask(rows))
            if len(hits):
                found[id(task)] = (task, hits, select(job, np.take(rows, hits), _All()))
        await self._each(job, tasks, match)
        ordered = [found[id(t)] for t in tasks if id(t) in found]
        if limit is not None:
            out, left = [], limit
            for task, hits, rows in ordered:
                if left <= 0:
                    break
                out.append((task, hits[:left], rows[:left]))
                left -= len(hits[:left])
            ordered = out
        return ordered


class _All:
    chunk_sel = (slice(None),)
