"""POSIX storage: bucket B is the folder ROOT_DIR/B, key K the file ROOT_DIR/B/K.

Writes go to a temp file outside every bucket (ROOT_DIR/.h5cloud-tmp) and are
renamed into place, so readers never see half an object and nothing stray
lands under a dataset's folder (HSDS reads any file there as a chunk).
Blocking file calls run in the default thread pool. A full disk (ENOSPC, EDQUOT)
is InsufficientStorage (507) and leaves nothing behind (the temp file is removed,
the object keeps its old bytes); an I/O error or a read-only file system is
Unavailable (503).
"""
import asyncio
import contextlib
import errno
import fcntl
import itertools
import logging
import mmap
import os
import time
import uuid
from pathlib import Path

from ..core.errors import InsufficientStorage, NotFound, PreconditionFailed, Unavailable
from .base import Store, check_bucket, check_key

TMP_DIR = ".h5cloud-tmp"
_UMASK = os.umask(0o022)
os.umask(_UMASK)
_FILE_MODE = 0o666 & ~_UMASK
_WRITE_ATTEMPTS = 20
_PREFIX = f"{uuid.uuid4().hex[:12]}-"     # temp names: this process's, never another's
_names = itertools.count()
_FULL = {errno.ENOSPC, errno.EDQUOT}
_DOWN = {errno.EIO, errno.EROFS, errno.ETIMEDOUT, errno.ESTALE, errno.EAGAIN, errno.EBUSY,
         errno.ENOMEM, errno.EMFILE, errno.ENFILE}
log = logging.getLogger("h5cloud.storage")


class PosixStore(Store):
    def __init__(self, root_dir: str):
        self.root = Path(root_dir).resolve()
        if not self.root.is_dir():
            raise ValueError(f"ROOT_DIR is not a folder: {root_dir}")
        self.tmp = self.root / TMP_DIR
        self.tmp.mkdir(exist_ok=True)
        self._sweep_tmp()

    def _sweep_tmp(self, age_s: float = 3600.0):
        """Remove temp files a killed process left (an hour old: other nodes share the
        folder and may be writing theirs now)."""
        cutoff = time.time() - age_s
        for path in self.tmp.iterdir():
            try:
                if path.name != ".cas-lock" and path.stat().st_mtime < cutoff:
                    path.unlink()
            except OSError:
                pass

    def _bucket_dir(self, bucket: str) -> Path:
        path = self.root / check_bucket(bucket)
        if not path.is_dir():
            raise NotFound(f"bucket not found: {bucket}")
        return path

    def _path(self, bucket: str, key: str) -> Path:
        return self._bucket_dir(bucket) / check_key(key)

    @staticmethod
    async def _run(fn, *args):
        try:
            return await asyncio.get_running_loop().run_in_executor(None, fn, *args)
        except OSError as e:
            if e.errno in _FULL:
                log.info("storage full: %s", e)
                raise InsufficientStorage(f"storage is full: {e.strerror}") from None
            if e.errno in _DOWN:
                log.info("storage unavailable: %s", e)
                raise Unavailable(f"storage unavailable: {e.strerror}") from None
            raise

    async def get(self, bucket, key):
        path = self._path(bucket, key)
        data = await self._run(_read, path)
        if data is None or (not data and key.endswith(".json")):
            raise NotFound(f"key not found: {key}")
        return data

    async def get_range(self, bucket, key, offset, length):
        data = await self._run(_read, self._path(bucket, key), offset, length)
        if data is None:
            raise NotFound(f"key not found: {key}")
        return data

    async def run_mapped(self, bucket, keys, use):
        """use(i, view) for each of keys, in one worker thread, view a read-only memory
        map of the object (None when it is missing): a few elements of a big object
        cost a few page faults, not a read of all of it. use must keep no reference to
        view (it is unmapped when the last one goes)."""
        bucket_dir = self._bucket_dir(bucket)
        paths = [bucket_dir / check_key(k) for k in keys]

        def run():
            for i, path in enumerate(paths):
                use(i, _map(path))

        await self._run(run)

    async def put(self, bucket, key, data):
        await self._run(self._write, self._path(bucket, key), data)

    async def get_tagged(self, bucket, key):
        path = self._path(bucket, key)
        data, tag = await self._run(_read_tagged, path)
        if data is None:
            raise NotFound(f"key not found: {key}")
        return data, tag

    async def put_if(self, bucket, key, data, tag):
        path = self._path(bucket, key)

        def swap(path, expected):
            # one lock for the whole root, held only to compare and rename (processes
            # and threads alike: flock locks belong to each open of the file)
            with open(self.tmp / ".cas-lock", "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                if _tag_of(path) != expected:
                    raise PreconditionFailed(f"{key} changed since it was read")
                self._write(path, data)
                return _tag_of(path)

        return await self._run(swap, path, tag)

    def _write(self, path: Path, data):
        # a name of our own (no mkstemp: its random names and its chmod cost a third of
        # a DN's flush), made at the objects' final mode
        tmp = self.tmp / f"{_PREFIX}{next(_names)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, _FILE_MODE)
        try:
            try:
                view = memoryview(data).cast("B")
                while view:
                    view = view[os.write(fd, view):]
            finally:
                os.close(fd)
            # the folder is made when missing; a concurrent delete of its last file
            # removes it (_remove): make it again and retry rather than fail the write
            for attempt in range(_WRITE_ATTEMPTS):
                try:
                    os.replace(tmp, path)
                    return
                except FileNotFoundError:
                    if attempt == _WRITE_ATTEMPTS - 1:
                        raise
                    path.parent.mkdir(parents=True, exist_ok=True)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    async def delete(self, bucket, key):
        await self._run(_remove, self._path(bucket, key), self._bucket_dir(bucket))

    async def exists(self, bucket, key):
        path = self._path(bucket, key)
        return await self._run(path.is_file)

    async def list_sizes(self, bucket, prefix):
        base = self._bucket_dir(bucket)
        for item in await self._run(_walk, base, prefix):
            yield item

    async def list_dirs(self, bucket, prefix, after=""):
        base = self._bucket_dir(bucket)
        folder = base / prefix if prefix else base
        names = await self._run(_subdirs, folder, after)
        for name in names:
            yield f"{prefix}{name}/"


def _read(path: Path, offset: int = 0, length: int = -1):
    try:
        with open(path, "rb") as f:
            if offset:
                f.seek(offset)
            return f.read(length)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None


def _map(path: Path):
    try:
        fd = os.open(path, os.O_RDONLY)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None
    try:
        if os.fstat(fd).st_size == 0:
            return b""
        return mmap.mmap(fd, 0, prot=mmap.PROT_READ)
    finally:
        os.close(fd)


def _tag_of(path: Path) -> str | None:
    """Every write renames a new file into place: inode, time and size tell them apart."""
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return f"{st.st_ino:x}-{st.st_mtime_ns:x}-{st.st_size:x}"


def _read_tagged(path: Path):
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            return f.read(), f"{st.st_ino:x}-{st.st_mtime_ns:x}-{st.st_size:x}"
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None, None


def _remove(path: Path, bucket_dir: Path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        return
    # like HSDS: drop the folder it leaves empty, one level only
    if path.parent != bucket_dir:
        try:
            os.rmdir(path.parent)
        except OSError:
            pass


def _subdirs(folder: Path, after: str = ""):
    try:
        return sorted(e.name for e in os.scandir(folder) if e.name > after and e.is_dir())
    except (FileNotFoundError, NotADirectoryError):
        return []


def _walk(base: Path, prefix: str):
    """(key, size) under prefix: start at the deepest folder the prefix names,
    then filter by the full prefix."""
    start = base / prefix.rsplit("/", 1)[0] if "/" in prefix else base
    items = []
    stack = [start]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for e in entries:
            if e.is_dir(follow_symlinks=False):
                stack.append(e.path)
                continue
            key = os.path.relpath(e.path, base).replace(os.sep, "/")
            if key.startswith(prefix):
                try:
                    items.append((key, e.stat().st_size))
                except FileNotFoundError:     # deleted while we looked
                    pass
    return sorted(items)
