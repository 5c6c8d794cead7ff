"""A data node: the one writer of the documents and chunks whose ids hash to it.

Documents and chunks live in two write-back caches (cache.py). A document change
is a core.metaops op applied while no other change to it can run; chunk reads and
writes are in chunks.py. Dirty entries reach storage once quiet for s3_age_time,
at once when asked (`sync`), and all of them on flush and on shutdown. Plain
async Python: app.py puts HTTP in front of it; lambda_app can call it in-process.

When storage fails, a change the caller waits for (`sync`, delete) fails as a whole
(the cache is left as before, so the client's retry finds nothing half done); other
changes wait in the caches, and flush answers the storage's error until they are stored.
"""
import asyncio
import copy
import logging

from ..core import fastjson, metaops
from ..core.errors import Conflict, Gone, NotFound
from .cache import WriteBackCache

log = logging.getLogger("h5cloud.dn")


def dumps(doc) -> bytes:
    return fastjson.exact(doc)


async def _decode_doc(data: bytes) -> dict:
    try:
        return {"value": fastjson.loads(data), "encode": dumps}
    except ValueError:
        raise NotFound("unreadable object") from None


class DataNode:
    def __init__(self, store, settings, node_id: str = "dn-0"):
        self.store = store
        self.settings = settings
        self.node_id = node_id
        self.docs = WriteBackCache(store, settings.metadata_mem_cache_size, "metadata")
        self.chunks = WriteBackCache(store, settings.chunk_mem_cache_size, "chunks")
        self._flusher = None
        self._background: set = set()

    # ---- documents ---------------------------------------------------------

    async def _doc(self, bk):
        return await self.docs.get(bk, _decode_doc)

    async def get(self, bucket: str, key: str) -> dict:
        return (await self._doc((bucket, key))).value

    async def put(self, bucket: str, key: str, doc: dict, exclusive=False, sync=False):
        """Store a whole document; with exclusive, 409 if it already exists."""
        bk = (bucket, key)
        if exclusive:
            try:
                await self._doc(bk)
                raise Conflict(f"{key} already exists")
            except (NotFound, Gone):
                pass
        size = len(dumps(doc))
        self.docs.check_room(size)
        if sync:      # stored first, cached after: a failure leaves nothing behind
            await self.docs.put_now(bk, doc, dumps, size=size)
            return
        self.docs.insert(bk, doc, dumps, stored=False, size=size)
        await self._changed(self.docs, bk, False)

    async def apply(self, bucket: str, key: str, name: str, args: dict, sync=False):
        """Run a metaops change on one document; returns the op's result."""
        bk = (bucket, key)
        entry = await self._doc(bk)
        self.docs.check_room(entry.size)
        before = (copy.deepcopy(entry.value), copy.deepcopy(entry.memo)) if sync else None
        changed, result = metaops.apply(name, entry.value, args, entry.memo)
        if changed:
            self.docs.changed(bk)
            if sync:
                version = entry.version
                try:
                    await self.docs.write(bk)
                except Exception:
                    # the caller hears of a failure: undo the change unless another one
                    # came after it; the entry stays dirty so that storage ends up with
                    # what the cache holds even if the failed write did land
                    if entry.version == version and self.docs.cached(bk) is entry:
                        entry.value, entry.memo = before
                    raise
        return result

    async def _changed(self, cache, bk, sync):
        cache.changed(bk)
        if sync:
            await cache.write(bk)

    async def delete(self, bucket: str, key: str):
        """Remove a document now; later reads of it answer 410."""
        bk = (bucket, key)
        await self._doc(bk)            # NotFound / Gone if there is nothing to delete
        entry, dirty = await self.docs.forget(bk)
        try:
            await self.store.delete(bucket, key)
        except Exception:
            self.docs.reinstate(bk, entry, dirty)     # still there: the DELETE can be retried
            raise

    async def drop_prefix(self, bucket: str, prefix: str, purge=False):
        """Forget every document and chunk under prefix (a deleted domain or dataset);
        with purge, also delete its keys from storage (in the background)."""
        await self.docs.forget_prefix(bucket, prefix)
        await self.chunks.forget_prefix(bucket, prefix)
        if purge:
            task = asyncio.ensure_future(self.purge(bucket, prefix))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def purge(self, bucket, prefix):
        """Delete every key under prefix from storage."""
        keys = [k async for k in self.store.list_keys(bucket, prefix)]
        sem = asyncio.Semaphore(16)

        async def one(key):
            async with sem:
                await self.store.delete(bucket, key)

        await asyncio.gather(*(one(k) for k in keys), return_exceptions=True)
        log.info("purged %d keys under %s/%s", len(keys), bucket, prefix)

    # ---- write-back ----------------------------------------------------------

    async def flush(self, min_age: float = 0.0):
        written, errors = 0, []
        for cache in (self.docs, self.chunks):
            n, errs = await cache.flush(min_age)
            written += n
            errors += errs
        return written, errors

    @property
    def dirty_count(self) -> int:
        return self.docs.dirty_count + self.chunks.dirty_count

    async def _flush_loop(self):
        interval = max(0.05, self.settings.s3_sync_interval)
        while True:
            await asyncio.sleep(interval)
            try:
                await self.flush(self.settings.s3_age_time)
            except Exception:  # keep the loop alive; the next pass retries
                log.exception("flush pass failed")

    def start(self):
        self._flusher = asyncio.ensure_future(self._flush_loop())

    async def stop(self):
        """Stop the loop and write everything that is still dirty."""
        if self._flusher:
            self._flusher.cancel()
            try:
                await self._flusher
            except asyncio.CancelledError:
                pass
        for attempt in range(5):
            await self.flush(0)
            if not self.dirty_count:
                break
            await asyncio.sleep(0.2 * (attempt + 1))
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        if self.dirty_count:
            log.error("%d objects could not be written at shutdown", self.dirty_count)
        else:
            log.info("shutdown flush complete")

    def stats(self) -> dict:
        return {"metadata": self.docs.stats(), "chunks": self.chunks.stats()}
