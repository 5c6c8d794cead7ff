"""Storage faults on real SN + DN processes: S3 (moto) behind a fault-injecting proxy
(tests/s3_faults.py), and POSIX on a tiny tmpfs that fills up.

What is proven: transient S3 errors, resets, cut-short and corrupted bodies are retried
and the data read or written is exact; a slow S3 gives 503 (bounded by the timeouts),
then the data once it answers again; while S3 is down every request that needs it gets
503 with Retry-After and a JSON error (never 500, never a wrong 404, never a value it
does not have), acknowledged writes stay in the DNs and reach S3 on their own once it
is back, flush answers 503 until then, and a create or delete refused during the
outage succeeds when retried; a damaged stored chunk is 502, never values; a full disk
is 507, leaves no temp file and no half object, and writing resumes when space returns.
Short timeouts (settings below); every fault is chosen by rule, not by chance.
"""
import json
import os
import re
import subprocess
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import requests

import test_dataset_values
from conftest import cluster_env, make_bucket, make_home, start_cluster
from s3_faults import FaultProxy
from server.core.ids import chunk_id, chunk_key, dataset_prefix, domain_key

U1 = ("test_user1", "test")
BIN = {"Content-Type": "application/octet-stream"}
ACC = {"Accept": "application/octet-stream"}
F32 = "H5T_IEEE_F32LE"
CHUNK = 4096                     # elements per chunk (16 KiB of f4)
# two attempts per S3 call (one retry), 2 s timeouts: a test machine under load still
# answers in time, and a storage that stays down costs a few seconds per request
FAST = dict(S3_MAX_ATTEMPTS=2, S3_CONNECT_TIMEOUT=2, S3_READ_TIMEOUT=2, STORAGE_TIMEOUT=30,
            FLUSH_TIMEOUT=5, S3_SYNC_INTERVAL=0.2, S3_AGE_TIME=0.3, MIN_CHUNK_SIZE="4k")
WAIT = 30                        # seconds a poll may take before the test gives up


class Domain(test_dataset_values.Domain):
    """The value tests' domain helper; this one may name an existing domain."""

    def __init__(self, endpoint, path=None, create=True):
        self.endpoint = endpoint
        self.path = path or f"/home/test_user1/f{uuid.uuid4().hex[:10]}.h5"
        if create:
            self.root = self.ok("PUT", "/", 201)["root"]

    def dataset(self, n, **cpl):
        body = {"type": F32, "shape": [n],
                "creationProperties": {"layout": {"class": "H5D_CHUNKED", "dims": [CHUNK]},
                                       **cpl}}
        did = self.ok("POST", "/datasets", 201, json=body)["id"]
        layout = self.ok("GET", f"/datasets/{did}")["layout"]
        assert layout["dims"] == [CHUNK], layout       # chunk keys below are computed
        return did

    def put_values(self, did, arr):
        self.ok("PUT", f"/datasets/{did}/value", data=arr.astype("<f4").tobytes(), headers=BIN)

    def get_values(self, did):
        return np.frombuffer(self.ok("GET", f"/datasets/{did}/value", headers=ACC), "<f4")

    def flush(self, status=204):
        return self.req("PUT", "/", params={"flush": 1}) if status is None else \
            self.ok("PUT", "/", status, params={"flush": 1})


def unavailable(rsp):
    """A 503 as the issue wants it: Retry-After and a JSON error body."""
    assert rsp.status_code == 503, (rsp.status_code, rsp.text[:300])
    assert int(rsp.headers["Retry-After"]) > 0
    body = rsp.json()
    assert body["status"] == 503 and body["error"]
    return body


def key_pattern(key: str) -> str:
    return re.escape(key) + r"(\?|$)"


def values(seed, n):
    return np.random.default_rng(seed).standard_normal(n).astype("<f4")


# ---- S3 behind the proxy --------------------------------------------------------

@pytest.fixture(scope="module")
def s3(tmp_path_factory, moto_endpoint):
    """SN + 2 DNs whose S3 is moto behind the fault proxy; `direct` talks to moto itself."""
    tmp = tmp_path_factory.mktemp("faults-s3")
    proxy = FaultProxy(moto_endpoint, seed=13).start()
    bucket = f"f{uuid.uuid4().hex[:12]}"
    # moto's first object GET loads its IAM policies (seconds): not in a DN's read timeout
    direct = make_bucket(moto_endpoint, bucket)
    with pytest.raises(direct.exceptions.NoSuchKey):
        direct.get_object(Bucket=bucket, Key="warm-up")
    env = cluster_env(tmp, "s3", moto_endpoint, bucket=bucket, AWS_S3_GATEWAY=proxy.url, **FAST)
    cluster = start_cluster(tmp, env)
    try:
        make_home(cluster.endpoint)
        cluster.proxy = proxy
        cluster.bucket = bucket
        cluster.direct = direct
        yield cluster
    finally:
        proxy.clear()
        cluster.stop()
        proxy.stop()


@pytest.fixture
def proxy(s3):
    s3.proxy.clear()
    s3.proxy.reset_stats()
    yield s3.proxy
    s3.proxy.clear()


def store_chunks(s3, did, data):
    """Write a dataset's chunks straight into moto (uncompressed f4), so no DN has them
    cached: the next read goes to S3 through the proxy."""
    for i in range(len(data) // CHUNK):
        s3.direct.put_object(Bucket=s3.bucket, Key=chunk_key(chunk_id(did, (i,))),
                             Body=data[i * CHUNK:(i + 1) * CHUNK].tobytes())


def stored_chunk(s3, did, i):
    try:
        obj = s3.direct.get_object(Bucket=s3.bucket, Key=chunk_key(chunk_id(did, (i,))))
    except s3.direct.exceptions.NoSuchKey:
        return None
    return np.frombuffer(obj["Body"].read(), "<f4")


def test_s3_store_never_returns_a_partial_or_corrupt_body(s3, proxy):
    """The store itself: a body cut short or corrupted is retried; if it stays so, the
    answer is Unavailable (503), never the bytes that came; listings are retried per page."""
    import asyncio

    from server.core.errors import Unavailable
    from server.storage.s3 import S3Store

    data = os.urandom(100_000)
    s3.direct.put_object(Bucket=s3.bucket, Key="raw/obj", Body=data)

    async def run():
        store = S3Store(s3.proxy.url, "us-east-1", "testing", "testing", connect_timeout=2,
                        read_timeout=2, max_attempts=2, op_timeout=30)
        try:
            for fault in ("truncate", "corrupt"):
                proxy.clear()
                proxy.inject(fault, methods="GET", match=key_pattern("raw/obj"), times=1)
                assert await store.get(s3.bucket, "raw/obj") == data
                proxy.clear()
                proxy.inject(fault, methods="GET", match=key_pattern("raw/obj"))
                with pytest.raises(Unavailable):
                    await store.get(s3.bucket, "raw/obj")
            proxy.clear()
            proxy.inject("truncate", methods="GET", match=r"list-type=2", times=1)
            assert [k async for k in store.list_keys(s3.bucket, "raw/")] == ["raw/obj"]
            assert proxy.stats["truncate"] == 4 and proxy.stats["corrupt"] == 3
        finally:
            await store.close()

    asyncio.run(run())


def test_transient_read_faults_are_retried(s3, proxy):
    dom = Domain(s3.endpoint)
    data = values(1, 4 * CHUNK)
    did = dom.dataset(len(data))
    store_chunks(s3, did, data)
    # each chunk's GET fails once, each in its own way, then goes through
    faults = ["slowdown", "reset", "truncate", "corrupt"]
    for i, fault in enumerate(faults):
        proxy.inject(fault, methods="GET", match=key_pattern(chunk_key(chunk_id(did, (i,)))),
                     times=1)
    assert np.array_equal(dom.get_values(did), data)
    assert {f: proxy.stats[f] for f in faults} == dict.fromkeys(faults, 1)


def test_transient_write_faults_are_retried(s3, proxy):
    dom = Domain(s3.endpoint)
    data = values(2, 3 * CHUNK)
    did = dom.dataset(len(data))
    # each chunk's write-back fails once, each in its own way, then goes through
    faults = ["internal", "reset", "slowdown"]
    for i, fault in enumerate(faults):
        proxy.inject(fault, methods="PUT", match=key_pattern(chunk_key(chunk_id(did, (i,)))),
                     times=1)
    dom.put_values(did, data)
    dom.flush()
    assert {f: proxy.stats[f] for f in faults} == dict.fromkeys(faults, 1)
    for i in range(3):
        assert np.array_equal(stored_chunk(s3, did, i), data[i * CHUNK:(i + 1) * CHUNK])


def test_slow_s3_is_503_then_the_data(s3, proxy):
    dom = Domain(s3.endpoint)
    data = values(3, CHUNK)        # one chunk: its failed load is over when the 503 comes
    did = dom.dataset(len(data))
    store_chunks(s3, did, data)
    # every GET of its chunk waits longer than the DNs' read timeout
    proxy.inject("pass", methods="GET", match=re.escape(dataset_prefix(did)), delay=4)
    unavailable(dom.req("GET", f"/datasets/{did}/value", headers=ACC))
    proxy.clear()
    assert np.array_equal(dom.get_values(did), data)


def test_s3_down_503_writes_kept_and_written_back(s3, proxy):
    dom = Domain(s3.endpoint)
    data = values(4, 2 * CHUNK)
    did = dom.dataset(len(data))
    group = dom.ok("POST", "/groups", 201)["id"]
    dom.flush()
    proxy.inject("slowdown")                     # S3 answers nothing but SlowDown

    # whole chunks need nothing from S3: acknowledged, held dirty in the DNs
    dom.put_values(did, data)
    assert np.array_equal(dom.get_values(did), data)
    # what needs S3 is 503 + Retry-After + JSON: a flush, a domain not cached (not a 404),
    # a folder listing (the SN's own storage call), a create, a delete
    assert "not yet stored" in unavailable(dom.flush(status=None))["error"]
    unavailable(Domain(s3.endpoint, create=False).req("GET", "/"))
    unavailable(requests.get(s3.endpoint + "/domains", params={"domain": "/home/test_user1/"},
                             auth=U1, timeout=60))
    late = Domain(s3.endpoint, create=False)
    unavailable(late.req("PUT", "/"))
    unavailable(dom.req("DELETE", f"/groups/{group}"))
    assert stored_chunk(s3, did, 0) is None and stored_chunk(s3, did, 1) is None
    assert proxy.stats["slowdown"] > 0

    proxy.clear()                                # S3 is back
    # the DNs resume writing back on their own (no flush asked for)
    deadline = time.time() + WAIT
    while time.time() < deadline and (stored_chunk(s3, did, 0) is None
                                      or stored_chunk(s3, did, 1) is None):
        time.sleep(0.2)
    for i in range(2):
        assert np.array_equal(stored_chunk(s3, did, i), data[i * CHUNK:(i + 1) * CHUNK])
    dom.flush()
    assert np.array_equal(dom.get_values(did), data)
    # the refused create and delete were not half done: retried, they succeed
    late.ok("PUT", "/", 201)
    late.ok("GET", "/")
    dom.ok("DELETE", f"/groups/{group}")
    assert dom.req("GET", f"/groups/{group}").status_code == 410


def test_damaged_stored_chunk_is_502_not_values(s3, proxy):
    dom = Domain(s3.endpoint)
    data = values(5, 2 * CHUNK)
    did = dom.dataset(len(data))
    store_chunks(s3, did, data)
    key = chunk_key(chunk_id(did, (1,)))
    s3.direct.put_object(Bucket=s3.bucket, Key=key, Body=data[CHUNK:CHUNK + CHUNK // 2].tobytes())
    rsp = dom.req("GET", f"/datasets/{did}/value", headers=ACC)
    assert rsp.status_code == 502, (rsp.status_code, rsp.text[:300])
    body = rsp.json()
    assert body["status"] == 502 and "damaged" in body["error"]
    # the sound chunk still reads; a compressed chunk that does not decode is 502 too
    assert np.array_equal(np.frombuffer(dom.ok("GET", f"/datasets/{did}/value", headers=ACC,
                                               params={"select": f"[0:{CHUNK}]"}), "<f4"),
                          data[:CHUNK])
    gz = dom.dataset(CHUNK, filters=[{"class": "H5Z_FILTER_DEFLATE", "id": 1, "level": 5}])
    s3.direct.put_object(Bucket=s3.bucket, Key=chunk_key(chunk_id(gz, (0,))),
                         Body=b"\x78\x9c" + bytes(range(200)))
    rsp = dom.req("GET", f"/datasets/{gz}/value", headers=ACC)
    assert rsp.status_code == 502 and rsp.json()["status"] == 502, rsp.text[:300]


# ---- POSIX on a disk that fills up ------------------------------------------------

@pytest.fixture
def tiny_disk(tmp_path):
    root = tmp_path / "fs"
    root.mkdir()
    try:
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(root)],
                              capture_output=True, text=True, timeout=30)
        failed = proc.stderr.strip() if proc.returncode else ""
    except (OSError, subprocess.TimeoutExpired) as e:
        failed = str(e)
    if failed:
        reason = f"cannot mount a tmpfs (root and mount(8) needed): {failed}"
        print(reason)
        pytest.skip(reason)
    try:
        yield root
    finally:
        subprocess.run(["umount", "-l", str(root)], capture_output=True)


def fill(root: Path) -> Path:
    """Take every free block of the file system (the rest of the test frees it)."""
    filler = root / "filler"
    with open(filler, "wb", buffering=0) as f:
        for size in (65536, 4096, 512, 1):
            try:
                while True:
                    f.write(b"\0" * size)
            except OSError:
                pass
    return filler


def test_posix_store_full_disk_is_507_and_leaves_nothing(tiny_disk):
    import asyncio

    from server.core.errors import InsufficientStorage
    from server.storage.posix import TMP_DIR, PosixStore

    (tiny_disk / "b").mkdir()
    store = PosixStore(str(tiny_disk))

    async def run():
        await store.put("b", "x/obj", b"old")
        filler = fill(tiny_disk)
        with pytest.raises(InsufficientStorage):
            await store.put("b", "x/obj", os.urandom(256 * 1024))
        with pytest.raises(InsufficientStorage):
            await store.put("b", "y/new", os.urandom(256 * 1024))
        assert os.listdir(tiny_disk / TMP_DIR) == []
        assert await store.get("b", "x/obj") == b"old"       # the object as it was
        assert not await store.exists("b", "y/new")
        filler.unlink()
        await store.put("b", "y/new", b"new")
        assert await store.get("b", "y/new") == b"new"

    asyncio.run(run())


def test_posix_full_disk_507_then_writes_resume(tiny_disk, tmp_path):
    from server.storage.posix import TMP_DIR
    bucket = "hsdstest"
    env = cluster_env(tmp_path, "posix", root_dir=tiny_disk, bucket=bucket,
                      FLUSH_TIMEOUT=5, S3_SYNC_INTERVAL=0.2, S3_AGE_TIME=0.3,
                      MIN_CHUNK_SIZE="4k")
    cluster = start_cluster(tmp_path, env)
    try:
        make_home(cluster.endpoint)
        dom = Domain(cluster.endpoint)
        data = values(6, 4 * CHUNK)
        did = dom.dataset(len(data))
        dom.flush()
        folder = tiny_disk / bucket / dataset_prefix(did)

        def chunk_file(i):
            path = folder / str(i)
            return np.fromfile(path, "<f4") if path.is_file() else None

        filler = fill(tiny_disk)
        dom.put_values(did, data)                       # acknowledged: held by the DNs
        rsp = dom.flush(status=None)
        assert rsp.status_code == 507, (rsp.status_code, rsp.text[:300])
        assert rsp.json()["status"] == 507 and "full" in rsp.json()["error"]
        late = Domain(cluster.endpoint, create=False)
        rsp = late.req("PUT", "/")
        assert rsp.status_code == 507 and rsp.json()["status"] == 507, rsp.text[:300]
        # nothing half written: no temp file, no chunk, no domain document
        assert [n for n in os.listdir(tiny_disk / TMP_DIR) if n != ".cas-lock"] == []
        assert all(chunk_file(i) is None for i in range(4))
        assert not (tiny_disk / bucket / domain_key(late.path)).exists()
        assert np.array_equal(dom.get_values(did), data)   # served from the DNs' caches

        filler.unlink()                                 # space again: the DNs resume
        deadline = time.time() + WAIT
        while time.time() < deadline and any(chunk_file(i) is None for i in range(4)):
            time.sleep(0.2)
        for i in range(4):
            assert np.array_equal(chunk_file(i), data[i * CHUNK:(i + 1) * CHUNK])
        dom.flush()
        late.ok("PUT", "/", 201)
        assert json.loads((tiny_disk / bucket / domain_key(late.path)).read_text())["root"]
        assert [n for n in os.listdir(tiny_disk / TMP_DIR) if n != ".cas-lock"] == []
    finally:
        cluster.stop()
