"""A data node: the one writer of the documents whose ids hash to it.

It keeps an LRU cache of JSON documents, applies changes to them one at a
time, and writes changed ("dirty") documents back to storage once they have
been quiet for s3_age_time — or at once when asked (`sync`) — and all of them
on flush and on shutdown. Everything here is plain async Python; app.py puts
HTTP in front of it and lambda_app can call it in-process.
"""
import asyncio
import json
import logging
import time
from collections import OrderedDict

from ..core import metaops
from ..core.errors import Conflict, Gone, NotFound

log = logging.getLogger("h5cloud.dn")
MAX_TOMBSTONES = 100_000


class _Entry:
    """A cached document; memo holds in-memory state beside it (deleted link and
    attribute names, for 410 answers) that is never written to storage."""
    __slots__ = ("doc", "size", "version", "memo")

    def __init__(self, doc, size):
        self.doc, self.size, self.version, self.memo = doc, size, 0, {}


def dumps(doc) -> bytes:
    return json.dumps(doc).encode("utf-8")


class DataNode:
    def __init__(self, store, settings, node_id: str = "dn-0"):
        self.store = store
        self.settings = settings
        self.node_id = node_id
        self._cache: OrderedDict = OrderedDict()   # (bucket, key) -> _Entry
        self._cache_bytes = 0
        self._dirty: dict = {}                     # (bucket, key) -> first dirty time
        self._loading: dict = {}                   # (bucket, key) -> Future
        self._writing: dict = {}                   # (bucket, key) -> Future
        self._tombstones: OrderedDict = OrderedDict()
        self._flusher = None

    # ---- reads -----------------------------------------------------------

    async def _entry(self, bk) -> _Entry:
        """The cached entry, loading it once even when many requests ask at once."""
        entry = self._cache.get(bk)
        if entry is not None:
            self._cache.move_to_end(bk)
            return entry
        if bk in self._tombstones:
            raise Gone(f"{bk[1]} has been deleted")
        pending = self._loading.get(bk)
        if pending is None:
            pending = asyncio.ensure_future(self._load(bk))
            self._loading[bk] = pending
            pending.add_done_callback(lambda _: self._loading.pop(bk, None))
        return await asyncio.shield(pending)

    async def _load(self, bk) -> _Entry:
        data = await self.store.get(*bk)
        if bk in self._cache:          # created while we were reading
            return self._cache[bk]
        try:
            doc = json.loads(data)
        except ValueError:
            raise NotFound(f"unreadable object: {bk[1]}") from None
        return self._insert(bk, doc, len(data))

    def _insert(self, bk, doc, size) -> _Entry:
        old = self._cache.pop(bk, None)
        if old is not None:
            self._cache_bytes -= old.size
        entry = _Entry(doc, size)
        if old is not None:
            entry.version, entry.memo = old.version + 1, old.memo
        self._cache[bk] = entry
        self._cache_bytes += size
        self._evict()
        return entry

    def _evict(self):
        limit = self.settings.metadata_mem_cache_size
        if self._cache_bytes <= limit:
            return
        for bk in list(self._cache):
            if self._cache_bytes <= limit:
                break
            if bk in self._dirty or bk in self._writing:
                continue
            self._cache_bytes -= self._cache.pop(bk).size

    async def get(self, bucket: str, key: str) -> dict:
        return (await self._entry((bucket, key))).doc

    # ---- changes ---------------------------------------------------------

    async def put(self, bucket: str, key: str, doc: dict, exclusive=False, sync=False):
        """Store a whole document; with exclusive, 409 if it already exists."""
        bk = (bucket, key)
        if exclusive:
            try:
                await self._entry(bk)
                raise Conflict(f"{key} already exists")
            except (NotFound, Gone):
                pass
        self._tombstones.pop(bk, None)
        self._insert(bk, doc, len(dumps(doc)))
        await self._changed(bk, sync)

    async def apply(self, bucket: str, key: str, name: str, args: dict, sync=False):
        """Run a metaops change on one document; returns the op's result."""
        bk = (bucket, key)
        entry = await self._entry(bk)
        changed, result = metaops.apply(name, entry.doc, args, entry.memo)
        if changed:
            entry.version += 1
            await self._changed(bk, sync)
        return result

    async def _changed(self, bk, sync):
        self._dirty.setdefault(bk, time.monotonic())
        if sync:
            await self._write(bk)

    async def delete(self, bucket: str, key: str):
        """Remove a document now; later reads of it answer 410."""
        bk = (bucket, key)
        await self._entry(bk)          # NotFound / Gone if there is nothing to delete
        await self._forget(bk)
        await self.store.delete(bucket, key)
        self._tombstone(bk)

    async def _forget(self, bk):
        while bk in self._writing:
            await asyncio.shield(self._writing[bk])
        self._dirty.pop(bk, None)
        entry = self._cache.pop(bk, None)
        if entry is not None:
            self._cache_bytes -= entry.size

    def _tombstone(self, bk):
        self._tombstones[bk] = True
        while len(self._tombstones) > MAX_TOMBSTONES:
            self._tombstones.popitem(last=False)

    async def drop_prefix(self, bucket: str, prefix: str, purge=False):
        """Forget every document under prefix (a deleted domain); with purge,
        also delete its keys from storage."""
        for bk in [bk for bk in self._cache if bk[0] == bucket and bk[1].startswith(prefix)]:
            await self._forget(bk)
            self._tombstone(bk)
        if purge:
            keys = [k async for k in self.store.list_keys(bucket, prefix)]
            await _gather_limited([self.store.delete(bucket, k) for k in keys], 16)

    # ---- write-back ------------------------------------------------------

    async def _write(self, bk):
        while bk in self._writing:
            await asyncio.shield(self._writing[bk])
        entry = self._cache.get(bk)
        if entry is None or bk not in self._dirty:
            return
        done = asyncio.get_running_loop().create_future()
        self._writing[bk] = done
        version = entry.version
        try:
            data = dumps(entry.doc)
            await self.store.put(bk[0], bk[1], data)
            if entry.version == version and self._cache.get(bk) is entry:
                self._dirty.pop(bk, None)
        finally:
            del self._writing[bk]
            done.set_result(None)

    async def flush(self, min_age: float = 0.0):
        """Write every dirty document that has been dirty for at least min_age seconds."""
        cutoff = time.monotonic() - min_age
        due = [bk for bk, since in self._dirty.items() if since <= cutoff]
        results = await _gather_limited([self._write(bk) for bk in due], 32, return_exceptions=True)
        errors = [r for r in results if isinstance(r, Exception)]
        for err in errors:
            log.error("write-back failed: %s", err)
        return len(due) - len(errors), errors

    @property
    def dirty_count(self) -> int:
        return len(self._dirty)

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
            written, errors = await self.flush(0)
            if not self._dirty:
                break
            await asyncio.sleep(0.2 * (attempt + 1))
        if self._dirty:
            log.error("%d objects could not be written at shutdown", len(self._dirty))
        else:
            log.info("shutdown flush complete")

    def stats(self) -> dict:
        return {"objects": len(self._cache), "bytes": self._cache_bytes,
                "dirty": len(self._dirty), "tombstones": len(self._tombstones)}


async def _gather_limited(coros, limit, return_exceptions=False):
    sem = asyncio.Semaphore(limit)

    async def run(c):
        async with sem:
            return await c

    return await asyncio.gather(*(run(c) for c in coros), return_exceptions=return_exceptions)
