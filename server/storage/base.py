"""The one storage interface every layer above talks to.

A Store holds buckets of keys -> bytes (STORAGE.md §1). Keys are '/'-separated,
never start with '/', and are the same strings on every backend. Missing keys
and buckets raise core.errors.NotFound.
"""
import abc
import re
from typing import AsyncIterator

from ..core.errors import BadRequest

_BUCKET_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def check_bucket(bucket: str) -> str:
    if not bucket or not _BUCKET_RE.match(bucket) or bucket in (".", ".."):
        raise BadRequest(f"invalid bucket name: {bucket!r}")
    return bucket


def check_key(key: str) -> str:
    if not key or key[0] in "/\\" or ".." in key.split("/"):
        raise BadRequest(f"invalid storage key: {key!r}")
    return key


class Store(abc.ABC):
    """Async key/value storage over buckets."""

    @abc.abstractmethod
    async def get(self, bucket: str, key: str) -> bytes:
        """The whole object; NotFound if absent."""

    @abc.abstractmethod
    async def get_range(self, bucket: str, key: str, offset: int, length: int) -> bytes:
        """length bytes from offset (fewer at the end of the object)."""

    @abc.abstractmethod
    async def put(self, bucket: str, key: str, data: bytes) -> None:
        """Replace the object atomically (readers see old or new, never half)."""

    @abc.abstractmethod
    async def delete(self, bucket: str, key: str) -> None:
        """Remove the object; absent is not an error."""

    @abc.abstractmethod
    async def exists(self, bucket: str, key: str) -> bool:
        ...

    # conditional writes: many writers with no DN in between (lambda_app) change an
    # object only if nobody else did since they read it
    @abc.abstractmethod
    async def get_tagged(self, bucket: str, key: str) -> tuple[bytes, str]:
        """The object and a tag that changes with every write of it (S3: its ETag)."""

    @abc.abstractmethod
    async def put_if(self, bucket: str, key: str, data: bytes, tag: str | None) -> str:
        """Write only if the object is still at tag (None: only if it does not exist),
        else PreconditionFailed; returns the new tag."""

    @abc.abstractmethod
    def list_sizes(self, bucket: str, prefix: str) -> AsyncIterator[tuple]:
        """(key, size in bytes) of every key under prefix, recursively, in key order."""

    async def list_keys(self, bucket: str, prefix: str) -> AsyncIterator[str]:
        """Every key under prefix, recursively, in key order."""
        async for key, _ in self.list_sizes(bucket, prefix):
            yield key

    @abc.abstractmethod
    def list_dirs(self, bucket: str, prefix: str, after: str = "") -> AsyncIterator[str]:
        """The 'sub-folders' directly under prefix, each as '<prefix><name>/', sorted by
        name ('a/' before 'a-b/', whatever the backend's own order); with after, only
        names greater than it (a page's marker: the folders before it are not listed)."""

    async def close(self) -> None:
        pass
