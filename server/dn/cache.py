"""A write-back cache over a Store: the DN keeps documents and chunks in two of them.

Entries hold decoded values (a JSON document, a numpy chunk). A change marks an
entry dirty; dirty entries are written back (encoded) once they have been quiet
for a while, or when flushed, and are never evicted before that. Loads of one
key are shared by concurrent requests; writes of one key never overlap, so an
older version can not land after a newer one.

When storage fails, dirty entries stay dirty (and in memory) until a later pass
stores them: nothing acknowledged is dropped. While it fails, a pass first tries
the oldest entry alone and stops there if that fails too, new changes are refused
(Unavailable) once unsaved bytes would pass the cache's limit, and a stored object
that cannot be decoded is BadGateway (502), never a value.
"""
import asyncio
import contextlib
import logging
import time
from collections import OrderedDict

from ..core.errors import BadGateway, Gone, HttpError, NotFound, ServerError, Unavailable

log = logging.getLogger("h5cloud.dn")
MAX_TOMBSTONES = 100_000
WARN_EVERY = 30.0          # seconds between "storage still failing" lines


class Entry:
    """A cached value. `encode(value) -> bytes` writes it back; `stored` says whether
    storage holds a copy (None: unknown); `empty(value)` (chunks: all fill) says a never-stored value
    need not be written; `memo` is in-memory state beside it (deleted link and
    attribute names, for 410 answers) that is never written."""
    __slots__ = ("value", "size", "version", "memo", "encode", "stored", "empty", "compress")

    def __init__(self, value, size, encode, stored=True, empty=None, compress=None):
        self.value, self.size, self.encode, self.stored = value, size, encode, stored
        self.empty, self.compress = empty, compress
        self.version, self.memo = 0, {}


class WriteBackCache:
    def __init__(self, store, limit_bytes: int, name: str):
        self.store = store
        self.limit = limit_bytes
        self.name = name
        self._entries: OrderedDict = OrderedDict()    # (bucket, key) -> Entry
        self._bytes = 0
        self._dirty: dict = {}                        # (bucket, key) -> first dirty time
        self._dirty_sizes: dict = {}                  # (bucket, key) -> bytes, while dirty
        self._dirty_bytes = 0
        self._draining = None                         # write-back started by pressure
        self._loading: dict = {}
        self._writing: dict = {}
        self._tombstones: OrderedDict = OrderedDict()
        self.failing: Exception | None = None          # the last write-back's error, if it failed
        self._warned = None

    # ---- reading ----------------------------------------------------------

    def cached(self, bk) -> Entry | None:
        return self._entries.get(bk)

    def hit(self, bk) -> Entry | None:
        """The entry for bk if held now, as the latest used (get without loading)."""
        entry = self._entries.get(bk)
        if entry is not None:
            self._entries.move_to_end(bk)
        return entry

    async def get(self, bk, decode, missing=None) -> Entry:
        """The entry for bk, loaded once however many ask. `await decode(bytes)` gives the
        entry's fields ({value, encode[, empty, compress]}); when storage has no such key,
        missing() gives them for a clean, never-stored entry (chunks read as fill);
        without it, NotFound."""
        entry = self.hit(bk)
        if entry is not None:
            return entry
        if bk in self._tombstones:
            raise Gone(f"{bk[1]} has been deleted")
        pending = self._loading.get(bk)
        if pending is None:
            pending = asyncio.ensure_future(self._load(bk, decode, missing))
            self._loading[bk] = pending
            pending.add_done_callback(lambda _: self._loading.pop(bk, None))
        return await asyncio.shield(pending)

    async def _load(self, bk, decode, missing) -> Entry:
        try:
            data = await self.store.get(*bk)
        except NotFound:
            if missing is None or bk in self._entries:
                if bk in self._entries:
                    return self._entries[bk]
                raise
            return self._entries.get(bk) or self.insert(bk, stored=False, **missing())
        if bk in self._entries:           # created while we were reading
            return self._entries[bk]
        try:
            fields = await decode(data)
        except ServerError as e:          # the kernel's "damaged chunk"
            raise BadGateway(f"stored object {bk[1]} is damaged: {e.message}") from None
        except HttpError:
            raise
        except Exception as e:            # a filter could not decode it
            raise BadGateway(f"stored object {bk[1]} is damaged: "
                             f"{type(e).__name__}: {e}") from None
        if bk in self._entries:
            return self._entries[bk]
        # what it holds in memory: a chunk's decoded array (not its stored, maybe
        # compressed bytes), a document's JSON
        value = fields["value"]
        size = value.nbytes if hasattr(value, "nbytes") else len(data)
        return self.insert(bk, stored=True, size=size, **fields)

    # ---- changing -----------------------------------------------------------

    def insert(self, bk, value, encode, stored=True, size=None, empty=None,
               compress=None) -> Entry:
        """Put a value in the cache (replacing any), clean; callers mark it dirty."""
        old = self._entries.pop(bk, None)
        if old is not None:
            self._bytes -= old.size
        entry = Entry(value, size if size is not None else _size_of(value), encode, stored,
                      empty, compress)
        if old is not None:
            entry.version, entry.memo = old.version + 1, old.memo
            entry.stored = True if (entry.stored or old.stored) else \
                (None if None in (entry.stored, old.stored) else False)
        self._entries[bk] = entry
        self._bytes += entry.size
        self._tombstones.pop(bk, None)
        self._evict(keep=bk)            # not the new entry: its caller marks it dirty next
        return entry

    def live(self, bk, entry) -> Entry:
        """The entry to change for bk, given `entry` fetched before an await: the cache's
        own, or `entry` put back if it was evicted meanwhile (it was clean then: it still
        holds what storage holds). Call it, change the value and call changed() with no
        await in between."""
        current = self._entries.get(bk)
        if current is not None:
            return current
        self._entries[bk] = entry
        self._bytes += entry.size
        return entry

    def changed(self, bk):
        """The entry's value was changed in place: it must be written back. When dirty
        entries fill half the cache, writing back starts at once rather than after
        s3_age_time, so memory stays bounded however much is uploaded."""
        entry = self._entries[bk]
        entry.version += 1
        if bk not in self._dirty:
            self._dirty[bk] = time.monotonic()
            self._dirty_sizes[bk] = entry.size
            self._dirty_bytes += entry.size
        if self._draining is None and self.failing is None \
                and self._dirty_bytes > self.limit // 2:
            self._draining = asyncio.ensure_future(self._drain())

    def check_room(self, nbytes: int = 0):
        """Before a change of about nbytes: while storage fails, refuse it (503) once
        unsaved changes would pass the cache's limit (memory stays bounded; what was
        acknowledged stays until it is stored)."""
        if self.failing is not None and self._dirty_bytes + nbytes > self.limit:
            raise Unavailable(f"storage is failing ({self.failing}) and the {self.name} "
                              f"cache is full of changes not yet stored")

    @property
    def dirty_bytes(self) -> int:
        return self._dirty_bytes

    def _clean(self, bk):
        if self._dirty.pop(bk, None) is not None:
            self._dirty_bytes -= self._dirty_sizes.pop(bk, 0)

    async def _drain(self):
        """Write the oldest dirty entries until they fill at most a quarter of the cache."""
        try:
            while self._dirty_bytes > self.limit // 4:
                before = self._dirty_bytes
                oldest = sorted(self._dirty, key=self._dirty.get)[:32]
                await asyncio.gather(*(self.write(bk) for bk in oldest),
                                     return_exceptions=True)
                if self._dirty_bytes >= before:      # storage is failing: leave it to the loop
                    break
        finally:
            self._draining = None

    def is_dirty(self, bk) -> bool:
        return bk in self._dirty

    def _evict(self, keep=None):
        if self._bytes <= self.limit:
            return
        for bk in list(self._entries):
            if self._bytes <= self.limit:
                break
            if bk in self._dirty or bk in self._writing or bk in self._loading or bk == keep:
                continue
            self._bytes -= self._entries.pop(bk).size

    async def forget(self, bk, tombstone=True):
        """Drop bk (waiting for a write of it in flight); later loads answer 410.
        Returns (the entry, whether it was dirty) for reinstate()."""
        while bk in self._writing:
            await asyncio.shield(self._writing[bk])
        dirty = bk in self._dirty
        self._clean(bk)
        entry = self._entries.pop(bk, None)
        if entry is not None:
            self._bytes -= entry.size
        if tombstone:
            self._tombstones[bk] = True
            while len(self._tombstones) > MAX_TOMBSTONES:
                self._tombstones.popitem(last=False)
        return entry, dirty

    def reinstate(self, bk, entry, dirty: bool):
        """Undo forget() (a delete that storage refused): the entry as it was."""
        self._tombstones.pop(bk, None)
        if entry is None or bk in self._entries:
            return
        self._entries[bk] = entry
        self._bytes += entry.size
        if dirty:
            self.changed(bk)

    async def forget_prefix(self, bucket: str, prefix: str):
        for bk in [bk for bk in self._entries if bk[0] == bucket and bk[1].startswith(prefix)]:
            await self.forget(bk)

    # ---- write-back -----------------------------------------------------------

    async def _wait_writes(self, bk):
        while bk in self._writing:
            await asyncio.shield(self._writing[bk])

    @contextlib.contextmanager
    def _storing(self, bk):
        """One storage write of bk at a time (others wait in _wait_writes); its outcome
        says whether storage is failing (503/507) or fine."""
        done = asyncio.get_running_loop().create_future()
        self._writing[bk] = done
        try:
            yield
            self.failing = None
        except Exception as e:
            if isinstance(e, HttpError) and e.status in (503, 507):
                self.failing = e
            raise
        finally:
            del self._writing[bk]
            done.set_result(None)

    async def write(self, bk):
        await self._wait_writes(bk)
        entry = self._entries.get(bk)
        if entry is None or bk not in self._dirty:
            return
        version = entry.version
        with self._storing(bk):
            if entry.stored is not True and entry.empty is not None \
                    and entry.empty(entry.value):
                # all fill: nothing to store; if storage may hold an old copy, remove it
                if entry.stored is None:
                    await self.store.delete(*bk)
                    entry.stored = False
            else:
                # encode (a snapshot) here; compress off the event loop
                data = entry.encode(entry.value)
                if entry.compress is not None:
                    data = await asyncio.get_running_loop().run_in_executor(
                        None, entry.compress, data)
                await self.store.put(bk[0], bk[1], data)
                entry.stored = True
            if entry.version == version and self._entries.get(bk) is entry:
                self._clean(bk)

    async def put_now(self, bk, value, encode, size=None) -> Entry:
        """Store value at once, then cache it, clean (a write the caller waits for). If
        storage fails the cache is left as it was, so a retry of the request finds
        nothing half done."""
        await self._wait_writes(bk)
        with self._storing(bk):
            await self.store.put(bk[0], bk[1], encode(value))
        entry = self.insert(bk, value, encode, stored=True, size=size)
        self._clean(bk)
        return entry

    async def flush(self, min_age: float = 0.0, bucket: str | None = None):
        """Write every entry dirty for at least min_age seconds (of one bucket, if given)."""
        cutoff = time.monotonic() - min_age
        due = sorted((bk for bk, since in self._dirty.items()
                      if since <= cutoff and (bucket is None or bk[0] == bucket)),
                     key=self._dirty.get)
        if not due:
            return 0, []
        written = 0
        if self.failing is not None:
            # storage failed last time: try the oldest alone before sending it the rest
            try:
                await self.write(due[0])
            except Exception as e:
                now = time.monotonic()
                if self._warned is None or now - self._warned >= WARN_EVERY:
                    self._warned = now
                    log.warning("%s write-back: storage still failing (%d waiting): %s",
                                self.name, len(due), e)
                return 0, [e]
            self._warned = None
            log.info("%s write-back: storage is back, writing %d objects",
                     self.name, len(due))
            due, written = due[1:], 1
        sem = asyncio.Semaphore(32)

        async def one(bk):
            async with sem:
                await self.write(bk)

        results = await asyncio.gather(*(one(bk) for bk in due), return_exceptions=True)
        errors = [r for r in results if isinstance(r, Exception)]
        if errors:
            log.error("%s write-back: %d of %d objects failed (they stay dirty): %s",
                      self.name, len(errors), len(due), errors[0])
        return written + len(due) - len(errors), errors

    def dirty_prefixes(self, prefixes) -> list:
        """Those prefixes under which some entry is dirty or being written (any bucket)."""
        keys = [bk[1] for bk in self._dirty] + [bk[1] for bk in self._writing]
        return [p for p in prefixes if any(k.startswith(p) for k in keys)]

    @property
    def dirty_count(self) -> int:
        return len(self._dirty) + len(self._writing)

    def stats(self) -> dict:
        return {"entries": len(self._entries), "bytes": self._bytes,
                "dirty": len(self._dirty), "dirty_bytes": self._dirty_bytes,
                "limit": self.limit,
                "storage": "ok" if self.failing is None else f"failing: {self.failing}"}


def _size_of(value) -> int:
    nbytes = getattr(value, "nbytes", None)
    if nbytes is not None:
        return int(nbytes)
    return len(repr(value))
