"""In-process storage for unit tests (not shared between processes)."""
from ..core.errors import NotFound
from .base import Store, check_bucket, check_key


class MemoryStore(Store):
    def __init__(self, buckets=("hsdstest",)):
        self._buckets: dict[str, dict[str, bytes]] = {b: {} for b in buckets}

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

    async def delete(self, bucket, key):
        self._bucket(bucket).pop(check_key(key), None)

    async def exists(self, bucket, key):
        return check_key(key) in self._bucket(bucket)

    async def list_sizes(self, bucket, prefix):
        items = self._bucket(bucket)
        for key in sorted(items):
            if key.startswith(prefix):
                yield key, len(items[key])

    async def list_dirs(self, bucket, prefix):
        seen = set()
        for key in sorted(self._bucket(bucket)):
            if key.startswith(prefix) and "/" in key[len(prefix):]:
                seen.add(prefix + key[len(prefix):].split("/", 1)[0] + "/")
        # by name, as POSIX lists them ('a/' before 'a-b/'): callers page with name markers
        for d in sorted(seen, key=lambda d: d[:-1]):
            yield d
