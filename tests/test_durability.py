"""Nothing acknowledged is lost: SIGTERM flushes every dirty object before exit."""
import json
import time
import uuid

import requests

from conftest import cluster_env, make_home, start_cluster
from server.core.ids import object_key

U1 = ("test_user1", "test")


def test_sigterm_flushes_dirty_objects_and_restart_serves_them(tmp_path):
    # write-back that would wait ten minutes: only the shutdown flush can save it
    env = cluster_env(tmp_path, "posix", S3_AGE_TIME=600, S3_SYNC_INTERVAL=600)
    cluster = start_cluster(tmp_path, env)
    make_home(cluster.endpoint)
    domain = f"/home/test_user1/d{uuid.uuid4().hex[:8]}.h5"
    rsp = requests.put(cluster.endpoint + "/", params={"domain": domain}, auth=U1, timeout=10)
    assert rsp.status_code == 201
    root = rsp.json()["root"]
    # changes that wait in the DNs' dirty sets (not written through)
    params = {"domain": domain}
    rsp = requests.put(f"{cluster.endpoint}/groups/{root}/attributes/note", params=params,
                       auth=U1, json={"type": "H5T_STD_I32LE", "value": 7}, timeout=10)
    assert rsp.status_code == 201
    rsp = requests.post(cluster.endpoint + "/groups", params=params, auth=U1, timeout=10,
                        json={"link": {"id": root, "name": "g"}})
    assert rsp.status_code == 201
    path = tmp_path / "data" / "hsdstest" / object_key(root)
    assert json.loads(path.read_text())["attributes"] == {}      # not written yet

    stopped = cluster.stop()
    assert sorted(stopped) == ["dn-001", "dn-002", "sn"]
    stored = json.loads(path.read_text())
    assert stored["attributes"]["note"]["value"] == 7 and "g" in stored["links"]

    cluster = start_cluster(tmp_path, env)
    try:
        rsp = requests.get(cluster.endpoint + "/", params={"domain": domain}, auth=U1, timeout=10)
        assert rsp.status_code == 200 and rsp.json()["root"] == root
        rsp = requests.get(f"{cluster.endpoint}/groups/{root}/attributes/note",
                           params={"domain": domain}, auth=U1, timeout=10)
        assert rsp.status_code == 200 and rsp.json()["value"] == 7
        rsp = requests.get(f"{cluster.endpoint}/groups/{root}/links/g",
                           params={"domain": domain}, auth=U1, timeout=10)
        assert rsp.status_code == 200
    finally:
        cluster.stop()


def test_sn_answers_503_until_dns_are_up(tmp_path):
    from server.launch import Cluster
    env = cluster_env(tmp_path, "posix")
    cluster = Cluster(tmp_path / "run", 2, env)
    # start the SN alone, pointing at DNs that are not running
    proc = cluster.spawn_sn()
    try:
        for _ in range(100):
            try:
                about = requests.get(cluster.endpoint + "/about", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        assert about.status_code == 200 and about.json()["state"] != "READY"
        rsp = requests.get(cluster.endpoint + "/", params={"domain": "/home"}, auth=U1, timeout=5)
        assert rsp.status_code == 503
    finally:
        cluster.stop()
        proc.wait(10)



def test_a_chunk_being_written_is_never_evicted_first():
    """A cache full of changes not yet stored: the entry a write just made, or fetched
    before an await, is what its change lands in (it once was evicted first: KeyError in
    changed(), a 500, and the rest of the batch lost)."""
    import asyncio

    import numpy as np

    from server.dn.cache import WriteBackCache
    from server.storage.memory import MemoryStore

    async def scenario():
        cache = WriteBackCache(MemoryStore(), 4000, "chunk")
        cache._drain = _never                           # keep the dirty entries in memory
        encode = bytes
        for i in range(4):                               # 4 x 1000 bytes: full of changes
            cache.insert(("b", f"k{i}"), np.zeros(1000, "u1"), encode, stored=False)
            cache.changed(("b", f"k{i}"))
        fresh = cache.insert(("b", "new"), np.ones(1000, "u1"), encode, stored=False)
        cache.changed(("b", "new"))                      # was: KeyError
        assert cache.cached(("b", "new")) is fresh and cache.is_dirty(("b", "new"))
        # fetched clean, then evicted during another chunk's load: put back, not lost
        clean = cache.insert(("b", "clean"), np.full(1000, 7, "u1"), encode)
        cache._bytes += 10 ** 6                          # pressure: the next insert evicts
        cache._evict()
        cache._bytes -= 10 ** 6
        assert cache.cached(("b", "clean")) is None
        live = cache.live(("b", "clean"), clean)
        live.value[0] = 9
        cache.changed(("b", "clean"))
        assert cache.cached(("b", "clean")).value[0] == 9 and cache.is_dirty(("b", "clean"))
        # replaced meanwhile (a reload or a whole-chunk write): the change goes there
        newer = cache.insert(("b", "clean"), np.full(1000, 5, "u1"), encode)
        assert cache.live(("b", "clean"), clean) is newer

    async def _never():
        return None

    asyncio.run(scenario())


def test_a_loaded_chunk_is_charged_its_decoded_bytes():
    """CHUNK_MEM_CACHE_SIZE bounds memory: a chunk read from storage costs the cache its
    decoded array, not the fewer bytes it was stored in (compressed 1,000 -> 10 here;
    the cache once held 100x its limit of such chunks). A document costs its JSON."""
    import asyncio
    import zlib

    import numpy as np

    from server.dn.cache import WriteBackCache
    from server.storage.memory import MemoryStore

    async def scenario():
        store = MemoryStore(buckets=("b",))
        for i in range(10):
            await store.put("b", f"c{i}", zlib.compress(bytes(1000)))
        await store.put("b", "doc", b'{"a": 1}')
        cache = WriteBackCache(store, 4000, "chunk")

        async def decode(data):
            return {"value": np.frombuffer(zlib.decompress(data), "u1"), "encode": bytes}
        for i in range(10):
            await cache.get(("b", f"c{i}"), decode)
        assert cache.stats()["bytes"] <= 4000 and cache.stats()["entries"] == 4
        assert cache.cached(("b", "c9")) is not None and cache.cached(("b", "c0")) is None

        async def parse(data):
            return {"value": {"a": 1}, "encode": bytes}
        await cache.get(("b", "doc"), parse)
        assert cache.cached(("b", "doc")).size == len(b'{"a": 1}')

    asyncio.run(scenario())
