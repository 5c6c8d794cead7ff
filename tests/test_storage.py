"""One contract for every Store (memory, POSIX, S3 on moto), plus POSIX specifics.

Memory and POSIX tests build a fresh store inside one asyncio.run and close it at
the end. An aiobotocore client belongs to the loop that made it and is slow to make,
so the S3 tests share one S3Store on one event loop kept in a background thread for
the module (each test still gets its own bucket).
"""
import asyncio
import shutil
import threading
import uuid
from pathlib import Path

import pytest

from server.core.errors import BadRequest, HttpError, NotFound, PreconditionFailed
from server.storage import open_store
from server.storage.base import Store
from server.storage.memory import MemoryStore
from server.storage.posix import TMP_DIR, PosixStore
from server.storage.s3 import S3Store

from conftest import make_bucket

BACKENDS = ["memory", "posix", "s3"]


_S3_CLIENTS = {}


def _create_bucket(endpoint: str, name: str):
    """make_bucket, reusing its boto3 client after the first bucket (clients are slow to make)."""
    client = _S3_CLIENTS.get(endpoint)
    if client is None:
        _S3_CLIENTS[endpoint] = make_bucket(endpoint, name)
    else:
        client.create_bucket(Bucket=name)


class LoopThread:
    """One event loop running in a daemon thread; run() waits for a coroutine on it."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro, timeout=60):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def shared_s3(moto_endpoint):
    """(loop, store) shared by this module's S3 tests."""
    runner = LoopThread()
    store = S3Store(moto_endpoint, "us-east-1", "testing", "testing")
    yield runner, store
    runner.run(store.close())
    runner.stop()


class Backend:
    """A fresh bucket for one test, and a way to run async bodies against its store."""

    def __init__(self, kind: str, tmp_path: Path, request):
        self.kind = kind
        self.bucket = f"t{uuid.uuid4().hex[:12]}"
        self.missing = f"missing{uuid.uuid4().hex[:12]}"
        self.root = None
        self.shared = None
        if kind == "posix":
            self.root = tmp_path / "root"
            (self.root / self.bucket).mkdir(parents=True)
            self.make = lambda: PosixStore(str(self.root))
        elif kind == "memory":
            self.make = lambda: MemoryStore(buckets=(self.bucket,))
        else:
            _create_bucket(request.getfixturevalue("moto_endpoint"), self.bucket)
            self.shared = request.getfixturevalue("shared_s3")

    def run(self, body):
        """body(store, bucket) to completion: a fresh store closed afterwards (memory,
        POSIX) or the module's S3 store on its loop."""
        if self.shared:
            runner, store = self.shared
            return runner.run(body(store, self.bucket))

        async def main():
            store = self.make()
            try:
                return await body(store, self.bucket)
            finally:
                await store.close()
        return asyncio.run(main())


@pytest.fixture(params=BACKENDS)
def backend(request, tmp_path):
    return Backend(request.param, tmp_path, request)


async def keys_of(store, bucket, prefix=""):
    return [k async for k in store.list_keys(bucket, prefix)]


async def dirs_of(store, bucket, prefix="", after=""):
    return [d async for d in store.list_dirs(bucket, prefix, after)]


BLOB = bytes(range(256)) * 17 + b"\x00tail\xff"


# ---- contract ----------------------------------------------------------------

def test_is_a_store(backend):
    async def body(store, bucket):
        assert isinstance(store, Store)
    backend.run(body)


def test_put_get_roundtrip(backend):
    async def body(store, bucket):
        await store.put(bucket, "db/r/d/o/0_0", BLOB)
        await store.put(bucket, "db/r/.group.json", b'{"id": "g"}')
        assert await store.get(bucket, "db/r/d/o/0_0") == BLOB
        assert await store.get(bucket, "db/r/.group.json") == b'{"id": "g"}'
    backend.run(body)


def test_put_accepts_bytearray_and_memoryview(backend):
    async def body(store, bucket):
        await store.put(bucket, "a/ba", bytearray(b"abc"))
        await store.put(bucket, "a/mv", memoryview(b"xyz"))
        assert await store.get(bucket, "a/ba") == b"abc"
        assert await store.get(bucket, "a/mv") == b"xyz"
        assert isinstance(await store.get(bucket, "a/ba"), bytes)
    backend.run(body)


def test_empty_bytes_for_non_json_key(backend):
    async def body(store, bucket):
        await store.put(bucket, "db/r/d/o/1", b"")
        assert await store.exists(bucket, "db/r/d/o/1")
        assert await store.get(bucket, "db/r/d/o/1") == b""
        assert await keys_of(store, bucket, "db/") == ["db/r/d/o/1"]
    backend.run(body)


def test_overwrite(backend):
    async def body(store, bucket):
        await store.put(bucket, "k/v", BLOB)
        await store.put(bucket, "k/v", b"short")     # shorter: no tail of the old bytes
        assert await store.get(bucket, "k/v") == b"short"
        await store.put(bucket, "k/v", BLOB)
        assert await store.get(bucket, "k/v") == BLOB
        assert await keys_of(store, bucket) == ["k/v"]
    backend.run(body)


def test_get_range(backend):
    data = bytes(range(100))

    async def body(store, bucket):
        await store.put(bucket, "ref/file.h5", data)
        assert await store.get_range(bucket, "ref/file.h5", 10, 20) == data[10:30]
        assert await store.get_range(bucket, "ref/file.h5", 0, 100) == data
        assert await store.get_range(bucket, "ref/file.h5", 0, 1) == data[:1]
        assert await store.get_range(bucket, "ref/file.h5", 99, 1) == data[99:]
        # past the end: short, then empty
        assert await store.get_range(bucket, "ref/file.h5", 90, 20) == data[90:]
        assert await store.get_range(bucket, "ref/file.h5", 100, 5) == b""
        assert await store.get_range(bucket, "ref/file.h5", 500, 5) == b""
        with pytest.raises(NotFound):
            await store.get_range(bucket, "ref/missing.h5", 0, 10)
    backend.run(body)


def test_exists_and_delete(backend):
    async def body(store, bucket):
        assert not await store.exists(bucket, "x/y")
        await store.put(bucket, "x/y", b"1")
        assert await store.exists(bucket, "x/y")
        assert not await store.exists(bucket, "x")       # a "folder" is not a key
        await store.delete(bucket, "x/y")
        assert not await store.exists(bucket, "x/y")
        with pytest.raises(NotFound):
            await store.get(bucket, "x/y")
        await store.delete(bucket, "x/y")                # absent: not an error
        await store.delete(bucket, "never/was")
        assert await keys_of(store, bucket) == []
    backend.run(body)


def test_delete_leaves_siblings(backend):
    async def body(store, bucket):
        for k in ("d/o/0", "d/o/1", "d/o/.dataset.json"):
            await store.put(bucket, k, b"v")
        await store.delete(bucket, "d/o/0")
        assert await keys_of(store, bucket) == ["d/o/.dataset.json", "d/o/1"]
        assert await store.get(bucket, "d/o/1") == b"v"
    backend.run(body)


def test_not_found_missing_key(backend):
    async def body(store, bucket):
        with pytest.raises(NotFound) as e:
            await store.get(bucket, "no/such/key")
        assert isinstance(e.value, HttpError) and e.value.status == 404
        with pytest.raises(NotFound):
            await store.get(bucket, "no/such/.group.json")
    backend.run(body)


def test_not_found_missing_bucket(backend):
    async def body(store, bucket):
        missing = backend.missing
        with pytest.raises(NotFound):
            await store.get(missing, "a/b")
        with pytest.raises(NotFound):
            await store.get_range(missing, "a/b", 0, 4)
        with pytest.raises(NotFound):
            await store.put(missing, "a/b", b"x")
        with pytest.raises(NotFound):
            await keys_of(store, missing, "")
        with pytest.raises(NotFound):
            await dirs_of(store, missing, "")
    backend.run(body)


LAYOUT = [
    "top",
    "db/a/1",
    "db/a/10",
    "db/a/2",
    "db/a/1_0",
    "db/a/.dataset.json",
    "db/a/sub/3",
    "db/a-b/x",
    "db/a.json",
    "db/ab/x",
    "db/b",
    "home/.domain.json",
    "home/u/f.h5/.domain.json",
]


async def _fill(store, bucket):
    for i, k in enumerate(LAYOUT):
        await store.put(bucket, k, str(i).encode())


def test_list_keys(backend):
    async def body(store, bucket):
        await _fill(store, bucket)
        assert await keys_of(store, bucket, "") == sorted(LAYOUT)
        assert await keys_of(store, bucket, "db/a/") == [
            "db/a/.dataset.json", "db/a/1", "db/a/10", "db/a/1_0", "db/a/2", "db/a/sub/3"]
        # a prefix is a string prefix, not a folder: 'db/a' also matches 'db/ab/...'
        assert await keys_of(store, bucket, "db/a") == sorted(
            k for k in LAYOUT if k.startswith("db/a"))
        assert "db/ab/x" in await keys_of(store, bucket, "db/a")
        assert await keys_of(store, bucket, "db/ab") == ["db/ab/x"]
        assert await keys_of(store, bucket, "db/ab/") == ["db/ab/x"]
        assert await keys_of(store, bucket, "db/a/1") == ["db/a/1", "db/a/10", "db/a/1_0"]
        assert await keys_of(store, bucket, "home/") == [
            "home/.domain.json", "home/u/f.h5/.domain.json"]
        assert await keys_of(store, bucket, "nothing/") == []
        assert await keys_of(store, bucket, "db/zz") == []
    backend.run(body)


def test_list_sizes(backend):
    async def body(store, bucket):
        await _fill(store, bucket)
        got = [item async for item in store.list_sizes(bucket, "db/a/")]
        assert [k for k, _ in got] == await keys_of(store, bucket, "db/a/")
        for key, size in got:
            assert size == len(await store.get(bucket, key))
    backend.run(body)


def test_list_keys_is_sorted_across_folders(backend):
    async def body(store, bucket):
        await _fill(store, bucket)
        got = await keys_of(store, bucket, "db/")
        assert got == sorted(got)
        # '-' < '.' < '/' in byte order: folder boundaries do not change the order
        assert got.index("db/a-b/x") < got.index("db/a.json") < got.index("db/a/1")
    backend.run(body)


def test_list_dirs(backend):
    async def body(store, bucket):
        await _fill(store, bucket)
        assert await dirs_of(store, bucket, "") == ["db/", "home/"]      # not the file 'top'
        # sorted by name, the same on every backend (S3 alone would put "a-b/" first)
        assert await dirs_of(store, bucket, "db/") == ["db/a/", "db/a-b/", "db/ab/"]
        assert await dirs_of(store, bucket, "db/a/") == ["db/a/sub/"]
        assert await dirs_of(store, bucket, "db/a/sub/") == []
        assert await dirs_of(store, bucket, "home/") == ["home/u/"]
        assert await dirs_of(store, bucket, "home/u/") == ["home/u/f.h5/"]
        assert await dirs_of(store, bucket, "nothing/") == []
        # a page's marker: only names after it (by name, as the listing is ordered)
        assert await dirs_of(store, bucket, "db/", after="a") == ["db/a-b/", "db/ab/"]
        assert await dirs_of(store, bucket, "db/", after="a-b") == ["db/ab/"]
        assert await dirs_of(store, bucket, "db/", after="ab") == []
        assert await dirs_of(store, bucket, "", after="db") == ["home/"]
    backend.run(body)


def test_list_empty_bucket(backend):
    async def body(store, bucket):
        assert await keys_of(store, bucket, "") == []
        assert await dirs_of(store, bucket, "") == []
    backend.run(body)


BAD_KEYS = ["../x", "/abs", "a/../b", "..", "\\win", ""]
BAD_BUCKETS = ["..", ".", "a/b", "", "-x"]


def test_bad_keys_rejected(backend):
    async def body(store, bucket):
        for key in BAD_KEYS:
            for call in (store.get(bucket, key), store.get_range(bucket, key, 0, 1),
                         store.put(bucket, key, b"x"), store.exists(bucket, key),
                         store.delete(bucket, key)):
                with pytest.raises(BadRequest):
                    await call
        assert await keys_of(store, bucket) == []
    backend.run(body)


def test_bad_buckets_rejected(backend):
    async def body(store, bucket):
        for name in BAD_BUCKETS:
            for call in (store.get(name, "k"), store.put(name, "k", b"x")):
                with pytest.raises(BadRequest):
                    await call
    backend.run(body)


def test_concurrent_writes(backend):
    async def body(store, bucket):
        keys = [f"db/r/d/o/{i}_0" for i in range(40)]
        await asyncio.gather(*(store.put(bucket, k, k.encode() * 100) for k in keys))
        values = await asyncio.gather(*(store.get(bucket, k) for k in keys))
        assert values == [k.encode() * 100 for k in keys]
        # many writers of one key: the result is one whole value
        versions = [bytes([i]) * 5000 for i in range(20)]
        await asyncio.gather(*(store.put(bucket, "same", v) for v in versions))
        assert await store.get(bucket, "same") in versions
        assert await keys_of(store, bucket) == sorted(keys + ["same"])
    backend.run(body)


def test_unicode_keys(backend):
    async def body(store, bucket):
        key = "home/test_user1/héllo wörld ✓.h5/.domain.json"
        await store.put(bucket, key, b"{}")
        assert await store.get(bucket, key) == b"{}"
        assert await keys_of(store, bucket, "home/") == [key]
        assert await dirs_of(store, bucket, "home/test_user1/") == [
            "home/test_user1/héllo wörld ✓.h5/"]
    backend.run(body)


def test_usable_after_close(backend):
    async def body(store, bucket):
        await store.put(bucket, "a", b"1")
        await store.close()
        assert await store.get(bucket, "a") == b"1"
        await store.close()
        await store.close()
    backend.run(body)


# ---- POSIX specifics ---------------------------------------------------------

@pytest.fixture
def posix(tmp_path):
    return Backend("posix", tmp_path, None)


def _files_under(folder: Path):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_posix_layout_is_plain_files(posix):
    async def body(store, bucket):
        await store.put(bucket, "db/r/d/o/0_0", BLOB)
        assert (posix.root / bucket / "db/r/d/o/0_0").read_bytes() == BLOB
        # files written by someone else (HSDS) are read and listed as keys
        (posix.root / bucket / "home").mkdir()
        (posix.root / bucket / "home/.domain.json").write_bytes(b'{"owner": "admin"}')
        assert await store.get(bucket, "home/.domain.json") == b'{"owner": "admin"}'
        assert await keys_of(store, bucket) == ["db/r/d/o/0_0", "home/.domain.json"]
    posix.run(body)


def test_posix_no_temp_files_in_bucket(posix):
    async def body(store, bucket):
        keys = [f"db/r/d/o/{i}" for i in range(20)] + ["db/r/.group.json", "x"]
        for k in keys:
            await store.put(bucket, k, b"v" * 1000)
        for k in keys[:5]:
            await store.put(bucket, k, b"w")              # overwrites too
        await asyncio.gather(*(store.put(bucket, "db/r/d/o/0", bytes([i])) for i in range(10)))
        assert _files_under(posix.root / bucket) == sorted(keys)
        tmp = posix.root / TMP_DIR
        assert tmp.is_dir() and list(tmp.iterdir()) == []
        assert await dirs_of(store, bucket, "") == ["db/"]
    posix.run(body)


def test_posix_zero_byte_json_is_not_found(posix):
    async def body(store, bucket):
        await store.put(bucket, "db/r/.group.json", b"")
        with pytest.raises(NotFound):
            await store.get(bucket, "db/r/.group.json")
        # as HSDS leaves it mid-write: an empty file put there directly
        (posix.root / bucket / "home").mkdir()
        (posix.root / bucket / "home/.domain.json").write_bytes(b"")
        with pytest.raises(NotFound):
            await store.get(bucket, "home/.domain.json")
        # only JSON: an empty chunk is an empty chunk
        await store.put(bucket, "db/r/d/o/0", b"")
        assert await store.get(bucket, "db/r/d/o/0") == b""
    posix.run(body)


def test_posix_delete_removes_emptied_parent_one_level(posix):
    async def body(store, bucket):
        b = posix.root / bucket
        await store.put(bucket, "db/r/d/o/0_0", b"c")
        await store.put(bucket, "db/r/d/o/0_1", b"c")
        await store.delete(bucket, "db/r/d/o/0_0")
        assert (b / "db/r/d/o").is_dir()                 # not empty yet
        await store.delete(bucket, "db/r/d/o/0_1")
        assert not (b / "db/r/d/o").exists()             # emptied: removed
        assert (b / "db/r/d").is_dir()                   # one level only
        assert await dirs_of(store, bucket, "db/r/d/") == []
        # a key at the top level never takes the bucket folder with it
        await store.put(bucket, "lonely", b"x")
        for child in list(b.iterdir()):
            if child.name != "lonely":
                shutil.rmtree(child)
        await store.delete(bucket, "lonely")
        assert b.is_dir() and list(b.iterdir()) == []
    posix.run(body)


def test_posix_put_survives_concurrent_delete_of_folder(posix):
    """Deleting a folder's last file removes the folder; a put racing into that
    folder must still land (it failed with FileNotFoundError ~10% of the time)."""
    async def body(store, bucket):
        for i in range(150):
            await store.put(bucket, "db/r/d/o/a", b"x")
            await asyncio.gather(store.delete(bucket, "db/r/d/o/a"),
                                 store.put(bucket, "db/r/d/o/b", b"y" * 50000))
            assert await store.get(bucket, "db/r/d/o/b") == b"y" * 50000, i
            await store.delete(bucket, "db/r/d/o/b")
        assert list((posix.root / TMP_DIR).iterdir()) == []
    posix.run(body)


def test_posix_bucket_is_never_created(posix):
    async def body(store, bucket):
        with pytest.raises(NotFound):
            await store.put(posix.missing, "a/b", b"x")
        assert not (posix.root / posix.missing).exists()
    posix.run(body)


def test_posix_list_dirs_skips_files_and_tmp(posix):
    async def body(store, bucket):
        await store.put(bucket, "a/f", b"1")
        await store.put(bucket, "f", b"1")
        assert await dirs_of(store, bucket, "") == ["a/"]
    posix.run(body)


# ---- conditional writes (lambda_app: many writers, no DN between them) ---------

def test_conditional_create_and_replace(backend):
    async def body(store, bucket):
        tag = await store.put_if(bucket, "c/doc.json", b'{"v": 1}', None)
        with pytest.raises(PreconditionFailed):          # exists already
            await store.put_if(bucket, "c/doc.json", b'{"v": 9}', None)
        data, seen = await store.get_tagged(bucket, "c/doc.json")
        assert data == b'{"v": 1}' and seen == tag
        new = await store.put_if(bucket, "c/doc.json", b'{"v": 2}', seen)
        assert new != seen
        with pytest.raises(PreconditionFailed):          # stale tag
            await store.put_if(bucket, "c/doc.json", b'{"v": 3}', seen)
        await store.put(bucket, "c/doc.json", b'{"v": 4}')   # a blind write moves the tag
        with pytest.raises(PreconditionFailed):
            await store.put_if(bucket, "c/doc.json", b'{"v": 5}', new)
        assert await store.get(bucket, "c/doc.json") == b'{"v": 4}'
        with pytest.raises(NotFound):
            await store.get_tagged(bucket, "c/none.json")
    backend.run(body)


def test_conditional_increments_never_lose_one(backend):
    """Eight read-modify-write loops at once on one key: every increment lands."""
    async def body(store, bucket):
        await store.put(bucket, "c/n", b"0")

        async def bump():
            while True:
                data, tag = await store.get_tagged(bucket, "c/n")
                try:
                    await store.put_if(bucket, "c/n", str(int(data) + 1).encode(), tag)
                    return
                except PreconditionFailed:
                    await asyncio.sleep(0)

        await asyncio.gather(*(bump() for _ in range(8)))
        assert await store.get(bucket, "c/n") == b"8"
    backend.run(body)


def test_posix_root_must_exist(tmp_path):
    with pytest.raises(ValueError):
        PosixStore(str(tmp_path / "nope"))


# ---- factory and S3 specifics ------------------------------------------------

def test_open_store_picks_backend(tmp_path):
    from server.config import Settings
    assert isinstance(open_store(Settings(root_dir=str(tmp_path))), PosixStore)
    assert isinstance(open_store(Settings(aws_s3_gateway="http://127.0.0.1:1")), S3Store)


def test_s3_bucket_uri_prefix_is_stripped(moto_endpoint):
    bucket = f"t{uuid.uuid4().hex[:12]}"
    _create_bucket(moto_endpoint, bucket)

    async def main():
        store = S3Store(moto_endpoint, "us-east-1", "testing", "testing")
        try:
            await store.put(f"s3://{bucket}", "a/b", b"hello")
            assert await store.get(bucket, "a/b") == b"hello"
            assert await store.get(f"s3://{bucket}", "a/b") == b"hello"
        finally:
            await store.close()
    asyncio.run(main())


def test_memory_buckets_are_separate():
    async def main():
        store = MemoryStore(buckets=("one", "two"))
        await store.put("one", "k", b"1")
        assert not await store.exists("two", "k")
        assert await keys_of(store, "one") == ["k"]
    asyncio.run(main())



def test_object_getter_addresses_and_checks_bodies():
    """The raw GET path (core/s3rest.py, used by s3get.py and chunk_read): path style
    through a gateway, virtual-hosted on AWS (path style for dotted buckets), keys quoted
    once; a body whose CRC32 differs from S3's whole-object checksum is refused; S3's
    error code read from its body; 'not now' told from refusals."""
    import base64
    import zlib

    from server.core import s3rest
    url = s3rest.object_url
    assert url("http://127.0.0.1:9000/", "eu-west-1", "bkt", "db/x y+z") == \
        "http://127.0.0.1:9000/bkt/db/x%20y%2Bz"
    assert url("", "eu-west-1", "bkt", "a/b") == "https://bkt.s3.eu-west-1.amazonaws.com/a/b"
    assert url("", "eu-west-1", "my.bkt", "a/b") == \
        "https://s3.eu-west-1.amazonaws.com/my.bkt/a/b"
    body = b"chunk bytes" * 100
    good = base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode()
    assert s3rest.crc_ok({"x-amz-checksum-crc32": good}, body)
    assert s3rest.crc_ok({}, body)                 # no checksum stored: nothing to check
    assert not s3rest.crc_ok({"x-amz-checksum-crc32": good}, body[:-1] + b"!")
    # a multipart object's checksum of checksums is not the body's CRC32
    assert s3rest.crc_ok({"x-amz-checksum-crc32": "AAAAAA==-3",
                          "x-amz-checksum-type": "COMPOSITE"}, body)
    slow = b"<Error><Code>SlowDown</Code><Message>Please</Message></Error>"
    assert s3rest.error_code(503, slow) == "SlowDown" and s3rest.error_code(502, b"") == "502"
    assert s3rest.try_again(403, "SlowDown") and s3rest.try_again(500, "InternalError")
    assert not s3rest.try_again(403, "AccessDenied") and not s3rest.try_again(404, "404")
