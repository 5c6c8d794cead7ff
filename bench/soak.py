"""Soak: N concurrent clients against a fresh h5cloud cluster for a set time, then an
integrity check.

    .venv/bin/python bench/soak.py [--minutes 10] [--clients 50] [--dn 4] [--seed 1] [--s3]

1. Starts its own cluster (server.launch.Cluster: 1 SN + --dn DNs on free loopback
   ports, POSIX storage in a temporary folder, or with --s3 moto's S3 server started
   here). The DN cache sizes are whatever the configuration says (admin/config, env),
   unless --chunk-cache / --meta-cache set them.
2. Makes three domains under /home/test_user1: data (a plain float32 dataset "slab",
   the same with deflate "zslab", a float64 "canary"), table (a compound table id i4,
   temp f4, sym S4 for queries) and meta (one group per client). Each client owns a
   band of rows in slab and zslab (disjoint, chunk-aligned) and its own group, so the
   final state of everything is known. The bands are prefilled; their total
   (--working-set-mib, default 1.5x the DNs' chunk caches together) is bigger than
   the caches, so the caches must evict to stay within their settings.
3. Runs --clients asyncio clients (one aiohttp session each, one request at a time)
   for --minutes, each looping over a seeded random mix (--mix):
     meta_get      GET its group with include_links and include_attrs; checked
     attr_create   PUT an attribute (new name each time; at most 8 live, then delete)
     attr_delete   DELETE one of its attributes
     link_create   PUT a hard or soft link (new name each time; at most 8 live)
     link_delete   DELETE one of its links
     read          binary hyperslab GET from its band of slab; checked
     read_deflate  the same from zslab
     write         binary hyperslab PUT into its band of slab
     points        binary POST of 1-4096 points (its band of slab, or the canary); checked
     query         GET table value?query=temp > X [& sym == b'...'] [&select=]; checked
     chunk_write   one whole aligned chunk PUT into its band of slab or zslab
   A 503 "too many requests in flight" is shed load: counted apart, the client backs
   off 50-500 ms and goes on (nothing was applied). Any other non-2xx, a timeout or a
   connection error is an error; a write that ends so makes its region unknown.
4. Samples VmRSS of the SN and every DN (and moto with --s3) and the load average
   every second; prints a line per --report-every seconds.
5. After the run: flushes, reads back the canary (byte-identical), every client's
   bands (every acknowledged write), groups (attributes with values, links) and the
   table; then (unless --no-restart) stops the cluster cleanly, starts it again on the
   same storage and checks everything again, now from storage.

Prints a table and, last, one JSON line. Exit status 1 on any 5xx other than a shed
503, any other unexpected status, any timeout or connection error, or any integrity
error; the work folder (logs: run/sn.log, run/dn-*.log) is then kept, else removed
(--keep keeps it).
"""
import argparse
import asyncio
import base64
import json
import math
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter, defaultdict
from pathlib import Path

import aiohttp
import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from server.config import parse_size  # noqa: E402
from server.launch import Cluster, free_ports, make_home_folders  # noqa: E402

USER, PASSWORD = "test_user1", "test"
BINARY = "application/octet-stream"
SHED = "too many requests in flight"
OK = (200, 201, 204)
W = 2048                     # columns of slab / zslab
CHUNK = 512                  # 512 x 512 float32 chunks: 1 MiB
MAX_LIVE = 8                 # live attributes / links per client group
TABLE_CHUNK = 131072         # rows (1.5 MiB)
CANARY_SHAPE = (1024, 1024)  # float64, 256 x 512 chunks (1 MiB)
SYMS = np.array([b"AAPL", b"MSFT", b"GOOG", b"AMZN"])
DEFAULT_MIX = ("meta_get=12,attr_create=6,attr_delete=4,link_create=5,link_delete=3,"
               "read=14,read_deflate=6,write=12,points=10,query=8,chunk_write=8")
KINDS = [k.split("=")[0] for k in DEFAULT_MIX.split(",")]
TABLE_DT = np.dtype([("id", "<i4"), ("temp", "<f4"), ("sym", "S4")])
TABLE_TYPE = {"class": "H5T_COMPOUND", "fields": [
    {"name": "id", "type": "H5T_STD_I32LE"}, {"name": "temp", "type": "H5T_IEEE_F32LE"},
    {"name": "sym", "type": {"class": "H5T_STRING", "charSet": "H5T_CSET_ASCII",
                             "strPad": "H5T_STR_NULLPAD", "length": 4}}]}
DEFLATE = [{"class": "H5Z_FILTER_DEFLATE", "id": 1, "level": 6}]


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def quantized(rng, shape) -> np.ndarray:
    """float32 multiples of 1/1024 in [0, 1): deflate has something to do."""
    return (np.floor(rng.random(shape, dtype=np.float32) * 1024) / 1024).astype(np.float32)


def log_uniform(rng, hi: int) -> int:
    """1..hi, as many small as big."""
    return max(1, min(hi, int(2 ** rng.uniform(0, math.log2(hi) + 1e-9))))


def sel(*ranges) -> str:
    return "[" + ",".join(f"{a}:{b}" for a, b in ranges) + "]"


# ---- process sampling ----------------------------------------------------------------

def proc_status(pid: int) -> dict:
    """VmRSS and VmHWM in KiB."""
    out = {}
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, val = line.split(":")
                out[key] = int(val.split()[0])
    except OSError:
        pass
    return out


def proc_cpu(pid: int) -> float:
    """user + system CPU seconds."""
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


class Sampler(threading.Thread):
    """Every second: VmRSS (MiB) of each named pid, the 1-minute load, requests done."""

    def __init__(self, pids: dict, stats, interval: float = 1.0):
        super().__init__(daemon=True)
        self.pids, self.stats, self.interval = pids, stats, interval
        self.samples = []        # (t, {name: MiB}, load1, total requests)
        self.halt = threading.Event()

    def sample(self):
        rss = {n: proc_status(p).get("VmRSS", 0) / 1024 for n, p in self.pids.items()}
        self.samples.append((time.time(), rss, os.getloadavg()[0], self.stats.total))

    def run(self):
        while not self.halt.is_set():
            self.sample()
            self.halt.wait(self.interval)

    def stop(self):
        self.halt.set()
        self.join(5)
        self.sample()


# ---- statistics ------------------------------------------------------------------------

class Stats:
    def __init__(self):
        self.lat = defaultdict(list)             # kind -> seconds of 2xx answers
        self.status = defaultdict(Counter)       # kind -> status -> count (all answers)
        self.shed = Counter()                    # kind -> shed 503s
        self.errors = []                         # (t, client, kind, status, text)
        self.integrity = []                      # text
        self.setup_errors = []                   # text
        self.total = 0
        self.bytes_in = self.bytes_out = 0

    def error(self, client, kind, status, text):
        self.errors.append((time.time(), client, kind, status, text[:300]))

    def bad(self, text):
        self.integrity.append(text)
        if len(self.integrity) <= 20:
            log("INTEGRITY: " + text)


class Failed(Exception):
    pass


class Http:
    """One aiohttp session as test_user1; `call` gives (status, body bytes, seconds).
    status is an int, or 'timeout' / 'conn:<Exception>' when no answer came."""

    def __init__(self, endpoint: str, timeout: float):
        self.ep = endpoint
        token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        self.session = aiohttp.ClientSession(
            headers={"Authorization": f"Basic {token}"},
            timeout=aiohttp.ClientTimeout(total=timeout),
            connector=aiohttp.TCPConnector(limit=1))

    async def call(self, method, path, domain, params=None, data=None, js=None, headers=None):
        params = {"domain": domain, **(params or {})}
        t0 = time.perf_counter()
        try:
            async with self.session.request(method, self.ep + path, params=params, data=data,
                                            json=js, headers=headers) as r:
                body = await r.read()
                status = r.status
        except asyncio.TimeoutError:
            body, status = b"", "timeout"
        except (aiohttp.ClientError, OSError) as e:
            body, status = str(e).encode(), f"conn:{type(e).__name__}"
        return status, body, time.perf_counter() - t0

    async def must(self, method, path, domain, ok=OK, **kw):
        """Setup and checks: anything but `ok` raises (a shed 503 is retried)."""
        for attempt in range(200):
            status, body, _ = await self.call(method, path, domain, **kw)
            if status == 503 and SHED.encode() in body:
                await asyncio.sleep(0.2)
                continue
            if status not in ok:
                raise Failed(f"{method} {path} {domain} {kw.get('params')} -> {status} "
                             f"{body[:300]!r}")
            return body
        raise Failed(f"{method} {path}: still shed after 200 tries")

    async def close(self):
        await self.session.close()


# ---- the fixture: domains, datasets, model ---------------------------------------------

class World:
    """Everything the clients share: ids, geometry, the read-only data."""

    def __init__(self, args, band_rows: int):
        tag = f"{args.seed}_{os.getpid()}"
        self.data_domain = f"/home/{USER}/soak_{tag}_data.h5"
        self.table_domain = f"/home/{USER}/soak_{tag}_table.h5"
        self.meta_domain = f"/home/{USER}/soak_{tag}_meta.h5"
        self.band_rows = band_rows
        self.rows = band_rows * args.clients
        rng = np.random.default_rng([args.seed, 1 << 20])
        self.canary = rng.standard_normal(CANARY_SHAPE)           # float64
        n = args.table_rows
        self.table = np.zeros(n, TABLE_DT)
        self.table["id"] = np.arange(n)
        self.table["temp"] = np.round(rng.random(n) * 100, 2).astype(np.float32)
        self.table["sym"] = SYMS[rng.integers(0, 4, n)]
        self.ids = {}
        self.meta_root = None

    async def create(self, http: Http, args, bands: list, log_step):
        d = self.data_domain
        for dom in (self.data_domain, self.table_domain, self.meta_domain):
            await http.must("PUT", "/", dom, js={})
        root = json.loads(await http.must("GET", "/", d))["root"]

        async def dataset(name, body, domain=d, root_id=root):
            body = {**body, "link": {"id": root_id, "name": name}}
            self.ids[name] = json.loads(await http.must("POST", "/datasets", domain, js=body))["id"]

        chunked = {"layout": {"class": "H5D_CHUNKED", "dims": [CHUNK, CHUNK]}}
        await dataset("slab", {"type": "H5T_IEEE_F32LE", "shape": [self.rows, W],
                               "creationProperties": chunked})
        await dataset("zslab", {"type": "H5T_IEEE_F32LE", "shape": [self.rows, W],
                                "creationProperties": {**chunked, "filters": DEFLATE}})
        cp = json.dumps(json.loads(await http.must("GET", f"/datasets/{self.ids['zslab']}", d))
                        .get("creationProperties", {}))
        if "DEFLATE" not in cp.upper():
            raise Failed(f"zslab lost its deflate filter: {cp[:200]}")
        await dataset("canary", {"type": "H5T_IEEE_F64LE", "shape": list(CANARY_SHAPE),
                                 "creationProperties": {"layout": {"class": "H5D_CHUNKED",
                                                                   "dims": [256, 512]}}})
        await http.must("PUT", f"/datasets/{self.ids['canary']}/value", d,
                        data=self.canary.tobytes(), headers={"Content-Type": BINARY})
        troot = json.loads(await http.must("GET", "/", self.table_domain))["root"]
        tchunk = min(TABLE_CHUNK, len(self.table))
        await dataset("table", {"type": TABLE_TYPE, "shape": [len(self.table)],
                                "creationProperties": {"layout": {"class": "H5D_CHUNKED",
                                                                  "dims": [tchunk]}}},
                      self.table_domain, troot)
        for i in range(0, len(self.table), tchunk):
            blk = self.table[i:i + tchunk]
            await http.must("PUT", f"/datasets/{self.ids['table']}/value", self.table_domain,
                            params={"select": sel((i, i + len(blk)))}, data=blk.tobytes(),
                            headers={"Content-Type": BINARY})
        self.meta_root = json.loads(await http.must("GET", "/", self.meta_domain))["root"]
        gids = []
        for i in range(args.clients):
            body = {"link": {"id": self.meta_root, "name": f"c{i}"}}
            gids.append(json.loads(await http.must("POST", "/groups", self.meta_domain,
                                                   js=body))["id"])
        log_step(f"domains and datasets made; prefilling {len(bands)} bands x 2 datasets "
                 f"({2 * sum(b.nbytes for b in bands) / 2**20:.0f} MiB)")
        return gids


# ---- one client ----------------------------------------------------------------------

class Client:
    def __init__(self, idx, world: World, stats: Stats, args, band: np.ndarray, gid: str):
        self.idx, self.w, self.stats, self.args = idx, world, stats, args
        self.rng = np.random.default_rng([args.seed, idx])
        self.row0 = idx * world.band_rows
        self.model = {"slab": band.copy(), "zslab": band.copy()}
        self.known = {k: np.ones(band.shape, bool) for k in self.model}
        self.gid = gid
        self.attrs = {}            # name -> value list (acknowledged)
        self.links = {}            # title -> link body (acknowledged)
        self.unsure = set()        # names whose last change ended without a clear answer
        self.seq = 0
        self.http = None

    # ---- plumbing

    async def req(self, kind, method, path, domain, **kw):
        """(outcome, body): outcome 'ok', 'shed' or 'error' (recorded here)."""
        status, body, dt = await self.http.call(method, path, domain, **kw)
        st = self.stats
        st.total += 1
        st.status[kind][status] += 1
        if kw.get("data") is not None:
            st.bytes_out += len(kw["data"])
        st.bytes_in += len(body)
        if status in OK:
            st.lat[kind].append(dt)
            return "ok", body
        if status == 503 and SHED.encode() in body:
            st.shed[kind] += 1
            await asyncio.sleep(self.rng.uniform(0.05, 0.5))
            return "shed", body
        st.error(self.idx, kind, status, f"{method} {path} {kw.get('params')}: "
                                         f"{body[:200].decode('utf-8', 'replace')}")
        return "error", body

    def check(self, kind, what, got: np.ndarray, want: np.ndarray, known=None):
        if got.shape != want.shape:
            self.stats.bad(f"client {self.idx} {kind} {what}: shape {got.shape} != {want.shape}")
            return False
        diff = got != want
        if known is not None:
            diff &= known
        if diff.any():
            first = tuple(int(x) for x in np.argwhere(diff)[0])
            self.stats.bad(f"client {self.idx} {kind} {what}: {int(diff.sum())} of {diff.size} "
                           f"values differ, first at {first}: got {got[first]!r} "
                           f"want {want[first]!r}")
            return False
        return True

    def rect(self, max_rows=512, max_cols=1024):
        h = log_uniform(self.rng, min(max_rows, self.w.band_rows))
        wd = log_uniform(self.rng, max_cols)
        r = int(self.rng.integers(0, self.w.band_rows - h + 1))
        c = int(self.rng.integers(0, W - wd + 1))
        return r, r + h, c, c + wd

    def value_path(self, name):
        return f"/datasets/{self.w.ids[name]}/value"

    # ---- operations

    async def op_read(self, name="slab", kind="read"):
        r0, r1, c0, c1 = self.rect()
        out, body = await self.req(kind, "GET", self.value_path(name), self.w.data_domain,
                                   params={"select": sel((self.row0 + r0, self.row0 + r1),
                                                         (c0, c1))},
                                   headers={"Accept": BINARY})
        if out == "ok":
            if len(body) != (r1 - r0) * (c1 - c0) * 4:
                self.stats.bad(f"client {self.idx} {kind}: {len(body)} bytes for "
                               f"{r1 - r0}x{c1 - c0} float32")
                return
            got = np.frombuffer(body, np.float32).reshape(r1 - r0, c1 - c0)
            self.check(kind, f"{name}[{r0}:{r1},{c0}:{c1}] of band", got,
                       self.model[name][r0:r1, c0:c1], self.known[name][r0:r1, c0:c1])

    async def op_read_deflate(self):
        await self.op_read("zslab", "read_deflate")

    async def _write(self, kind, name, r0, r1, c0, c1):
        data = quantized(self.rng, (r1 - r0, c1 - c0))
        out, _ = await self.req(kind, "PUT", self.value_path(name), self.w.data_domain,
                                params={"select": sel((self.row0 + r0, self.row0 + r1),
                                                      (c0, c1))},
                                data=data.tobytes(), headers={"Content-Type": BINARY})
        if out == "ok":
            self.model[name][r0:r1, c0:c1] = data
            self.known[name][r0:r1, c0:c1] = True
        elif out == "error":      # may or may not have landed
            self.known[name][r0:r1, c0:c1] = False

    async def op_write(self):
        await self._write("write", "slab", *self.rect())

    async def op_chunk_write(self):
        name = "zslab" if self.rng.random() < 0.5 else "slab"
        cr = int(self.rng.integers(0, self.w.band_rows // CHUNK))
        cc = int(self.rng.integers(0, W // CHUNK))
        await self._write("chunk_write", name, cr * CHUNK, (cr + 1) * CHUNK,
                          cc * CHUNK, (cc + 1) * CHUNK)

    async def op_points(self):
        n = log_uniform(self.rng, 4096)
        if self.rng.random() < 0.5:
            rows = self.rng.integers(0, self.w.band_rows, n)
            cols = self.rng.integers(0, W, n)
            pts = np.stack([rows + self.row0, cols], axis=1).astype("<u8")
            want, known = self.model["slab"][rows, cols], self.known["slab"][rows, cols]
            name, dt = "slab", np.float32
        else:
            rows = self.rng.integers(0, CANARY_SHAPE[0], n)
            cols = self.rng.integers(0, CANARY_SHAPE[1], n)
            pts = np.stack([rows, cols], axis=1).astype("<u8")
            want, known, name, dt = self.w.canary[rows, cols], None, "canary", np.float64
        out, body = await self.req("points", "POST", self.value_path(name), self.w.data_domain,
                                   data=pts.tobytes(),
                                   headers={"Content-Type": BINARY, "Accept": BINARY})
        if out == "ok":
            if len(body) != n * np.dtype(dt).itemsize:
                self.stats.bad(f"client {self.idx} points {name}: {len(body)} bytes for {n}")
                return
            self.check("points", f"{n} points of {name}", np.frombuffer(body, dt), want, known)

    async def op_query(self):
        tab = self.w.table
        # thresholds halfway between the table's 0.01 steps: float32 and float64
        # comparisons agree
        thr = round(float(self.rng.integers(9000, 9990)) / 100 + 0.005, 3)
        mask = tab["temp"] > thr
        text = f"temp > {thr}"
        if self.rng.random() < 0.3:
            s = SYMS[int(self.rng.integers(0, 4))]
            text = f"(temp > {thr}) & (sym == b'{s.decode()}')"
            mask &= tab["sym"] == s
        params = {"query": text}
        if self.rng.random() < 0.4:
            a = int(self.rng.integers(0, len(tab)))
            b = int(self.rng.integers(a + 1, len(tab) + 1))
            params["select"] = sel((a, b))
            mask[:a] = False
            mask[b:] = False
        out, body = await self.req("query", "GET", f"/datasets/{self.w.ids['table']}/value",
                                   self.w.table_domain, params=params,
                                   headers={"Accept": BINARY})
        if out == "ok":
            want = tab[mask]
            if len(body) != want.nbytes:
                self.stats.bad(f"client {self.idx} query {params}: {len(body)} bytes, "
                               f"expected {len(want)} rows ({want.nbytes} bytes)")
                return
            got = np.frombuffer(body, TABLE_DT)
            if not np.array_equal(got, want):
                self.stats.bad(f"client {self.idx} query {params}: wrong rows")

    def group_path(self, suffix=""):
        return f"/groups/{self.gid}{suffix}"

    async def op_meta_get(self):
        out, body = await self.req("meta_get", "GET", self.group_path(), self.w.meta_domain,
                                   params={"include_links": "1", "include_attrs": "1"})
        if out == "ok":
            self.check_group(json.loads(body), "meta_get")

    def check_group(self, doc, kind) -> bool:
        attrs = {k: v for k, v in (doc.get("attributes") or {}).items() if k not in self.unsure}
        links = {k: v for k, v in (doc.get("links") or {}).items() if k not in self.unsure}
        ok = True
        if set(attrs) != set(self.attrs):
            self.stats.bad(f"client {self.idx} {kind}: attributes {sorted(attrs)} "
                           f"!= {sorted(self.attrs)}")
            ok = False
        else:
            for name, val in self.attrs.items():
                if attrs[name].get("value") != val:
                    self.stats.bad(f"client {self.idx} {kind}: attribute {name} = "
                                   f"{attrs[name].get('value')} != {val}")
                    ok = False
        if set(links) != set(self.links):
            self.stats.bad(f"client {self.idx} {kind}: links {sorted(links)} "
                           f"!= {sorted(self.links)}")
            ok = False
        else:
            for title, want in self.links.items():
                got = links[title]
                key = "id" if "id" in want else "h5path"
                if got.get(key) != want[key]:
                    self.stats.bad(f"client {self.idx} {kind}: link {title} = {got} != {want}")
                    ok = False
        return ok

    async def op_attr_create(self):
        live = [n for n in self.attrs if n not in self.unsure]
        if len(live) >= MAX_LIVE:
            return await self.op_attr_delete()
        self.seq += 1
        name = f"a{self.seq}"
        value = [int(x) for x in self.rng.integers(-2**31, 2**31, 4)]
        out, _ = await self.req("attr_create", "PUT", self.group_path(f"/attributes/{name}"),
                                self.w.meta_domain,
                                js={"type": "H5T_STD_I32LE", "shape": [4], "value": value})
        if out == "ok":
            self.attrs[name] = value
        elif out == "error":
            self.unsure.add(name)

    async def op_attr_delete(self):
        live = [n for n in self.attrs if n not in self.unsure]
        if not live:
            return await self.op_attr_create()
        name = live[int(self.rng.integers(0, len(live)))]
        out, _ = await self.req("attr_delete", "DELETE", self.group_path(f"/attributes/{name}"),
                                self.w.meta_domain)
        if out == "ok":
            del self.attrs[name]
        elif out == "error":
            self.attrs.pop(name)
            self.unsure.add(name)

    async def op_link_create(self):
        live = [t for t in self.links if t not in self.unsure]
        if len(live) >= MAX_LIVE:
            return await self.op_link_delete()
        self.seq += 1
        title = f"l{self.seq}"
        if self.rng.random() < 0.5:
            link = {"id": self.w.meta_root}
        else:
            link = {"h5path": f"/c{int(self.rng.integers(0, self.args.clients))}"}
        out, _ = await self.req("link_create", "PUT", self.group_path(f"/links/{title}"),
                                self.w.meta_domain, js=link)
        if out == "ok":
            self.links[title] = link
        elif out == "error":
            self.unsure.add(title)

    async def op_link_delete(self):
        live = [t for t in self.links if t not in self.unsure]
        if not live:
            return await self.op_link_create()
        title = live[int(self.rng.integers(0, len(live)))]
        out, _ = await self.req("link_delete", "DELETE", self.group_path(f"/links/{title}"),
                                self.w.meta_domain)
        if out == "ok":
            del self.links[title]
        elif out == "error":
            self.links.pop(title)
            self.unsure.add(title)

    async def run(self, endpoint, deadline, kinds, weights):
        self.http = Http(endpoint, self.args.timeout)
        try:
            await asyncio.sleep(self.rng.uniform(0, 0.5))      # stagger the start
            while time.time() < deadline:
                kind = kinds[int(self.rng.choice(len(kinds), p=weights))]
                try:
                    await getattr(self, f"op_{kind}")()
                except Exception as e:  # a bug here must not look like a server error
                    self.stats.bad(f"client {self.idx} {kind}: {type(e).__name__}: {e}")
                    traceback.print_exc()
        finally:
            await self.http.close()

    # ---- the final check

    async def verify(self, http: Http, when: str):
        for name in ("slab", "zslab"):
            body = await http.must("GET", self.value_path(name), self.w.data_domain,
                                   params={"select": sel((self.row0, self.row0 + self.w.band_rows),
                                                         (0, W))},
                                   headers={"Accept": BINARY})
            got = np.frombuffer(body, np.float32).reshape(self.model[name].shape)
            self.check(f"final check ({when})", f"band of {name}", got, self.model[name],
                       self.known[name])
        doc = json.loads(await http.must("GET", self.group_path(), self.w.meta_domain,
                                         params={"include_links": "1", "include_attrs": "1"}))
        self.check_group(doc, f"final check ({when})")


# ---- the whole run ---------------------------------------------------------------------

def parse_mix(text: str):
    pairs = [p.split("=") for p in text.split(",") if p.strip()]
    kinds = [k.strip() for k, _ in pairs]
    for k in kinds:
        if k not in KINDS:
            raise SystemExit(f"unknown kind {k!r} in --mix; kinds: {', '.join(KINDS)}")
    w = np.array([float(v) for _, v in pairs])
    return kinds, w / w.sum()


def start_moto(work: Path):
    import boto3
    port = free_ports(1)
    logf = open(work / "moto.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                             str(port)], stdout=logf, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    for _ in range(300):
        if proc.poll() is not None:
            raise RuntimeError(f"moto exited; see {work}/moto.log")
        try:
            s3.create_bucket(Bucket="hsdstest")
            return proc, url
        except Exception:
            time.sleep(0.1)
    raise RuntimeError("moto did not start")


def cluster_env(args, work: Path, moto_url=None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("ROOT_DIR", "AWS_S3_GATEWAY")}
    (work / "passwd.txt").write_text("admin:admin\ntest_user1:test\ntest_user2:test\n")
    base = free_ports(args.dn + 1)
    env.update(BUCKET_NAME="hsdstest", PASSWORD_FILE=str(work / "passwd.txt"),
               SN_PORT=str(base), DN_PORT=str(base + 1), LOG_LEVEL=args.log_level)
    if moto_url:
        env.update(ROOT_DIR="", AWS_S3_GATEWAY=moto_url, AWS_ACCESS_KEY_ID="testing",
                   AWS_SECRET_ACCESS_KEY="testing", AWS_REGION="us-east-1")
    else:
        (work / "data" / "hsdstest").mkdir(parents=True, exist_ok=True)
        env["ROOT_DIR"] = str(work / "data")
    if args.chunk_cache:
        env["CHUNK_MEM_CACHE_SIZE"] = args.chunk_cache
    if args.meta_cache:
        env["METADATA_MEM_CACHE_SIZE"] = args.meta_cache
    if args.max_task_count:
        env["MAX_TASK_COUNT"] = str(args.max_task_count)
    return env


def pids_of(run_dir: Path) -> dict:
    out = {}
    for f in sorted(run_dir.glob("*.pid"), key=lambda p: (p.name != "sn.pid", p.name)):
        out[f.stem.upper() if f.stem == "sn" else f.stem] = int(f.read_text().strip())
    return out


async def flush(http: Http, domain: str):
    t_end = time.time() + 300
    while True:
        status, body, _ = await http.call("PUT", "/", domain, js={"flush": 1})
        if status in OK:
            return
        if time.time() > t_end:
            raise Failed(f"flush of {domain}: {status} {body[:200]!r}")
        await asyncio.sleep(1)


async def verify_all(endpoint, world: World, clients, stats: Stats, args, when: str):
    http = Http(endpoint, max(args.timeout, 300))
    try:
        for dom in (world.data_domain, world.table_domain, world.meta_domain):
            await flush(http, dom)
        body = await http.must("GET", f"/datasets/{world.ids['canary']}/value",
                               world.data_domain, headers={"Accept": BINARY})
        if body != world.canary.tobytes():
            stats.bad(f"canary ({when}): {len(body)} bytes read back, not byte-identical")
        body = await http.must("GET", f"/datasets/{world.ids['table']}/value",
                               world.table_domain, headers={"Accept": BINARY})
        if body != world.table.tobytes():
            stats.bad(f"table ({when}): not byte-identical")
    finally:
        await http.close()
    sem = asyncio.Semaphore(4)

    async def one(c):
        async with sem:
            h = Http(endpoint, max(args.timeout, 300))
            try:
                await c.verify(h, when)
            except Failed as e:
                stats.bad(f"client {c.idx} final check ({when}): {e}")
            finally:
                await h.close()

    await asyncio.gather(*(one(c) for c in clients))


async def prefill(endpoint, world: World, clients, stats: Stats, args):
    """Write every band of slab and zslab (8 MiB PUTs, 4 at a time), then flush. A PUT
    that fails is recorded as a setup error and its rows become unknown to the model."""
    sem = asyncio.Semaphore(4)
    http = [Http(endpoint, max(args.timeout, 300)) for _ in range(4)]
    free = list(http)
    step = max(1, (8 << 20) // (W * 4))

    async def put(name, c):
        async with sem:
            h = free.pop()
            try:
                r0 = c.row0
                for a in range(0, world.band_rows, step):
                    blk = c.model[name][a:a + step]
                    params = {"select": sel((r0 + a, r0 + a + len(blk)), (0, W))}
                    try:
                        await h.must("PUT", f"/datasets/{world.ids[name]}/value",
                                     world.data_domain, params=params, data=blk.tobytes(),
                                     headers={"Content-Type": BINARY})
                    except Failed as e:
                        stats.setup_errors.append(f"prefill {name} client {c.idx}: {e}")
                        log(f"SETUP ERROR: prefill {name} client {c.idx}: {e}")
                        c.known[name][a:a + step] = False
            finally:
                free.append(h)

    try:
        await asyncio.gather(*(put(n, c) for n in ("slab", "zslab") for c in clients))
        await flush(http[0], world.data_domain)
        await flush(http[0], world.table_domain)
        await flush(http[0], world.meta_domain)
    finally:
        for h in http:
            await h.close()


def mib(kib_or_mib):
    return f"{kib_or_mib:7.0f}"


def scan_logs(run_dir: Path, limit=6) -> dict:
    """Per log file: ERROR/CRITICAL lines, and each traceback summed up as where it was
    raised and what (counted, one example each)."""
    out = {}
    for f in sorted(run_dir.glob("*.log")):
        errors, kinds, example = 0, Counter(), {}
        in_tb, where = False, ""
        for line in f.read_text(errors="replace").splitlines():
            if re.search(r" (ERROR|CRITICAL) ", line):
                errors += 1
            if line.startswith("Traceback"):
                in_tb, where = True, ""
            elif in_tb and line.lstrip().startswith("File "):
                where = line.strip()
            elif in_tb and line and not line[0].isspace():
                key = f"{line.split(':')[0]} at {where}"
                kinds[key] += 1
                example.setdefault(key, line[:300])
                in_tb = False
        if errors or kinds:
            out[f.name] = {"error_lines": errors,
                           "tracebacks": [{"count": n, "what": k, "example": example[k]}
                                          for k, n in kinds.most_common(limit)]}
    return out


async def soak(args, work: Path) -> dict:
    res = {"args": vars(args).copy(), "work_dir": str(work)}
    t_setup = time.time()
    moto_proc = moto_url = None
    if args.s3:
        moto_proc, moto_url = start_moto(work)
    env = cluster_env(args, work, moto_url)
    cluster = Cluster(work / "run", args.dn, env)
    settings = cluster.settings
    chunk_cache, meta_cache = settings.chunk_mem_cache_size, settings.metadata_mem_cache_size
    res["settings"] = {"chunk_mem_cache_size_MiB": chunk_cache / 2**20,
                       "metadata_mem_cache_size_MiB": meta_cache / 2**20,
                       "max_task_count": settings.max_task_count,
                       "s3_sync_interval": settings.s3_sync_interval,
                       "s3_age_time": settings.s3_age_time,
                       "storage": "s3 (moto)" if args.s3 else "posix",
                       "dn": args.dn}
    ws = args.working_set_mib or 1.5 * args.dn * chunk_cache / 2**20
    chunk_rows = max(1, round(ws / (2 * args.clients * (W // CHUNK))))
    band_rows = chunk_rows * CHUNK
    res["working_set_MiB"] = 2 * args.clients * band_rows * W * 4 / 2**20
    log(f"cluster: {args.dn} DNs, chunk cache {chunk_cache / 2**20:.0f} MiB and metadata cache "
        f"{meta_cache / 2**20:.0f} MiB per DN, max_task_count {settings.max_task_count}; "
        f"working set {res['working_set_MiB']:.0f} MiB ({args.clients} bands of "
        f"{band_rows}x{W} float32 in slab and in zslab); work dir {work}")
    cluster.start()
    stats = Stats()
    pids = pids_of(cluster.run_dir)
    if moto_proc:
        pids["moto"] = moto_proc.pid
    sampler = Sampler(pids, stats)
    sampler.sample()
    idle = sampler.samples[0][1]           # right after start, before any data
    sampler.start()
    restarted = None
    try:
        make_home_folders(cluster.endpoint, "admin", "admin", [USER])
        world = World(args, band_rows)
        rng = np.random.default_rng([args.seed, 1 << 21])
        bands = [quantized(rng, (band_rows, W)) for _ in range(args.clients)]
        http = Http(cluster.endpoint, max(args.timeout, 300))
        try:
            gids = await world.create(http, args, bands, log)
        finally:
            await http.close()
        clients = [Client(i, world, stats, args, bands[i], gids[i]) for i in range(args.clients)]
        del bands
        await prefill(cluster.endpoint, world, clients, stats, args)
        res["setup_s"] = round(time.time() - t_setup, 1)
        log(f"setup done in {res['setup_s']} s; soak: {args.clients} clients for "
            f"{args.minutes} min")

        kinds, weights = parse_mix(args.mix)
        duration = args.minutes * 60
        every = args.report_every or min(60.0, max(5.0, duration / 6))
        cpu0 = {n: proc_cpu(p) for n, p in pids.items()}
        ru0 = resource.getrusage(resource.RUSAGE_SELF)
        i0 = len(sampler.samples)
        t0 = time.time()
        deadline = t0 + duration
        load_start = os.getloadavg()
        names = list(pids)
        log(f"{'t_s':>6s} {'req/s':>7s} {'shed':>6s} {'errors':>6s} {'bad':>4s} "
            + " ".join(f"{n[:7]:>7s}" for n in names) + "  load1   (RSS MiB)")

        async def reporter():
            last_t, last_n = t0, 0
            while True:
                await asyncio.sleep(every)
                t, rss, load1, n = sampler.samples[-1]
                log(f"{t - t0:6.0f} {(n - last_n) / max(1e-9, t - last_t):7.1f} "
                    f"{sum(stats.shed.values()):6d} {len(stats.errors):6d} "
                    f"{len(stats.integrity):4d} " + " ".join(mib(rss.get(x, 0)) for x in names)
                    + f"  {load1:5.2f}")
                last_t, last_n = t, n

        rep = asyncio.ensure_future(reporter())
        tasks = [asyncio.ensure_future(c.run(cluster.endpoint, deadline, kinds, weights))
                 for c in clients]
        done, pending = await asyncio.wait(tasks, timeout=duration + args.timeout + 60)
        t_end = time.time()
        rep.cancel()
        load_end = os.getloadavg()
        if pending:
            stats.error(-1, "-", "hang", f"{len(pending)} clients still waiting "
                                         f"{args.timeout + 60:.0f} s after the deadline")
            for t in pending:
                t.cancel()
        for t in done:
            if t.exception() is not None:
                stats.bad(f"client task failed: {t.exception()!r}")
        sampler.sample()
        soak_samples = sampler.samples[i0:]
        cpu1 = {n: proc_cpu(p) for n, p in pids.items()}
        ru1 = resource.getrusage(resource.RUSAGE_SELF)
        hwm = {n: proc_status(p).get("VmHWM", 0) / 1024 for n, p in pids.items()}

        elapsed = t_end - t0
        res["elapsed_s"] = round(elapsed, 1)
        res["requests"] = stats.total
        res["throughput_rps"] = round(stats.total / elapsed, 1)
        res["answered_2xx"] = sum(len(v) for v in stats.lat.values())
        res["throughput_2xx_rps"] = round(res["answered_2xx"] / elapsed, 1)
        res["MiB_written"] = round(stats.bytes_out / 2**20, 1)
        res["MiB_read"] = round(stats.bytes_in / 2**20, 1)
        res["shed_503"] = sum(stats.shed.values())
        kinds_out = {}
        for k in KINDS:
            lat = np.array(stats.lat.get(k, [])) * 1000
            n = sum(stats.status[k].values())
            if not n:
                continue
            kinds_out[k] = {"n": n, "ok": len(lat),
                            "p50_ms": round(float(np.percentile(lat, 50)), 1) if len(lat) else None,
                            "p99_ms": round(float(np.percentile(lat, 99)), 1) if len(lat) else None,
                            "max_ms": round(float(lat.max()), 1) if len(lat) else None,
                            "shed": stats.shed[k],
                            "statuses": {str(s): c for s, c in sorted(stats.status[k].items(),
                                                                      key=lambda x: str(x[0]))}}
        res["kinds"] = kinds_out
        errs = Counter(str(e[3]) for e in stats.errors)
        res["errors_by_status"] = dict(errs)
        res["errors"] = len(stats.errors)
        res["first_errors"] = [f"t+{e[0] - t0:.1f}s client {e[1]} {e[2]} -> {e[3]}: {e[4]}"
                               for e in stats.errors[:15]]
        mid = soak_samples[len(soak_samples) // 2]
        rss = {}
        for n in names:
            vals = [s[1].get(n, 0) for s in soak_samples]
            rss[n] = {"idle": round(idle.get(n, 0), 1),
                      "start": round(vals[0], 1), "mid": round(mid[1].get(n, 0), 1),
                      "end": round(vals[-1], 1), "peak": round(max(vals), 1),
                      "hwm": round(hwm.get(n, 0), 1),
                      "cpu_s": round(cpu1[n] - cpu0[n], 1)}
        rss["soak client"] = {"cpu_s": round((ru1.ru_utime + ru1.ru_stime)
                                             - (ru0.ru_utime + ru0.ru_stime), 1),
                              "hwm": round(ru1.ru_maxrss / 1024, 1)}
        res["rss_MiB"] = rss
        loads = [s[2] for s in soak_samples]
        res["loadavg"] = {"start": [round(x, 2) for x in load_start],
                          "end": [round(x, 2) for x in load_end],
                          "load1_mean": round(float(np.mean(loads)), 2),
                          "load1_max": round(float(max(loads)), 2), "cpus": os.cpu_count()}
        # per-interval timeline (RSS at the end of each interval)
        timeline = []
        step = max(1, int(round(every)))
        last = soak_samples[0]
        picks = soak_samples[step::step]
        if soak_samples[-1][0] - (picks[-1][0] if picks else t0) > 0.5:
            picks.append(soak_samples[-1])
        for s in picks:
            timeline.append({"t_s": round(s[0] - t0), "rps": round((s[3] - last[3]) /
                                                                   max(1e-9, s[0] - last[0]), 1),
                             "load1": round(s[2], 2),
                             "rss_MiB": {n: round(s[1].get(n, 0)) for n in names}})
            last = s
        res["timeline"] = timeline

        log("soak over; flushing and checking every acknowledged write ...")
        t_check = time.time()
        await verify_all(cluster.endpoint, world, clients, stats, args, "warm")
        res["check_warm_s"] = round(time.time() - t_check, 1)
        if not args.no_restart:
            log("restarting the cluster (clean stop flushes), checking again from storage ...")
            sampler.stop()
            cluster.stop()
            restarted = Cluster(work / "run", args.dn, env).start()
            t_check = time.time()
            await verify_all(restarted.endpoint, world, clients, stats, args, "after restart")
            res["check_restart_s"] = round(time.time() - t_check, 1)
        res["integrity_errors"] = len(stats.integrity)
        res["setup_error_count"] = len(stats.setup_errors)
        res["setup_errors"] = stats.setup_errors[:15]
        res["first_integrity_errors"] = stats.integrity[:15]
    finally:
        if sampler.is_alive():
            sampler.stop()
        (restarted or cluster).stop()
        if moto_proc:
            moto_proc.terminate()
            try:
                moto_proc.wait(10)
            except subprocess.TimeoutExpired:
                moto_proc.kill()
    res["log_errors"] = scan_logs(work / "run")
    return res


def print_report(res: dict):
    s = res["settings"]
    print(f"\nsoak: {res['args']['clients']} clients, {res['elapsed_s']:.0f} s, {s['dn']} DNs, "
          f"{s['storage']}, seed {res['args']['seed']}; working set "
          f"{res['working_set_MiB']:.0f} MiB; per DN: chunk cache "
          f"{s['chunk_mem_cache_size_MiB']:.0f} MiB, metadata cache "
          f"{s['metadata_mem_cache_size_MiB']:.0f} MiB; max_task_count {s['max_task_count']}")
    la = res["loadavg"]
    print(f"load average ({la['cpus']} CPUs): start {la['start']}, end {la['end']}, "
          f"1-min mean {la['load1_mean']} max {la['load1_max']}")
    print(f"requests {res['requests']}  throughput {res['throughput_rps']} req/s "
          f"(2xx: {res['answered_2xx']}, {res['throughput_2xx_rps']} req/s)  "
          f"written {res['MiB_written']} MiB  read {res['MiB_read']} MiB  "
          f"shed (503) {res['shed_503']}  errors {res['errors']} {res['errors_by_status']}  "
          f"integrity errors {res.get('integrity_errors', '-')}  "
          f"setup errors {res.get('setup_error_count', '-')}")
    print(f"\n{'kind':13s} {'n':>7s} {'ok':>7s} {'p50 ms':>8s} {'p99 ms':>8s} {'max ms':>8s} "
          f"{'shed':>5s}  other statuses")
    for k, v in res["kinds"].items():
        other = {s_: c for s_, c in v["statuses"].items() if s_ not in ("200", "201", "204")}
        f = (lambda x: f"{x:8.1f}" if x is not None else f"{'-':>8s}")
        print(f"{k:13s} {v['n']:7d} {v['ok']:7d} {f(v['p50_ms'])} {f(v['p99_ms'])} "
              f"{f(v['max_ms'])} {v['shed']:5d}  {other or ''}")
    print(f"\n{'process':12s} {'idle':>8s} {'start':>8s} {'mid':>8s} {'end':>8s} {'peak':>8s} "
          f"{'VmHWM':>8s} {'CPU s':>8s}")
    for n, v in res["rss_MiB"].items():
        cells = [f"{v[k]:8.1f}" if k in v else f"{'':8s}"
                 for k in ("idle", "start", "mid", "end", "peak", "hwm", "cpu_s")]
        print(f"{n:12s} " + " ".join(cells))
    bound = s["chunk_mem_cache_size_MiB"] + s["metadata_mem_cache_size_MiB"]
    growth = max((v["hwm"] - v["idle"] for n, v in res["rss_MiB"].items()
                  if n.startswith("dn-")), default=0)
    print(f"(RSS MiB: idle = just after start, before any data; start/mid/end/peak = during "
          f"the soak, sampled every second; VmHWM = the kernel's peak over the process's "
          f"life up to the end of the soak, prefill included; CPU s = during the soak.)\n"
          f"largest DN growth over idle (VmHWM - idle): {growth:.0f} MiB; its caches may "
          f"hold {bound:.0f} MiB (chunk + metadata)")
    print("\ntimeline (RSS MiB at the end of each interval):")
    names = list(res["timeline"][0]["rss_MiB"]) if res["timeline"] else []
    print(f"{'t_s':>6s} {'req/s':>7s} {'load1':>6s} " + " ".join(f"{n[:7]:>7s}" for n in names))
    for row in res["timeline"]:
        print(f"{row['t_s']:6d} {row['rps']:7.1f} {row['load1']:6.2f} "
              + " ".join(f"{row['rss_MiB'][n]:7d}" for n in names))
    for e in res.get("setup_errors", []):
        print("setup error: " + e)
    for e in res["first_errors"]:
        print("error: " + e)
    for e in res.get("first_integrity_errors", []):
        print("integrity: " + e)
    for name, v in res["log_errors"].items():
        print(f"log {name}: {v['error_lines']} ERROR lines")
        for tb in v["tracebacks"]:
            print(f"    {tb['count']} x {tb['what']}\n        e.g. {tb['example']}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "),
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--dn", type=int, default=4, help="data nodes (4)")
    p.add_argument("--clients", type=int, default=50, help="concurrent clients (50)")
    p.add_argument("--minutes", type=float, default=10.0, help="soak time (10)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--s3", action="store_true", help="S3 storage: a moto server started here")
    p.add_argument("--mix", default=DEFAULT_MIX, help="kind=weight,... (default %(default)s)")
    p.add_argument("--working-set-mib", type=float, default=None,
                   help="slab + zslab bytes, split over the clients (default: 1.5 x the DNs' "
                        "chunk caches together; rounded to whole chunk rows)")
    p.add_argument("--chunk-cache", default=None, help="CHUNK_MEM_CACHE_SIZE for the DNs")
    p.add_argument("--meta-cache", default=None, help="METADATA_MEM_CACHE_SIZE for the DNs")
    p.add_argument("--max-task-count", type=int, default=None, help="MAX_TASK_COUNT for the SN")
    p.add_argument("--table-rows", type=int, default=500_000)
    p.add_argument("--timeout", type=float, default=120, help="per request, s (120)")
    p.add_argument("--report-every", type=float, default=None, help="progress line every s")
    p.add_argument("--log-level", default="WARNING", help="of the SN and DNs (WARNING)")
    p.add_argument("--no-restart", action="store_true", help="skip the check after a restart")
    p.add_argument("--keep", action="store_true", help="keep the work folder")
    p.add_argument("--work-dir", default=None, help="default: a new temporary folder")
    args = p.parse_args()
    for v in (args.chunk_cache, args.meta_cache):
        if v:
            parse_size(v)
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="h5cloud-soak-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    failed = True
    try:
        res = asyncio.run(soak(args, work))
        print_report(res)
        failed = bool(res["errors"] or res.get("integrity_errors", 1) or res.get("setup_errors"))
        res["ok"] = not failed
        res.pop("args", None)
        print(json.dumps({"args": vars(args), **res}))
    except Failed as e:
        print(f"SOAK FAILED: {e}", file=sys.stderr)
        print(json.dumps({"ok": False, "error": str(e)[:500], "work_dir": str(work)}))
    finally:
        if failed or args.keep:
            print(f"work folder kept: {work} (logs in {work}/run)", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
