"""Crash consistency (issue 13): a data node killed with SIGKILL in the middle of a
write-heavy load never leaves a torn object in storage, and what was flushed before
the kill is intact after the DN restarts.

Four writer threads hammer one domain over plain HTTP -- whole- and half-chunk writes
to five datasets (deflate+shuffle, lz4, zstd, bitshuffle, no filter), attributes on a
group and on datasets, new linked groups -- while write-back runs every 50 ms. At a
few seeded moments the test snapshots what has been acknowledged, flushes (either
dialect: h5pyd 1.0's `PUT /?flush=1` with a JSON null body, or h5pyd 0.24's
`{"flush": 1, "getdnids": 1}`), lets more writes pile up unflushed, SIGKILLs one DN
and, while it is down, reads every object in the bucket: each .json parses, each chunk
decodes with its dataset's codec to exactly the chunk's size, and holds one whole
write (no mix of two versions inside a half). The DN is then restarted as launch.py
starts it (same port, same environment, same log). At the end every flushed write
must read back (a chunk half may hold a later write, never an earlier one), every
flushed attribute and link must exist, and every value must be one that was written.

Each chunk element is (generation << 16) | its place in the chunk, so a chunk half tells which
write it holds and whether it is whole. POSIX and S3 (moto) both run.
"""
import json
import os
import random
import signal
import threading
import time
import uuid
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import requests

from conftest import cluster_env, make_bucket, make_home, start_cluster
from server.core.chunks import codec_for
from server.core.ids import dataset_prefix, key_to_id

SEED = 1313
KILLS = 3                    # kill points per backend
WRITERS = 4
CH = 16384                   # elements per chunk (64 KB of int32)
NCHUNKS = 8                  # chunks per dataset (two per writer)
HALF = CH // 2
U1 = ("test_user1", "test")
BIN = {"Content-Type": "application/octet-stream"}
JSON = {"Content-Type": "application/json"}

FILTERS = {
    "deflate": [{"class": "H5Z_FILTER_SHUFFLE", "id": 2, "name": "shuffle"},
                {"class": "H5Z_FILTER_DEFLATE", "id": 1, "name": "gzip", "level": 1}],
    "lz4": [{"class": "H5Z_FILTER_LZ4", "id": 32004, "name": "lz4"}],
    "zstd": [{"class": "H5Z_FILTER_ZSTD", "id": 32015, "name": "zstd"}],
    "bitshuffle": [{"class": "H5Z_FILTER_SHUFFLE", "id": 2, "name": "bitshuffle"}],
    "raw": [],
}


def pattern(gen: int, start: int, stop: int) -> np.ndarray:
    """Elements start..stop of a write of generation gen: (gen << 16) | place in chunk."""
    return ((gen << 16) | (np.arange(start, stop) % CH)).astype("<i4")


def gen_of(values: np.ndarray, start: int):
    """The one generation a run of elements holds, or None if it is not one whole write."""
    gens = values >> 16
    ok = gens.min() == gens.max() and np.array_equal(
        values & 0xFFFF, np.arange(start, start + len(values)) % CH)
    return int(gens[0]) if ok else None


def attr_value(name: str) -> list:
    seed = zlib.crc32(name.encode())
    return [seed % 100000 + i for i in range(16)]


class Ledger:
    """What writers attempted and what the server acknowledged (with send times)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.acks = []                 # (sent, acked, kind, key, gen)
        self.attempted = {}            # (dset, chunk, half) -> generations tried

    def attempt(self, halves, gen):
        with self.lock:
            for h in halves:
                self.attempted.setdefault(h, set()).add(gen)

    def ack(self, sent, kind, key, gen=None):
        with self.lock:
            self.acks.append((sent, time.monotonic(), kind, key, gen))

    def since(self, epoch):
        """Acknowledged now, of requests sent after epoch (a restart)."""
        with self.lock:
            now = time.monotonic()
            return [a for a in self.acks if a[0] >= epoch and a[1] <= now]


class Durable:
    """Lower bounds that a successful flush guarantees."""

    def __init__(self):
        self.halves = {}               # (dset, chunk, half) -> generation
        self.names = set()             # ("attr" | "dattr" | "link", name)

    def add(self, acks):
        for _, _, kind, key, gen in acks:
            if kind == "chunk":
                for h in key:
                    self.halves[h] = max(self.halves.get(h, 0), gen)
            else:
                self.names.add((kind, key))


class Load:
    def __init__(self, endpoint, domain, ids, ledger, seed):
        self.endpoint, self.domain, self.ids, self.ledger = endpoint, domain, ids, ledger
        self.seed = seed
        self.stop = threading.Event()
        self.threads = []
        self.counters = [0] * WRITERS
        self.gens = [2 + w for w in range(WRITERS)]       # per writer, always rising
        self.errors = []

    def start(self, cycle: int):
        self.stop.clear()
        self.threads = [threading.Thread(target=self._run, args=(w, cycle), daemon=True)
                        for w in range(WRITERS)]
        for t in self.threads:
            t.start()

    def halt(self):
        self.stop.set()
        for t in self.threads:
            t.join(60)
        assert not any(t.is_alive() for t in self.threads)

    def _run(self, w, cycle):
        rng = random.Random(f"{self.seed}-{w}-{cycle}")
        session = requests.Session()
        session.auth = U1
        params = {"domain": self.domain}
        mine = [c for c in range(NCHUNKS) if c % WRITERS == w]
        while not self.stop.is_set():
            op = rng.random()
            self.counters[w] += 1
            n = self.counters[w]
            sent = time.monotonic()
            try:
                if op < 0.6:
                    dset = rng.choice(sorted(FILTERS))
                    c = rng.choice(mine)
                    full = rng.random() < 0.7
                    gen = self.gens[w] = self.gens[w] + WRITERS
                    stop = c * CH + (CH if full else HALF)
                    halves = [(dset, c, 0)] + ([(dset, c, 1)] if full else [])
                    self.ledger.attempt(halves, gen)
                    rsp = session.put(f"{self.endpoint}/datasets/{self.ids[dset]}/value",
                                      params={**params, "select": f"[{c * CH}:{stop}]"},
                                      data=pattern(gen, c * CH, stop).tobytes(), headers=BIN,
                                      timeout=30)
                    if rsp.status_code == 200:
                        self.ledger.ack(sent, "chunk", tuple(halves), gen)
                elif op < 0.8:
                    name = f"a{w}_{n}"
                    rsp = session.put(f"{self.endpoint}/groups/{self.ids['meta']}/attributes/"
                                      f"{name}", params=params, timeout=30,
                                      json={"type": "H5T_STD_I32LE", "shape": [16],
                                            "value": attr_value(name)})
                    if rsp.status_code == 201:
                        self.ledger.ack(sent, "attr", name)
                elif op < 0.9:
                    name = f"d{w}_{n}"
                    dset = rng.choice(sorted(FILTERS))
                    rsp = session.put(f"{self.endpoint}/datasets/{self.ids[dset]}/attributes/"
                                      f"{name}", params=params, timeout=30,
                                      json={"type": "H5T_STD_I32LE", "shape": [16],
                                            "value": attr_value(name)})
                    if rsp.status_code == 201:
                        self.ledger.ack(sent, "dattr", f"{dset}/{name}")
                else:
                    name = f"l{w}_{n}"
                    rsp = session.post(f"{self.endpoint}/groups", params=params, timeout=30,
                                       json={"link": {"id": self.ids["links"], "name": name}})
                    if rsp.status_code == 201:
                        self.ledger.ack(sent, "link", name)
                if rsp.status_code >= 500 and rsp.status_code != 503:
                    self.errors.append((rsp.status_code, rsp.text[:200]))
            except requests.RequestException:
                pass                       # the SN itself is never killed; tolerate anyway
        session.close()


# ---- storage ------------------------------------------------------------------------

class Storage:
    """Reads every object of the bucket; an object unchanged since the last look (same
    ETag / inode, mtime and size) is not read or checked again."""

    def __init__(self, backend, env, bucket):
        self.backend, self.env, self.bucket = backend, env, bucket
        self.seen = {}                 # key -> tag of the version already checked
        self.docs = {}                 # key -> parsed JSON
        self.s3 = make_bucket(env["AWS_S3_GATEWAY"], bucket) if backend == "s3" else None

    def _listing(self) -> dict:
        if self.s3 is None:
            base = Path(self.env["ROOT_DIR"]) / self.bucket
            out = {}
            for folder, _, files in os.walk(base):
                for name in files:
                    path = Path(folder) / name
                    st = path.stat()
                    out[path.relative_to(base).as_posix()] = (st.st_ino, st.st_mtime_ns,
                                                              st.st_size)
            return out
        return {item["Key"]: (item["ETag"], item["Size"])
                for page in self.s3.get_paginator("list_objects_v2").paginate(
                    Bucket=self.bucket) for item in page.get("Contents", [])}

    def _read(self, key) -> bytes:
        if self.s3 is None:
            return (Path(self.env["ROOT_DIR"]) / self.bucket / key).read_bytes()
        return self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def changed(self) -> dict:
        """key -> bytes of every object new or changed since the last call."""
        listing = self._listing()
        keys = [k for k, tag in listing.items() if self.seen.get(k) != tag]
        with ThreadPoolExecutor(8) as pool:
            datas = list(pool.map(self._read, keys))
        self.seen = {k: listing[k] for k in listing}
        for gone in set(self.docs) - set(listing):
            del self.docs[gone]
        return dict(zip(keys, datas))

    def check(self, ledger: "Ledger", names: dict) -> int:
        """Every object whole: JSON parses, chunks decode to exactly their size and hold
        one write per half. Returns the number of chunks checked."""
        objects = self.changed()
        for key, data in objects.items():
            if key.endswith(".json"):
                assert data, f"empty JSON object {key}"
                try:
                    self.docs[key] = json.loads(data)
                except ValueError as e:
                    pytest.fail(f"torn JSON object {key} ({len(data)} bytes): {e}")
                assert isinstance(self.docs[key], dict), key
            else:
                assert key_to_id(key) is not None, f"stray object {key}"
        chunks = 0
        for key, data in objects.items():
            if not key.endswith(".json"):
                check_chunk(key, data, self.docs, ledger, names)
                chunks += 1
        return chunks


def check_chunk(key, data, docs, ledger, names):
    prefix, index = key.rsplit("/", 1)
    doc = docs.get(prefix + "/.dataset.json")
    assert doc is not None, f"chunk {key} without its dataset"
    codec = codec_for(doc)
    raw = codec.pipeline.decode(data, nbytes=codec.nbytes)
    size = len(raw) if isinstance(raw, (bytes, bytearray)) else memoryview(raw).nbytes
    assert size == codec.nbytes, f"chunk {key}: {size} bytes, expected {codec.nbytes}"
    arr = codec.decode(data).reshape(-1)
    c = int(index)
    dset = names.get(prefix + "/")
    for h in (0, 1):
        start = c * CH + h * HALF
        gen = gen_of(arr[h * HALF:(h + 1) * HALF], start)
        assert gen is not None, f"chunk {key} half {h} is not one whole write"
        assert gen == 1 or gen in ledger.attempted.get((dset, c, h), ()), (key, h, gen)


# ---- processes ------------------------------------------------------------------------

def wait_until(check, what, attempts=600, pause=0.05):
    for _ in range(attempts):
        if check():
            return
        time.sleep(pause)
    pytest.fail(f"gave up waiting for {what}")


def _ok(url, **kw) -> bool:
    try:
        return requests.get(url, timeout=2, **kw).status_code == 200
    except requests.RequestException:
        return False


def kill_dn(cluster, i: int):
    pidfile = cluster.run_dir / f"dn-{i + 1:03d}.pid"
    pid = int(pidfile.read_text())
    os.kill(pid, signal.SIGKILL)
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def spawn_dn(cluster, i: int):
    """As launch.py starts it: same module, port, node id, environment and log."""
    name = f"dn-{i + 1:03d}"
    cluster._spawn(name, name, "server.dn.main", {"DN_PORT": str(cluster.dn_ports[i])})


def wait_for_dn(cluster, i: int, domain: str):
    name = f"dn-{i + 1:03d}"
    wait_until(lambda: _ok(cluster.dn_urls[i] + "/health"), f"{name} to answer")
    wait_until(lambda: _ok(cluster.endpoint + "/", params={"domain": domain}, auth=U1),
               "the SN to reach every DN")


def flush(endpoint, domain, rng) -> bool:
    if rng.random() < 0.5:        # h5pyd 1.0
        rsp = requests.put(endpoint + "/", params={"domain": domain, "flush": 1},
                           data=b"null", headers=JSON, auth=U1, timeout=60)
        return rsp.status_code == 204
    rsp = requests.put(endpoint + "/", params={"domain": domain}, auth=U1, timeout=60,
                       json={"flush": 1, "getdnids": 1})        # h5pyd 0.24
    return rsp.status_code == 200 and len(rsp.json()["dn_ids"]) == 2


def get(endpoint, path, domain, **kw):
    """A read after a restart: the SN may answer 503 until it sees the DN again."""
    for _ in range(50):
        rsp = requests.get(endpoint + path, params={"domain": domain, **kw.pop("params", {})},
                           auth=U1, timeout=60, **kw)
        if rsp.status_code != 503:
            return rsp
        time.sleep(0.1)
    return rsp


# ---- the test -------------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["posix", "s3"])
def test_sigkill_under_write_load(tmp_path, backend, request):
    t0 = time.monotonic()
    rng = random.Random(f"{SEED}-{backend}")
    moto = request.getfixturevalue("moto_endpoint") if backend == "s3" else None
    bucket = f"crash{uuid.uuid4().hex[:10]}"
    env = cluster_env(tmp_path, backend, moto, bucket=bucket, S3_AGE_TIME="0.05",
                      S3_SYNC_INTERVAL="0.05", MIN_CHUNK_SIZE="1k")
    cluster = start_cluster(tmp_path, env, dn_count=2)
    load = None
    try:
        make_home(cluster.endpoint)
        ep = cluster.endpoint
        domain = f"/home/test_user1/crash{uuid.uuid4().hex[:8]}.h5"
        rsp = requests.put(ep + "/", params={"domain": domain}, auth=U1, timeout=30)
        assert rsp.status_code == 201
        root = rsp.json()["root"]
        ids = {}
        for name in ("meta", "links"):
            rsp = requests.post(ep + "/groups", params={"domain": domain}, auth=U1, timeout=30,
                                json={"link": {"id": root, "name": name}})
            assert rsp.status_code == 201
            ids[name] = rsp.json()["id"]
        for name, filters in FILTERS.items():
            rsp = requests.post(ep + "/datasets", params={"domain": domain}, auth=U1, timeout=30,
                                json={"type": "H5T_STD_I32LE", "shape": [NCHUNKS * CH],
                                      "creationProperties": {
                                          "layout": {"class": "H5D_CHUNKED", "dims": [CH]},
                                          "filters": filters},
                                      "link": {"id": root, "name": name}})
            assert rsp.status_code == 201, rsp.text
            ids[name] = rsp.json()["id"]
            layout = get(ep, f"/datasets/{ids[name]}", domain).json()["layout"]
            assert layout["dims"] == [CH]
        names = {dataset_prefix(ids[n]): n for n in FILTERS}

        # generation 1 everywhere, and a first set of attributes: flushed
        ledger, durable = Ledger(), Durable()
        for name in FILTERS:
            rsp = requests.put(f"{ep}/datasets/{ids[name]}/value", params={"domain": domain},
                               data=pattern(1, 0, NCHUNKS * CH).tobytes(), headers=BIN,
                               auth=U1, timeout=60)
            assert rsp.status_code == 200
            for c in range(NCHUNKS):
                durable.halves[(name, c, 0)] = durable.halves[(name, c, 1)] = 1
        for i in range(10):
            rsp = requests.put(f"{ep}/groups/{ids['meta']}/attributes/first{i}",
                               params={"domain": domain}, auth=U1, timeout=30,
                               json={"type": "H5T_STD_I32LE", "shape": [16],
                                     "value": attr_value(f"first{i}")})
            assert rsp.status_code == 201
            durable.names.add(("attr", f"first{i}"))
        assert flush(ep, domain, rng)

        storage = Storage(backend, env, bucket)
        load = Load(ep, domain, ids, ledger, SEED)
        epoch = time.monotonic()
        checked = flushed = 0
        for kill in range(KILLS):
            load.start(kill)
            time.sleep(rng.uniform(0.3, 0.7))
            acked = ledger.since(epoch)
            if flush(ep, domain, rng):
                durable.add(acked)
                flushed += 1
            time.sleep(rng.uniform(0.05, 0.4))        # unflushed writes, write-back busy
            victim = rng.randrange(2)
            kill_dn(cluster, victim)
            spawn_dn(cluster, victim)        # it boots while we look; it writes nothing yet
            load.halt()
            # the victim's objects as the kill left them
            checked += storage.check(ledger, names)
            wait_for_dn(cluster, victim, domain)
            epoch = time.monotonic()                  # acks before this may be lost
            print(f"kill {kill + 1}: dn-{victim + 1:03d} at {time.monotonic() - t0:.1f}s, "
                  f"{len(ledger.acks)} acks, {checked} chunks checked")
        assert not load.errors, load.errors[:5]
        # the load ran, flushes happened under it, the kills found objects to check
        assert len(ledger.acks) > 30 and flushed > 0 and checked > 0

        # everything flushed reads back; every value is one that was written
        for name in FILTERS:
            rsp = get(ep, f"/datasets/{ids[name]}/value", domain,
                      headers={"Accept": "application/octet-stream"})
            assert rsp.status_code == 200, rsp.text[:300]
            values = np.frombuffer(rsp.content, "<i4")
            for c in range(NCHUNKS):
                for h in (0, 1):
                    start = c * CH + h * HALF
                    gen = gen_of(values[start:start + HALF], start)
                    assert gen is not None, (name, c, h)
                    assert gen >= durable.halves[(name, c, h)], (name, c, h, gen)
                    assert gen == 1 or gen in ledger.attempted.get((name, c, h), ()), \
                        (name, c, h, gen)
        rsp = get(ep, f"/groups/{ids['meta']}/attributes", domain, params={"IncludeData": 1})
        assert rsp.status_code == 200
        attrs = {a["name"]: a["value"] for a in rsp.json()["attributes"]}
        links = set()
        marker = None
        while True:                                   # links come in pages
            params = {"Limit": 1000, **({"Marker": marker} if marker else {})}
            rsp = get(ep, f"/groups/{ids['links']}/links", domain, params=params)
            assert rsp.status_code == 200
            page = [link["title"] for link in rsp.json()["links"]]
            links.update(page)
            if len(page) < 1000:
                break
            marker = page[-1]
        for kind, name in sorted(durable.names):
            if kind == "attr":
                assert attrs.get(name) == attr_value(name), name
            elif kind == "link":
                assert name in links, name
            else:
                dset, aname = name.split("/")
                rsp = get(ep, f"/datasets/{ids[dset]}/attributes/{aname}", domain)
                assert rsp.status_code == 200 and rsp.json()["value"] == attr_value(aname)
        for name, value in attrs.items():
            assert value == attr_value(name), name
    finally:
        if load is not None:
            load.halt()
        cluster.stop()
    # and after the clean stop (SIGTERM flushes the rest) storage is whole too
    storage.check(ledger, names)
