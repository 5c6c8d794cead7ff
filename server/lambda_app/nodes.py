"""The data nodes of the one-function server: DN logic run in-process, per change.

Many invocations share one bucket and no DN sits between them, so a change can
not be kept in a cache and written later: each one (a document op, a batch of
chunk writes, a query update) runs on a fresh DataNode whose reads remember the
object tags, and its writes are conditional on them (If-Match / If-None-Match).
When another invocation changed an object in between, the write fails with
PreconditionFailed and the whole change runs again on what is there now, so no
invocation's update is lost. Everything is stored before the answer goes out.
"""
import asyncio
import logging
import random

from ..core import values
from ..core.errors import NotFound, PreconditionFailed, Unavailable
from ..dn.chunks import ChunkOps, Request
from ..dn.node import DataNode
from ..offload.cost import RecentChunks
from ..offload.dn import decode_found
from ..offload.job import Job

log = logging.getLogger("h5cloud.lambda")
ATTEMPTS = 12
_ABSENT = object()      # read and found missing: create only if still missing


class TaggedStore:
    """A Store view that remembers the tag of each object read and writes back only
    over that tag. Objects written without being read (new documents, whole chunks)
    are plain writes: they do not depend on what was there."""

    def __init__(self, store):
        self.store = store
        self.tags: dict = {}

    async def get(self, bucket, key):
        try:
            data, tag = await self.store.get_tagged(bucket, key)
        except NotFound:
            self.tags[(bucket, key)] = _ABSENT
            raise
        self.tags[(bucket, key)] = tag
        return data

    async def put(self, bucket, key, data):
        tag = self.tags.get((bucket, key))
        if tag is None:
            await self.store.put(bucket, key, data)
            return
        new = await self.store.put_if(bucket, key, data, None if tag is _ABSENT else tag)
        self.tags[(bucket, key)] = new

    def __getattr__(self, name):        # get_range, delete, exists, listings
        return getattr(self.store, name)


class LocalNodes:
    """What the SN's DataNodes client offers, answered in this process."""

    def __init__(self, store, settings):
        self.store = store
        self.settings = settings
        self.urls = ["local"]
        self.ids = ["dn-001"]
        self.ready = True
        self.down: set = set()     # one node, in this process: never down

    async def start(self):
        pass

    async def close(self):
        pass

    async def check_health(self) -> bool:
        return True

    def executor(self, cache_bytes: int = 0):
        return LocalExecutor(self)

    def node(self, store=None) -> DataNode:
        return DataNode(store or self.store, self.settings)

    async def change(self, fn):
        """fn(node) on a fresh node, then every object it changed is stored over the
        tags it read; on a lost race, again from the start."""
        for attempt in range(ATTEMPTS):
            node = self.node(TaggedStore(self.store))
            result = await fn(node)
            _, errors = await node.flush(0)
            if not errors:
                return result
            if not all(isinstance(e, PreconditionFailed) for e in errors):
                raise errors[0]
            log.info("concurrent change, retrying (attempt %d)", attempt + 1)
            await asyncio.sleep(random.uniform(0, 0.01 * 2 ** min(attempt, 6)))
        # the last attempt's other objects may already be stored (a multi-chunk write);
        # every one of them holds only values this request was asked to write
        raise Unavailable("too many concurrent changes to one object; try again")

    # ---- documents -------------------------------------------------------

    async def get(self, bucket, key, route=None) -> dict:
        return await self.node().get(bucket, key)

    async def put(self, bucket, key, doc, route=None, exclusive=False, sync=False):
        await self.change(lambda node: node.put(bucket, key, doc, exclusive=exclusive))

    async def apply(self, bucket, key, route, op, args, sync=False):
        return await self.change(lambda node: node.apply(bucket, key, op, args))

    async def delete(self, bucket, key, route=None):
        await self.node().delete(bucket, key)

    async def flush_all(self):
        pass                    # nothing is ever held back

    async def drop_all(self, bucket, prefix, purge_route=None):
        # no background work in a function that may be frozen after answering
        await self.node().purge(bucket, prefix)


class LocalExecutor:
    """Chunk tasks run by the DN chunk code in this process (see offload.dn)."""
    name = "local"

    def __init__(self, nodes: LocalNodes):
        self.nodes = nodes
        self.urls = nodes.urls
        self.recent = RecentChunks(0)   # each call reads through a fresh node: none kept
        self.capacity = 0

    async def dirty(self, dset_ids) -> set:
        return set()

    def cached_share(self, job: Job, tasks) -> float:
        return 0.0

    async def read(self, job: Job, tasks, out):
        req = Request(job.header(tasks, encoded=False))
        pieces = await ChunkOps(self.nodes.node()).pieces(req)
        for task, piece in zip(tasks, pieces):      # in-process: no bytes in between
            out[task.out_sel] = piece.reshape(task.shape)

    async def write(self, job: Job, tasks, src):
        pieces = [values.as_buffer(src[task.out_sel], job.piece_type) for task in tasks]
        req = Request(job.header(tasks, encoded=False))
        await self.nodes.change(lambda node: ChunkOps(node).write(req, pieces))

    async def query(self, job: Job, tasks, text, limit=None, update=None,
                    positions=True) -> list:
        req = Request(job.header(tasks, encoded=False))

        async def run(node):
            return await ChunkOps(node).query(req, text, limit, update, positions)

        if update is None:
            counts, sizes, payload = await run(self.nodes.node())
        else:
            counts, sizes, payload = await self.nodes.change(run)
        return decode_found(job, tasks, counts, payload)
