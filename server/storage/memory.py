"""In-process storage for unit tests (not shared between processes)."""
import itertools

from ..core.errors import NotFound, PreconditionFailed
from .base import Store, check_bucket, check_key


class MemoryStore(Store):
    def __init__(self, buckets=("hsdstest",)):
        self._buckets: dict[str, dict[str, bytes]] = {b: {} for b in buckets}
        self._tags: dict = {}                   # (bucket, key) -> tag of the last write
        self._counter = itertools.count(1)

    def _bucket(self, bucket: str) -> dict:
        check_bucket(bucket)
        if bucket not in self._buckets:
            raise NotFound(f"bucket not found: {bucket}")
        return self._buckets[bucket]

    async def get(self, bucket, key):
        try:
            return self._bucket(bucket)[check_key(key)]
        except KeyError:
            raise NotFound(f"key not found: {key}") from None

    async def get_range(self, bucket, key, offset, length):
        return (await self.get(bucket, key))[offset:offset + length]

    async def put(self, bucket, key, data):
        self._bucket(bucket)[check_key(key)] = bytes(data)
        self._tags[(bucket, key)] = str(next(self._counter))

    async def get_tagged(self, bucket, key):
        data = await self.get(bucket, key)
        return data, self._tags[(bucket, key)]

    async def put_if(self, bucket, key, data, tag):
        current = self._tags.get((bucket, key)) if key in self._bucket(bucket) else None
        if current != tag:
            raise PreconditionFailed(f"{key} changed since it was read")
        await self.put(bucket, key, data)
        return self._tags[(bucket, key)]

    async def delete(self, bucket, key):
        self._bucket(bucket).pop(check_key(key), None)
        self._tags.pop((bucket, key), None)

    async def exists(self, bucket, key):
        return check_key(key) in self._bucket(bucket)

    async def list_sizes(self, bucket, prefix):
        items = self._bucket(bucket)
        for key in sorted(items):
            if key.startswith(prefix):
                yield key, len(items[key])

    async def list_dirs(self, bucket, prefix, after=""):
        seen = set()
        for key in sorted(self._bucket(bucket)):
            if key.startswith(prefix) and "/" in key[len(prefix):]:
                seen.add(prefix + key[len(prefix):].split("/", 1)[0] + "/")
        # by name, as POSIX lists them ('a/' before 'a-b/'): callers page with name markers
        for d in sorted(seen, key=lambda d: d[:-1]):
            if d[len(prefix):-1] > after:
                yield d
